# The engine process: where it is, starting it lazily once per session, the version handshake, and stopping it.
# The JSON-RPC channel itself is the C# class in EngineClient.cs (see the note at its top for why it is C#).

if (-not ('HvCbt.EngineClient' -as [type])) {
    Add-Type -Path (Join-Path $PSScriptRoot 'EngineClient.cs')
}

# The JSON-RPC contract versions this module speaks (engine.version's protocolVersion).
$script:HvCbtProtocolVersions = @(1)
# The running engine (an [HvCbt.EngineClient]) and what engine.version said about it.
$script:HvCbtEngine = $null
$script:HvCbtEngineInfo = $null

function Resolve-HvCbtEngineCommand {
    <#
    .SYNOPSIS
    Where the engine is: $env:HVCBT_ENGINE (an executable, or a .js file run with node); else the single executable
    build/out/hvcbt of this checkout; else `node dist/main.js`. Returns @{ FileName; Arguments } for `... rpc`.
    #>
    [CmdletBinding()]
    [OutputType([hashtable])]
    param()

    $moduleRoot = Split-Path -Parent $PSScriptRoot
    $repoRoot = Split-Path -Parent $moduleRoot
    $candidate = $null
    if ($env:HVCBT_ENGINE) {
        if (-not (Test-Path -LiteralPath $env:HVCBT_ENGINE -PathType Leaf)) {
            throw [System.IO.FileNotFoundException]::new(
                "HVCBT_ENGINE is set to '$($env:HVCBT_ENGINE)', which is not a file.", $env:HVCBT_ENGINE)
        }
        $candidate = (Resolve-Path -LiteralPath $env:HVCBT_ENGINE).ProviderPath
    } else {
        foreach ($name in 'hvcbt', 'hvcbt.exe') {
            $exe = Join-Path $repoRoot "build/out/$name"
            if (Test-Path -LiteralPath $exe -PathType Leaf) { $candidate = $exe; break }
        }
        if (-not $candidate) {
            $js = Join-Path $repoRoot 'dist/main.js'
            if (-not (Test-Path -LiteralPath $js -PathType Leaf)) {
                throw [System.IO.FileNotFoundException]::new(
                    "The HvCbt engine was not found: set HVCBT_ENGINE, or build it in $repoRoot " +
                    "('npm run build' for build/out/hvcbt, or 'npm run build:ts' for dist/main.js).", $js)
            }
            $candidate = $js
        }
    }
    if ($candidate -match '\.(c|m)?js$') {
        $node = Get-Command -Name node -CommandType Application -ErrorAction SilentlyContinue | Select-Object -First 1
        if (-not $node) {
            throw [System.IO.FileNotFoundException]::new(
                "The HvCbt engine '$candidate' needs Node.js, but 'node' is not on PATH.", 'node')
        }
        return @{ FileName = $node.Source; Arguments = [string[]]@($candidate, 'rpc') }
    }
    return @{ FileName = $candidate; Arguments = [string[]]@('rpc') }
}

function Get-HvCbtEngine {
    <#
    .SYNOPSIS
    The session's engine client, started (and version-checked) on first use or after the previous engine died.
    Throws when the engine cannot be started or speaks a protocol this module does not know.
    #>
    [CmdletBinding()]
    [OutputType([HvCbt.EngineClient])]
    param()

    if ($script:HvCbtEngine -and $script:HvCbtEngine.IsAlive) { return $script:HvCbtEngine }
    if ($script:HvCbtEngine) {
        Write-Verbose "HvCbt: the previous engine (pid $($script:HvCbtEngine.ProcessId)) is gone; starting a new one"
        $script:HvCbtEngine.Dispose()
        $script:HvCbtEngine = $null
    }
    $command = Resolve-HvCbtEngineCommand
    Write-Verbose "HvCbt: starting engine: $($command.FileName) $($command.Arguments -join ' ')"
    $client = [HvCbt.EngineClient]::new($command.FileName, $command.Arguments)
    try {
        $call = $client.Send('engine.version', '{}')
        $final = $null
        $deadline = [DateTime]::UtcNow.AddSeconds(30)
        while (-not $final) {
            $ev = $call.Next(200)
            if ($ev -and $ev.IsFinal) { $final = $ev }
            if (-not $final -and [DateTime]::UtcNow -gt $deadline) {
                throw [System.TimeoutException]::new(
                    "The HvCbt engine ($($client.CommandLine)) did not answer engine.version within 30 s.")
            }
        }
        if ($final.Kind -eq [HvCbt.EngineEventKind]::Error) { throw $final.Error }
        $info = $final.ResultJson | ConvertFrom-Json
        if ($info.protocolVersion -notin $script:HvCbtProtocolVersions) {
            throw [System.NotSupportedException]::new(
                "The HvCbt engine at $($command.FileName) (version $($info.version)) speaks protocol version " +
                "$($info.protocolVersion), but this module ($($MyInvocation.MyCommand.Module.Version)) speaks " +
                "$($script:HvCbtProtocolVersions -join ', '). Use an engine and a module from the same release.")
        }
    } catch {
        $client.Dispose()
        throw
    }
    Write-Verbose "HvCbt: engine $($info.name) $($info.version) (node $($info.node), native: $($info.native)), pid $($client.ProcessId)"
    $script:HvCbtEngineInfo = $info
    $script:HvCbtEngine = $client
    return $client
}

function Stop-HvCbtEngine {
    <#
    .SYNOPSIS
    Stops the session's engine, if any: closes its stdin, waits up to 3 s for it to finish, then kills it.
    #>
    [CmdletBinding(SupportsShouldProcess)]
    param()

    $client = $script:HvCbtEngine
    if ($client -and $PSCmdlet.ShouldProcess("HvCbt engine pid $($client.ProcessId)", 'Stop')) {
        $script:HvCbtEngine = $null
        $script:HvCbtEngineInfo = $null
        $client.Dispose()
    }
}
