# The engine process: where it is, starting it lazily once per session, the version handshake, and stopping it.
# The JSON-RPC channel itself is the C# class in EngineClient.cs (see the note at its top for why it is C#).
#
# These helpers return failures as exception objects instead of throwing them: PowerShell adds an exception to the
# -ErrorVariable of every advanced function it passes through, even when it is caught, so a user's
# `-ErrorVariable e` would hold the same failure several times.

function Import-HvCbtEngineClientType {
    # Compiling EngineClient.cs takes 1-2 s; loading a compiled copy takes about 50 ms. The copy lives in a per-user
    # cache (never a shared temp folder, which others could write to), named by the hash of the source and the
    # PowerShell version, so an edited source or a new PowerShell compiles afresh. Any cache trouble falls back to
    # compiling in memory. HVCBT_NO_TYPE_CACHE=1 turns the cache off.
    $source = Join-Path $PSScriptRoot 'EngineClient.cs'
    if (-not $env:HVCBT_NO_TYPE_CACHE) {
        try {
            $cacheRoot = if ($IsWindows) { $env:LOCALAPPDATA }
            elseif ($env:XDG_CACHE_HOME) { $env:XDG_CACHE_HOME }
            else { Join-Path $HOME '.cache' }
            $dir = Join-Path $cacheRoot 'hvcbt'
            $hash = (Get-FileHash -LiteralPath $source -Algorithm SHA256).Hash.Substring(0, 16)
            $dll = Join-Path $dir "HvCbt.EngineClient-$hash-pwsh$($PSVersionTable.PSVersion).dll"
            if (-not (Test-Path -LiteralPath $dll)) {
                $null = New-Item -ItemType Directory -Path $dir -Force
                $partial = "$dll.$PID.partial"
                Add-Type -Path $source -OutputAssembly $partial -OutputType Library
                # Atomic on one volume; if another session got there first, its copy is as good as ours.
                try { [System.IO.File]::Move($partial, $dll) } catch { Remove-Item -LiteralPath $partial -ErrorAction Ignore }
            }
            Add-Type -Path $dll
            return
        } catch {
            Write-Verbose "HvCbt: compiled-type cache unavailable ($($_.Exception.Message)); compiling in memory"
        }
    }
    Add-Type -Path $source
}

if (-not ('HvCbt.EngineClient' -as [type])) { Import-HvCbtEngineClientType }

# The JSON-RPC contract versions this module speaks (engine.version's protocolVersion).
$script:HvCbtProtocolVersions = @(1)
# The running engine (an [HvCbt.EngineClient]) and what engine.version said about it.
$script:HvCbtEngine = $null
$script:HvCbtEngineInfo = $null

function Resolve-HvCbtEngineCommand {
    <#
    .SYNOPSIS
    Where the engine is: $env:HVCBT_ENGINE (an executable, or a .js file run with node); else the single executable
    build/out/hvcbt of this checkout; else `node dist/main.js`. Returns @{ FileName; Arguments } for `... rpc`, or a
    FileNotFoundException saying what is missing.
    #>
    [CmdletBinding()]
    param()

    $moduleRoot = Split-Path -Parent $PSScriptRoot
    $repoRoot = Split-Path -Parent $moduleRoot
    $candidate = $null
    if ($env:HVCBT_ENGINE) {
        if (-not (Test-Path -LiteralPath $env:HVCBT_ENGINE -PathType Leaf)) {
            return [System.IO.FileNotFoundException]::new(
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
                return [System.IO.FileNotFoundException]::new(
                    "The HvCbt engine was not found: set HVCBT_ENGINE, or build it in $repoRoot " +
                    "('npm run build' for build/out/hvcbt, or 'npm run build:ts' for dist/main.js).", $js)
            }
            $candidate = $js
        }
    }
    if ($candidate -match '\.(c|m)?js$') {
        $node = Get-Command -Name node -CommandType Application -ErrorAction Ignore | Select-Object -First 1
        if (-not $node) {
            return [System.IO.FileNotFoundException]::new(
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
    Returns an exception object instead when the engine cannot be started, does not answer engine.version within
    30 s, or speaks a protocol this module does not know.
    #>
    [CmdletBinding()]
    param()

    if ($script:HvCbtEngine -and $script:HvCbtEngine.IsAlive) { return $script:HvCbtEngine }
    if ($script:HvCbtEngine) {
        Write-Verbose "HvCbt: the previous engine (pid $($script:HvCbtEngine.ProcessId)) is gone; starting a new one"
        $script:HvCbtEngine.Dispose()
        $script:HvCbtEngine = $null
    }
    $command = Resolve-HvCbtEngineCommand
    if ($command -is [Exception]) { return $command }
    Write-Verbose "HvCbt: starting engine: $($command.FileName) $($command.Arguments -join ' ')"
    $startError = $null
    $client = [HvCbt.EngineClient]::TryStart($command.FileName, $command.Arguments, [ref]$startError)
    if (-not $client) { return $startError }

    # try/finally: if the wait is interrupted (Ctrl+C) or fails, the new process must not be left running.
    $failure = $null
    try {
        $call = $client.Send('engine.version', '{}')
        $final = $null
        $deadline = [DateTime]::UtcNow.AddSeconds(30)
        while (-not $final -and [DateTime]::UtcNow -lt $deadline) {
            $ev = $call.Next(200)
            if ($ev -and $ev.IsFinal) { $final = $ev }
        }
        if (-not $final) {
            $failure = [System.TimeoutException]::new(
                "The HvCbt engine ($($client.CommandLine)) did not answer engine.version within 30 s.")
        } elseif ($final.Kind -eq [HvCbt.EngineEventKind]::Error) {
            $failure = $final.Error
        } else {
            $info = $final.ResultJson | ConvertFrom-Json
            if ($info.protocolVersion -notin $script:HvCbtProtocolVersions) {
                $failure = [System.NotSupportedException]::new(
                    "The HvCbt engine at $($command.FileName) (version $($info.version)) speaks protocol version " +
                    "$($info.protocolVersion), but this module ($($MyInvocation.MyCommand.Module.Version)) speaks " +
                    "$($script:HvCbtProtocolVersions -join ', '). Use an engine and a module from the same release.")
            } else {
                Write-Verbose ("HvCbt: engine $($info.name) $($info.version) (node $($info.node), native: " +
                    "$($info.native)), pid $($client.ProcessId)")
                $script:HvCbtEngineInfo = $info
                $script:HvCbtEngine = $client
            }
        }
    } finally {
        if (-not [object]::ReferenceEquals($script:HvCbtEngine, $client)) { $client.Dispose() }
    }
    if ($failure) { return $failure }
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
