# The module's engine channel: lazy start, version handshake, concurrent requests, the engine dying, and stopping
# the engine with the module or with PowerShell. Against the real engine; a stand-in engine (stand-in-engine.mjs)
# only for what the real one never does on purpose (wrong protocol, crash with last words, garbage on stdout,
# progress and log notifications before any method emits them).
BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')
    $script:Dir = New-TestFolder
    $script:Disk = Join-Path $Dir 'disk.raw'
    [System.IO.File]::WriteAllBytes($Disk, [byte[]]::new(65536))
    $script:SavedEngine = $env:HVCBT_ENGINE

    function Use-StandIn([string]$Mode) {
        & (Get-Module HvCbt) { Stop-HvCbtEngine -Confirm:$false }
        $env:HVCBT_ENGINE = $StandInEngine
        $env:HVCBT_STANDIN_MODE = $Mode
    }

    function Use-RealEngine {
        & (Get-Module HvCbt) { Stop-HvCbtEngine -Confirm:$false }
        $env:HVCBT_ENGINE = $SavedEngine
        Remove-Item Env:\HVCBT_STANDIN_MODE -ErrorAction SilentlyContinue
    }

    function Send-Signal([int]$ProcessId, [string]$Signal) {
        & kill "-$Signal" $ProcessId
        if ($LASTEXITCODE -ne 0) { throw "kill -$Signal $ProcessId failed" }
    }
}

AfterAll {
    $env:HVCBT_ENGINE = $SavedEngine
    Remove-Item Env:\HVCBT_STANDIN_MODE -ErrorAction SilentlyContinue
    Remove-Module HvCbt -Force -ErrorAction SilentlyContinue
    if ($Dir) { Remove-Item -LiteralPath $Dir -Recurse -Force -ErrorAction SilentlyContinue }
}

Describe 'Starting the engine' {
    BeforeAll { Import-HvCbtUnderTest }

    It 'starts nothing at import, and one engine on the first call, reused afterwards' {
        Get-HvCbtEngineClient | Should -BeNullOrEmpty
        (Get-VhdFileInfo $Disk -ErrorAction Stop).VhdFormat | Should -Be 'Raw'
        $first = Get-HvCbtEngineClient
        $first.IsAlive | Should -BeTrue
        Test-ProcessAlive $first.ProcessId | Should -BeTrue
        Get-VhdFileInfo $Disk, $Disk -ErrorAction Stop | Out-Null
        (Get-HvCbtEngineClient).ProcessId | Should -Be $first.ProcessId
    }

    It 'checks engine.version first and keeps what it said' {
        $info = & (Get-Module HvCbt) { $script:HvCbtEngineInfo }
        $info.name | Should -Be 'hvcbt'
        $info.protocolVersion | Should -Be 1
        $info.version | Should -Be (Get-Content (Join-Path $RepoRoot 'package.json') -Raw | ConvertFrom-Json).version
    }

    It 'starts the engine without the session''s NODE_OPTIONS' {
        # With this NODE_OPTIONS, node (and a single executable) would refuse to start.
        & (Get-Module HvCbt) { Stop-HvCbtEngine -Confirm:$false }
        $env:NODE_OPTIONS = '--require /nonexistent/hvcbt-must-not-load.js'
        try {
            (Get-VhdFileInfo $Disk -ErrorAction Stop).Size | Should -Be 64KB
        } finally {
            Remove-Item Env:\NODE_OPTIONS
        }
    }

    It 'fails with ObjectNotFound naming the variable when HVCBT_ENGINE points nowhere' {
        & (Get-Module HvCbt) { Stop-HvCbtEngine -Confirm:$false }
        $env:HVCBT_ENGINE = '/nonexistent/hvcbt'
        try {
            $out = Get-VhdFileInfo $Disk -ErrorVariable errs -ErrorAction SilentlyContinue
        } finally {
            $env:HVCBT_ENGINE = $SavedEngine
        }
        $out | Should -BeNullOrEmpty
        $errs.Count | Should -Be 1
        $errs[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $errs[0].Exception.Message | Should -Match 'HVCBT_ENGINE'
    }
}

Describe 'Requests in flight' {
    BeforeAll { Import-HvCbtUnderTest }

    It 'matches 40 concurrent answers to their requests by id' {
        $files = foreach ($n in 1..40) {
            $f = Join-Path $Dir "c$n.raw"
            [System.IO.File]::WriteAllBytes($f, [byte[]]::new(512 * $n))
            $f
        }
        $client = & (Get-Module HvCbt) { Get-HvCbtEngine }
        # Frozen while the requests go out, so all 40 are certainly in flight at once.
        Send-Signal $client.ProcessId STOP
        try {
            $calls = foreach ($f in $files) { $client.Send('vhd.info', (@{ path = $f } | ConvertTo-Json -Compress)) }
            $client.PendingCount | Should -Be 40
        } finally {
            Send-Signal $client.ProcessId CONT
        }
        foreach ($i in 0..39) {
            $ev = $calls[$i].Next(10000)
            while ($ev -and -not $ev.IsFinal) { $ev = $calls[$i].Next(10000) }
            $ev.Kind | Should -Be 'Result'
            $r = $ev.ResultJson | ConvertFrom-Json
            $r.path | Should -Be $files[$i]
            $r.virtualSizeBytes | Should -Be (512 * ($i + 1))
        }
        $client.PendingCount | Should -Be 0
    }

    It 'turns an unknown method into a NotImplemented error and invalid params into InvalidArgument' {
        $unknown = & (Get-Module HvCbt) {
            Invoke-HvCbtEngine -Method 'no.such.method' -ErrorAction SilentlyContinue -ErrorVariable e
            $e
        }
        $unknown[0].CategoryInfo.Category | Should -Be 'NotImplemented'
        $unknown[0].Exception.Code | Should -Be -32601
        $invalid = & (Get-Module HvCbt) {
            Invoke-HvCbtEngine -Method 'vhd.info' -Params @{ path = 42 } -ErrorAction SilentlyContinue -ErrorVariable e
            $e
        }
        $invalid[0].CategoryInfo.Category | Should -Be 'InvalidArgument'
        $invalid[0].Exception.Code | Should -Be -32602
    }
}

Describe 'The engine dying' {
    BeforeAll { Import-HvCbtUnderTest }
    AfterEach { Use-RealEngine }

    It 'fails the pending call at once with a clear message, and the next call starts a new engine' {
        Get-VhdFileInfo $Disk -ErrorAction Stop | Out-Null
        $enginePid = (Get-HvCbtEngineClient).ProcessId
        # Freeze the engine so the request is certainly pending, then kill it half a second later.
        Send-Signal $enginePid STOP
        $killer = [System.Diagnostics.Process]::Start('/bin/sh', [string[]]@('-c', "sleep 0.5; kill -KILL $enginePid"))
        $sw = [System.Diagnostics.Stopwatch]::StartNew()
        $out = Get-VhdFileInfo $Disk -ErrorVariable errs -ErrorAction SilentlyContinue
        $sw.Stop()
        $killer.WaitForExit()
        $out | Should -BeNullOrEmpty
        $errs.Count | Should -Be 1
        $errs[0].CategoryInfo.Category | Should -Be 'ResourceUnavailable'
        $errs[0].Exception.Message | Should -Match "'vhd\.info' failed: the HvCbt engine \(pid $enginePid, .*\) exited with code 137"
        $sw.Elapsed.TotalSeconds | Should -BeLessThan 5
        Wait-ProcessGone $enginePid | Should -BeTrue

        $again = Get-VhdFileInfo $Disk -ErrorAction Stop
        $again.Size | Should -Be 64KB
        (Get-HvCbtEngineClient).ProcessId | Should -Not -Be $enginePid
    }

    It 'fails every pending call at once' {
        $client = & (Get-Module HvCbt) { Get-HvCbtEngine }
        Send-Signal $client.ProcessId STOP
        $calls = foreach ($n in 1..5) { $client.Send('vhd.info', (@{ path = $Disk } | ConvertTo-Json -Compress)) }
        $client.PendingCount | Should -Be 5
        Send-Signal $client.ProcessId KILL
        $messages = foreach ($c in $calls) {
            $ev = $c.Next(5000)
            $ev.Kind | Should -Be 'Error'
            $ev.Error.Message
        }
        @($messages | Sort-Object -Unique).Count | Should -Be 1
        $messages[0] | Should -Match 'exited with code 137'
        $client.PendingCount | Should -Be 0
        $client.IsAlive | Should -BeFalse
        # A call sent to the dead client fails immediately with the same story.
        $late = $client.Send('vhd.info', '{}').Next(1000)
        $late.Kind | Should -Be 'Error'
        $late.Error.Message | Should -Match 'exited with code 137'
    }

    It 'puts the engine''s last stderr lines in the message' {
        Use-StandIn die
        $out = Get-VhdFileInfo $Disk -ErrorVariable errs -ErrorAction SilentlyContinue
        $out | Should -BeNullOrEmpty
        $errs[0].Exception.Message | Should -Match 'exited with code 3'
        $errs[0].Exception.Message | Should -Match 'Last engine stderr:\nstand-in: reading the disk\nstand-in: fatal: simulated crash during vhd\.info'
    }

    It 'refuses an engine that speaks another protocol version, and stops it' {
        Use-StandIn protocol
        $out = Get-VhdFileInfo $Disk -ErrorVariable errs -ErrorAction SilentlyContinue
        $out | Should -BeNullOrEmpty
        $errs[0].Exception.Message | Should -Match 'speaks protocol version 99, but this module .* speaks 1'
        $errs[0].CategoryInfo.Category | Should -Be 'InvalidResult'
        Get-HvCbtEngineClient | Should -BeNullOrEmpty
    }

    It 'treats non-protocol text on stdout as a broken engine' {
        Use-StandIn garbage
        $out = Get-VhdFileInfo $Disk -ErrorVariable errs -ErrorAction SilentlyContinue
        $out | Should -BeNullOrEmpty
        $errs[0].Exception.Message | Should -Match 'broke the protocol.*Debugger listening'
        (Get-HvCbtEngineClient).IsAlive | Should -BeFalse
    }
}

Describe 'Progress and log notifications' {
    It 'become progress records, warnings, verbose and debug messages of the calling cmdlet' {
        $env:HVCBT_ENGINE = $StandInEngine
        $env:HVCBT_STANDIN_MODE = 'chatty'
        $ps = [powershell]::Create()
        try {
            $null = $ps.AddScript({
                    param($Manifest, $Disk)
                    Import-Module $Manifest
                    # $DebugPreference rather than -Debug: with -Debug, warnings ask for confirmation, and this
                    # host cannot answer.
                    $DebugPreference = 'Continue'
                    Get-VhdFileInfo $Disk -Verbose
                }).AddArgument($ModuleManifest).AddArgument($Disk)
            $out = $ps.Invoke()
            $ps.Streams.Error | Should -BeNullOrEmpty
            $out.Count | Should -Be 1
            $out[0].Size | Should -Be 12345
            $progress = @($ps.Streams.Progress | Where-Object RecordType -eq 'Processing')
            $progress.PercentComplete | Should -Be 0, 50, 100
            $progress[1].StatusDescription | Should -Be 'half way'
            @($ps.Streams.Progress | Where-Object RecordType -eq 'Completed').Count | Should -Be 1
            $ps.Streams.Warning.Message | Should -Contain 'hvcbt: a warning for this call'
            $ps.Streams.Warning.Message | Should -Contain 'hvcbt: an engine-wide warning'
            $ps.Streams.Warning.Message | Should -Contain 'hvcbt: an error-level message'
            $ps.Streams.Verbose.Message | Should -Contain 'hvcbt: some detail'
            $ps.Streams.Debug.Message | Should -Contain 'hvcbt: debugging detail'
        } finally {
            $null = $ps.AddScript('Remove-Module HvCbt').Invoke()
            $ps.Dispose()
            $env:HVCBT_ENGINE = $SavedEngine
            Remove-Item Env:\HVCBT_STANDIN_MODE -ErrorAction SilentlyContinue
        }
    }
}

Describe 'Stopping a call' {
    It 'sends $/cancelRequest for the running call when the pipeline is stopped (Ctrl+C)' {
        $log = Join-Path $Dir 'stand-in.log'
        $env:HVCBT_ENGINE = $StandInEngine
        $env:HVCBT_STANDIN_MODE = 'slow'
        $env:HVCBT_STANDIN_LOG = $log
        $ps = [powershell]::Create()
        try {
            $null = $ps.AddScript({
                    param($Manifest, $Disk)
                    Import-Module $Manifest
                    Get-VhdFileInfo $Disk
                }).AddArgument($ModuleManifest).AddArgument($Disk)
            $async = $ps.BeginInvoke()
            $sw = [System.Diagnostics.Stopwatch]::StartNew()
            while (-not ((Test-Path $log) -and (Get-Content $log) -match '^request vhd\.info') -and $sw.Elapsed.TotalSeconds -lt 30) {
                Start-Sleep -Milliseconds 50
            }
            $request = @(Get-Content $log) -match '^request vhd\.info (\d+)$'
            $request.Count | Should -Be 1
            $id = ($request[0] -split ' ')[-1]
            $ps.Stop()
            $async.IsCompleted | Should -BeTrue
            $sw.Restart()
            while (-not ((Get-Content $log) -match '^cancel ') -and $sw.Elapsed.TotalSeconds -lt 5) { Start-Sleep -Milliseconds 50 }
            @(Get-Content $log) | Should -Contain "cancel $id"
        } finally {
            $null = $ps.Commands.Clear()
            $null = $ps.AddScript('Remove-Module HvCbt').Invoke()
            $ps.Dispose()
            $env:HVCBT_ENGINE = $SavedEngine
            Remove-Item -Path @('Env:\HVCBT_STANDIN_MODE', 'Env:\HVCBT_STANDIN_LOG') -ErrorAction SilentlyContinue
        }
    }
}

Describe 'Stopping the engine' {
    It 'stops the engine process on Remove-Module' {
        Import-HvCbtUnderTest
        Get-VhdFileInfo $Disk -ErrorAction Stop | Out-Null
        $enginePid = (Get-HvCbtEngineClient).ProcessId
        Test-ProcessAlive $enginePid | Should -BeTrue
        Remove-Module HvCbt
        Wait-ProcessGone $enginePid -TimeoutMs 1000 | Should -BeTrue
    }

    It 'stops the engine when the PowerShell.Exiting event fires' {
        # In a child session, so firing the event cannot disturb this one; the child checks before it exits (at
        # exit the engine would stop anyway, its stdin closing).
        $script = "Import-Module '$ModuleManifest'; `$null = Get-VhdFileInfo '$Disk' -ErrorAction Stop; " +
        "`$c = & (Get-Module HvCbt) { `$script:HvCbtEngine }; `$null = New-Event -SourceIdentifier PowerShell.Exiting; " +
        "`$sw = [Diagnostics.Stopwatch]::StartNew(); while (`$c.IsAlive -and `$sw.ElapsedMilliseconds -lt 5000) { Start-Sleep -Milliseconds 50 }; " +
        "'alive=' + `$c.IsAlive + ' exists=' + (Test-Path /proc/`$(`$c.ProcessId))"
        $out = & $Pwsh -NoProfile -NonInteractive -Command $script
        $LASTEXITCODE | Should -Be 0
        $out | Select-Object -Last 1 | Should -Be 'alive=False exists=False'
    }

    It 'stops the engine process when PowerShell exits' {
        $script = "Import-Module '$ModuleManifest'; `$null = Get-VhdFileInfo '$Disk' -ErrorAction Stop; " +
        "& (Get-Module HvCbt) { `$script:HvCbtEngine.ProcessId }"
        $out = & $Pwsh -NoProfile -NonInteractive -Command $script
        $LASTEXITCODE | Should -Be 0
        $enginePid = [int]($out | Select-Object -Last 1)
        $enginePid | Should -BeGreaterThan 0
        Wait-ProcessGone $enginePid -TimeoutMs 3000 | Should -BeTrue
    }
}
