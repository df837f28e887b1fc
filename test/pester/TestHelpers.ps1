# Shared by the *.Tests.ps1 files (dot-sourced in BeforeAll): where things are, and small helpers that drive real
# tools. Tests import the module from this checkout and talk to the real engine that the module resolves
# ($env:HVCBT_ENGINE, else build/out/hvcbt, else node dist/main.js).
$script:RepoRoot = (Resolve-Path (Join-Path $PSScriptRoot '../..')).ProviderPath
$script:ModuleManifest = Join-Path $script:RepoRoot 'powershell/HvCbt.psd1'
$script:StandInEngine = Join-Path $PSScriptRoot 'stand-in-engine.mjs'
# This PowerShell, for child sessions: the .NET-tool pwsh runs as `dotnet pwsh.dll`, so find the launcher.
$script:Pwsh = @((Join-Path $script:RepoRoot '.tools/pwsh/pwsh'), (Get-Command pwsh -CommandType Application -ErrorAction Ignore |
        Select-Object -First 1).Source) | Where-Object { $_ -and (Test-Path -LiteralPath $_) } | Select-Object -First 1
$script:VhdiInfo = (Get-Command vhdiinfo -CommandType Application -ErrorAction Ignore | Select-Object -First 1).Source
$script:QemuImg = (Get-Command qemu-img -CommandType Application -ErrorAction SilentlyContinue | Select-Object -First 1).Source

function Import-HvCbtUnderTest {
    Remove-Module HvCbt -Force -ErrorAction SilentlyContinue
    Import-Module $script:ModuleManifest -Force -ErrorAction Stop
}

function Get-HvCbtEngineClient {
    # The module's running engine client (or $null), read from the module's own scope.
    & (Get-Module HvCbt) { $script:HvCbtEngine }
}

function New-TestFolder {
    $dir = Join-Path ([System.IO.Path]::GetTempPath()) ("hvcbt-pester-" + [guid]::NewGuid().ToString('N').Substring(0, 12))
    New-Item -ItemType Directory -Path $dir | Out-Null
    $dir
}

function New-QemuDisk {
    # qemu-img create -f <format> [-o options] <path> <size>; returns the path.
    param([string]$Folder, [string]$Name, [string]$Format, [string]$Size, [string]$Options)
    $path = Join-Path $Folder $Name
    $qemuArgs = @('create', '-q', '-f', $Format)
    if ($Options) { $qemuArgs += @('-o', $Options) }
    $qemuArgs += @($path, $Size)
    & $script:QemuImg @qemuArgs
    if ($LASTEXITCODE -ne 0) { throw "qemu-img $($qemuArgs -join ' ') failed with $LASTEXITCODE" }
    $path
}

function Get-QemuInfo {
    # qemu-img info with the format named: probing alone takes a fixed VHD for a raw image.
    param([string]$Path, [string]$Format)
    $json = & $script:QemuImg info -f $Format '--output=json' $Path
    if ($LASTEXITCODE -ne 0) { throw "qemu-img info $Path failed with $LASTEXITCODE" }
    $json | ConvertFrom-Json
}

function Test-ProcessAlive {
    param([int]$ProcessId)
    # /proc/<pid> disappears once .NET reaps the child; a zombie would still show as 'Z' in stat.
    $stat = "/proc/$ProcessId/stat"
    if (-not (Test-Path -LiteralPath $stat)) { return $false }
    $state = ((Get-Content -LiteralPath $stat -Raw) -replace '^.*\)\s+', '').Substring(0, 1)
    return $state -ne 'Z'
}

function Wait-ProcessGone {
    param([int]$ProcessId, [int]$TimeoutMs = 5000)
    $sw = [System.Diagnostics.Stopwatch]::StartNew()
    while ((Test-ProcessAlive $ProcessId) -and $sw.ElapsedMilliseconds -lt $TimeoutMs) { Start-Sleep -Milliseconds 25 }
    -not (Test-ProcessAlive $ProcessId)
}
