<#
.SYNOPSIS
Runs the HvCbt module's Pester tests with the project-local Pester (build/install-tools.sh puts it in .tools/).

.DESCRIPTION
Prints Pester's detailed output, then exactly one final line for CI to parse:
    pester: N passed, N failed, N skipped
"failed" counts failed tests plus failed blocks and containers (a BeforeAll or a file that breaks), so a broken
file never reads as 0 failed. Exit code 0 when nothing failed, 1 otherwise.

.EXAMPLE
.tools/pwsh/pwsh -NoProfile -File test/pester/run.ps1 -Engine dist/main.js
#>
param(
    # Engine to test against (sets HVCBT_ENGINE): an executable or a .js file. Default: the module's own
    # resolution (build/out/hvcbt if built, else dist/main.js).
    [string]$Engine,
    # Test files or folders; default: every *.Tests.ps1 here.
    [string[]]$Path = @($PSScriptRoot),
    # Pester output verbosity: None, Normal, Detailed, Diagnostic.
    [string]$Verbosity = 'Detailed'
)
$ErrorActionPreference = 'Stop'
$repoRoot = (Resolve-Path (Join-Path $PSScriptRoot '../..')).ProviderPath
if ([Console]::IsOutputRedirected) { $PSStyle.OutputRendering = 'PlainText' }

$pesterManifest = Get-ChildItem -Path (Join-Path $repoRoot '.tools/Pester/*/Pester.psd1') -ErrorAction Ignore |
    Sort-Object { [version]$_.Directory.Name } -Descending | Select-Object -First 1
if (-not $pesterManifest) {
    Write-Host "Pester is not installed in $repoRoot/.tools/Pester: run build/install-tools.sh"
    Write-Host 'pester: 0 passed, 1 failed, 0 skipped'
    exit 1
}
if ($Engine) { $env:HVCBT_ENGINE = (Resolve-Path -LiteralPath $Engine).ProviderPath }
Write-Host "engine: $(if ($env:HVCBT_ENGINE) { "HVCBT_ENGINE=$($env:HVCBT_ENGINE)" } else { 'module default (build/out/hvcbt, else dist/main.js)' })"
$env:POWERSHELL_TELEMETRY_OPTOUT = '1'

Import-Module $pesterManifest.FullName -Force
$config = New-PesterConfiguration
$config.Run.Path = $Path
$config.Run.PassThru = $true
$config.Output.Verbosity = $Verbosity
$sw = [System.Diagnostics.Stopwatch]::StartNew()
$result = Invoke-Pester -Configuration $config
$failed = $result.FailedCount + $result.FailedBlocksCount + $result.FailedContainersCount
Write-Host ("pester time: {0:0.0} s" -f $sw.Elapsed.TotalSeconds)
Write-Host "pester: $($result.PassedCount) passed, $failed failed, $($result.SkippedCount) skipped"
exit $(if ($failed -gt 0) { 1 } else { 0 })
