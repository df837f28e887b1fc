# The witness cluster seen through the cmdlets (issue 7): a real etcd and two witness nodes, FS1 and FS2, each a
# separate engine process on a loopback address this file owns (127.0.0.84, 127.0.0.85). A client registered with
# FS2 for the file server FS1 shows in Get-WitnessClient on FS1 (registrations are cluster-wide); after FS1 is
# killed, Get-WitnessStatus shows the file server unavailable and Get-WitnessService on FS2 shows FS1 down.
BeforeDiscovery {
    $script:NoEtcd = -not (Get-Command etcd -CommandType Application -ErrorAction Ignore)
}

BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')
    $script:Dir = New-TestFolder
    $script:SavedRunDir = $env:HVCBT_RUN_DIR
    # the node processes put their admin sockets here, and the module's engine looks for them here
    $env:HVCBT_RUN_DIR = Join-Path $Dir 'run'
    $script:Fs1 = '127.0.0.84'
    $script:Fs2 = '127.0.0.85'
    $script:Procs = @{}

    function Get-FreePort {
        $l = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Loopback, 0)
        $l.Start()
        try { $l.LocalEndpoint.Port } finally { $l.Stop() }
    }
    function Wait-Until {
        param([scriptblock]$Condition, [int]$TimeoutMs = 15000)
        $sw = [System.Diagnostics.Stopwatch]::StartNew()
        while (-not (& $Condition) -and $sw.ElapsedMilliseconds -lt $TimeoutMs) { Start-Sleep -Milliseconds 100 }
        & $Condition
    }
    function Start-Logged {
        # a child process with its output in $Dir/<name>.log
        param([string]$Name, [string]$FilePath, [string[]]$ArgumentList)
        $log = Join-Path $Dir "$Name.log"
        $p = Start-Process -FilePath $FilePath -ArgumentList $ArgumentList -RedirectStandardOutput $log -RedirectStandardError "$log.err" -PassThru
        $script:Procs[$Name] = $p
        $p
    }
    # the engine the module would start: HVCBT_ENGINE, else the single executable, else node dist/main.js
    $script:Engine = if ($env:HVCBT_ENGINE) { $env:HVCBT_ENGINE }
    elseif (Test-Path (Join-Path $RepoRoot 'build/out/hvcbt')) { Join-Path $RepoRoot 'build/out/hvcbt' }
    else { Join-Path $RepoRoot 'dist/main.js' }
    function Start-WitnessNode {
        param([string]$Node, [string]$Address)
        $nodeArgs = @('witness', 'serve', '--node', $Node, '--netname', 'SOFS', '--listen', $Address, '--port', $Port,
            '--epm-port', '0', '--allow-anonymous', '--etcd', $EtcdUrl, '--lease-ttl', '3')
        if ($Engine.EndsWith('.js')) { Start-Logged $Node (Get-Command node).Source (@($Engine) + $nodeArgs) }
        else { Start-Logged $Node $Engine $nodeArgs }
        $sock = Join-Path $env:HVCBT_RUN_DIR "witness-$Address.sock"
        if (-not (Wait-Until { Test-Path -LiteralPath $sock })) {
            throw "witness node $Node did not start: $(Get-Content -Raw -LiteralPath (Join-Path $Dir "$Node.log.err") -ErrorAction Ignore)"
        }
    }

    if (-not $NoEtcd) {
        $clientPort = Get-FreePort
        $peerPort = Get-FreePort
        $script:EtcdUrl = "http://127.0.0.1:$clientPort"
        $null = Start-Logged 'etcd' (Get-Command etcd).Source @('--name', 'pester', '--data-dir', (Join-Path $Dir 'etcd'),
            '--listen-client-urls', $EtcdUrl, '--advertise-client-urls', $EtcdUrl,
            '--listen-peer-urls', "http://127.0.0.1:$peerPort", '--initial-advertise-peer-urls', "http://127.0.0.1:$peerPort",
            '--initial-cluster', "pester=http://127.0.0.1:$peerPort", '--log-level', 'warn')
        $healthy = Wait-Until { try { (Invoke-RestMethod "$EtcdUrl/health" -TimeoutSec 2).health -eq 'true' } catch { $false } }
        if (-not $healthy) { throw "etcd did not start: $(Get-Content -Raw -LiteralPath (Join-Path $Dir 'etcd.log.err'))" }
        $script:Port = Get-FreePort
        Start-WitnessNode FS1 $Fs1
        Start-WitnessNode FS2 $Fs2
    }
    Import-HvCbtUnderTest
}

AfterAll {
    Get-WitnessStatus -ErrorAction SilentlyContinue | Unregister-WitnessClient -Confirm:$false -ErrorAction SilentlyContinue
    Remove-Module HvCbt -Force -ErrorAction SilentlyContinue
    foreach ($p in $script:Procs.Values) { if (-not $p.HasExited) { $p.Kill() } }
    $env:HVCBT_RUN_DIR = $SavedRunDir
    if ($Dir) { Remove-Item -LiteralPath $Dir -Recurse -Force -ErrorAction SilentlyContinue }
}

Describe 'A witness cluster through etcd, seen from PowerShell' -Skip:$NoEtcd {
    It 'Get-WitnessService on either node shows etcd membership with both nodes up' {
        foreach ($server in $Fs1, $Fs2) {
            $ok = Wait-Until { $s = Get-WitnessService -Server $server -ErrorAction SilentlyContinue; $s -and @($s.Nodes | Where-Object State -eq 'up').Count -eq 2 }
            $ok | Should -BeTrue -Because "both nodes join the cluster as seen from $server"
            $s = Get-WitnessService -Server $server -ErrorAction Stop
            $s.MembershipSource | Should -Be 'etcd'
            $s.Connected | Should -BeTrue
            @($s.Nodes.Name | Sort-Object) | Should -Be @('FS1', 'FS2')
        }
    }

    It 'lists a registration held by FS2 in Get-WitnessClient on FS1 (cluster-wide view)' {
        $script:Reg = Register-WitnessClient -NetName SOFS -FileServer $Fs1 -WitnessServer $Fs2 -Port $Port -ClientName PESTERC -ErrorAction Stop
        $Reg.WitnessNodeName | Should -Be 'FS2'
        $Reg.FileServerNodeName | Should -Be 'FS1'
        $Reg.FileServerState | Should -Be 'available'
        (Wait-Until { @(Get-WitnessClient -Server $Fs1 -ClientName PESTERC).Count -eq 1 }) | Should -BeTrue
        $c = Get-WitnessClient -Server $Fs1 -ClientName PESTERC
        $c.WitnessNodeName | Should -Be 'FS2'
        $c.FileServerNodeName | Should -Be 'FS1'
        $c.NetworkName | Should -Be 'SOFS'
    }

    It 'shows the file server unavailable in Get-WitnessStatus once FS1 is killed, and FS1 down on FS2' {
        $Procs['FS1'].Kill()   # SIGKILL: no clean leave, the cluster must notice by itself
        (Wait-Until { (Get-WitnessStatus -Id $Reg.Id).FileServerState -eq 'unavailable' }) | Should -BeTrue
        $st = Get-WitnessStatus -Id $Reg.Id
        $st.LastNotification | Should -Match 'resource-change: SOFS unavailable'
        $st.Notifications | Should -BeGreaterOrEqual 1
        $nodes = (Get-WitnessService -Server $Fs2 -ErrorAction Stop).Nodes
        ($nodes | Where-Object Name -eq 'FS1').State | Should -Be 'down'
        ($nodes | Where-Object Name -eq 'FS2').State | Should -Be 'up'
    }

    It 'shows the file server available again when FS1 restarts' {
        Start-WitnessNode FS1 $Fs1
        (Wait-Until { (Get-WitnessStatus -Id $Reg.Id).FileServerState -eq 'available' }) | Should -BeTrue
        (Get-WitnessService -Server $Fs2).Nodes | Where-Object Name -eq 'FS1' | ForEach-Object State | Should -Be 'up'
    }
}
