# The witness cmdlets against the real engine: a witness service for node FS1 of a two-node static cluster on
# loopback addresses this file owns (127.0.0.61 and 127.0.0.62), a client registration made by the same engine
# for the file server on FS2, the server's view of it, a move, and unregistering. Admin sockets go to a private
# run folder (HVCBT_RUN_DIR, read by the engine the module starts).
BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')
    $script:Dir = New-TestFolder
    $script:SavedRunDir = $env:HVCBT_RUN_DIR
    $env:HVCBT_RUN_DIR = Join-Path $Dir 'run'
    Import-HvCbtUnderTest
    $script:Fs1 = '127.0.0.61'
    $script:Fs2 = '127.0.0.62'

    function Wait-Until {
        param([scriptblock]$Condition, [int]$TimeoutMs = 10000)
        $sw = [System.Diagnostics.Stopwatch]::StartNew()
        while (-not (& $Condition) -and $sw.ElapsedMilliseconds -lt $TimeoutMs) { Start-Sleep -Milliseconds 100 }
        & $Condition
    }
}

AfterAll {
    Get-WitnessStatus -ErrorAction SilentlyContinue | Unregister-WitnessClient -Confirm:$false -ErrorAction SilentlyContinue
    if ($script:Service) { Stop-WitnessService -Id $script:Service.Id -Confirm:$false -ErrorAction SilentlyContinue }
    Remove-Module HvCbt -Force -ErrorAction SilentlyContinue
    $env:HVCBT_RUN_DIR = $SavedRunDir
    if ($Dir) { Remove-Item -LiteralPath $Dir -Recurse -Force -ErrorAction SilentlyContinue }
}

Describe 'Witness service and client cmdlets' {
    It 'starts nothing with -WhatIf, refuses a service with no authentication choice, then starts one' {
        $common = @{ NodeName = 'FS1'; NetName = 'SOFS'; IPAddress = $Fs1; Port = 0; EndpointMapperPort = 0; StaticNode = "FS1=$Fs1", "FS2=$Fs2" }
        Start-WitnessService @common -AllowAnonymous -WhatIf | Should -BeNullOrEmpty
        $null = Start-WitnessService @common -ErrorAction SilentlyContinue -ErrorVariable refused
        $refused.Count | Should -Be 1
        $refused[0].CategoryInfo.Category | Should -Be 'InvalidArgument'
        $refused[0].Exception.Message | Should -Match 'allow-anonymous|credentials'

        $script:Service = Start-WitnessService @common -AllowAnonymous -ErrorAction Stop
        $Service.PSObject.TypeNames[0] | Should -Be 'HvCbt.WitnessService'
        $Service.Id | Should -Be 'witness:FS1'
        $Service.Port | Should -BeGreaterThan 0
        $Service.AllowAnonymous | Should -BeTrue
        @($Service.IPAddress) | Should -Be @($Fs1)
        Test-Path -LiteralPath $Service.AdminSocket[0] | Should -BeTrue
    }

    It 'passes the etcd settings through: etcd and a static node list exclude each other' {
        $null = Start-WitnessService -NodeName FS9 -NetName SOFS -IPAddress 127.0.0.69 -Port 0 -EndpointMapperPort 0 -AllowAnonymous -StaticNode 'FS9=127.0.0.69' -EtcdEndpoint 'http://127.0.0.1:1' -ErrorAction SilentlyContinue -ErrorVariable both
        $both.Count | Should -Be 1
        $both[0].CategoryInfo.Category | Should -Be 'InvalidArgument'
        $both[0].Exception.Message | Should -Match 'etcd'
    }

    It 'lists the interfaces of both nodes, flagging only the other node as a witness' {
        $list = @(Get-WitnessInterface -Server $Fs1 -Port $Service.Port -ErrorAction Stop)
        $list.Count | Should -Be 2
        $list[0].PSObject.TypeNames[0] | Should -Be 'HvCbt.WitnessInterface'
        $node1 = $list | Where-Object InterfaceGroupName -eq 'FS1'
        $node2 = $list | Where-Object InterfaceGroupName -eq 'FS2'
        $node1.IPv4Address | Should -Be $Fs1
        $node2.IPv4Address | Should -Be $Fs2
        $node1.State | Should -Be 'Available'
        $node1.IsWitness | Should -BeFalse
        $node2.IsWitness | Should -BeTrue
    }

    It 'has no clients before a registration' {
        @(Get-WitnessClient -Server $Fs1 -ErrorAction Stop).Count | Should -Be 0
    }

    It 'registers a client for the file server on FS2 with the witness on FS1' {
        Register-WitnessClient -NetName SOFS -FileServer $Fs2 -WitnessServer $Fs1 -Port $Service.Port -ClientName PESTER -WhatIf | Should -BeNullOrEmpty
        @(Get-WitnessStatus).Count | Should -Be 0
        $script:Reg = Register-WitnessClient -NetName SOFS -FileServer $Fs2 -WitnessServer $Fs1 -Port $Service.Port -ClientName PESTER -ErrorAction Stop
        $Reg.PSObject.TypeNames[0] | Should -Be 'HvCbt.WitnessRegistration'
        $Reg.WitnessNodeName | Should -Be 'FS1'
        $Reg.FileServerNodeName | Should -Be 'FS2'
        $Reg.ClientName | Should -Be 'PESTER'
        (Get-WitnessStatus -Id $Reg.Id).State | Should -Be $Reg.State
    }

    It 'shows the registration on the server side like Get-SmbWitnessClient' {
        $c = @(Get-WitnessClient -Server $Fs1 -ErrorAction Stop)
        $c.Count | Should -Be 1
        $c[0].PSObject.TypeNames[0] | Should -Be 'HvCbt.WitnessClient'
        $c[0].ClientName | Should -Be 'PESTER'
        $c[0].NetworkName | Should -Be 'SOFS'
        $c[0].FileServerNodeName | Should -Be 'FS2'
        $c[0].WitnessNodeName | Should -Be 'FS1'
        $c[0].IPAddress | Should -Be $Fs2
        $c[0].NotificationsSent | Should -Be 0
        @(Get-WitnessClient -Server $Fs1 -ClientName 'OTHER*').Count | Should -Be 0
    }

    It 'moves the client (CLIENT_MOVE) only without -WhatIf, and the client hears it' {
        Get-WitnessClient -Server $Fs1 | Move-WitnessClient -DestinationNode FS1 -WhatIf | Should -BeNullOrEmpty
        (Get-WitnessClient -Server $Fs1).NotificationsSent | Should -Be 0
        $m = Get-WitnessClient -Server $Fs1 | Move-WitnessClient -DestinationNode FS1 -Confirm:$false -ErrorAction Stop
        $m.PSObject.TypeNames[0] | Should -Be 'HvCbt.WitnessClientMove'
        $m.Notified | Should -Be 1
        Wait-Until { (Get-WitnessStatus -Id $Reg.Id).Notifications -ge 1 } | Should -BeTrue
        (Get-WitnessStatus -Id $Reg.Id).LastNotification | Should -Match 'MOVE'
    }

    It 'unregisters the client, and reports an unknown registration as ObjectNotFound' {
        $u = Get-WitnessStatus -Id $Reg.Id | Unregister-WitnessClient -Confirm:$false -PassThru -ErrorAction Stop
        $u.Stopped | Should -BeTrue
        @(Get-WitnessStatus).Count | Should -Be 0
        $null = Unregister-WitnessClient -Id $Reg.Id -Confirm:$false -ErrorAction SilentlyContinue -ErrorVariable gone
        $gone[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        Wait-Until { @(Get-WitnessClient -Server $Fs1).Count -eq 0 } | Should -BeTrue
    }

    It 'shows the service state, and marks a node down and up again with Set-WitnessNodeState' {
        $st = $Service | Get-WitnessService -ErrorAction Stop
        $st.PSObject.TypeNames[0] | Should -Be 'HvCbt.WitnessServiceStatus'
        $st.NodeName | Should -Be 'FS1'
        $st.MembershipSource | Should -Be 'static'
        $st.Connected | Should -BeTrue
        @($st.Nodes.Name | Sort-Object) | Should -Be @('FS1', 'FS2')
        ($st.Nodes | Where-Object Name -eq 'FS2').State | Should -Be 'up'

        Set-WitnessNodeState -Node FS2 -State Down -Server $Fs1 -WhatIf | Should -BeNullOrEmpty
        ((Get-WitnessService -Server $Fs1).Nodes | Where-Object Name -eq 'FS2').State | Should -Be 'up'
        $d = Set-WitnessNodeState -Node FS2 -State Down -Server $Fs1 -Confirm:$false -ErrorAction Stop
        $d.State | Should -Be 'Down'
        ((Get-WitnessService -Server $Fs1).Nodes | Where-Object Name -eq 'FS2').State | Should -Be 'down'
        (Get-WitnessInterface -Server $Fs1 -Port $Service.Port | Where-Object InterfaceGroupName -eq 'FS2').State | Should -Be 'Unavailable'
        (Get-WitnessService -Server $Fs1).Nodes | Where-Object State -eq 'down' |
            Set-WitnessNodeState -State Up -Server $Fs1 -Confirm:$false -ErrorAction Stop | ForEach-Object State | Should -Be 'Up'
        (Get-WitnessInterface -Server $Fs1 -Port $Service.Port | Where-Object InterfaceGroupName -eq 'FS2').State | Should -Be 'Available'
    }

    It 'moves the clients of a share (none registered here: nobody is notified) only without -WhatIf' {
        Move-WitnessShare -ShareName VMs -DestinationNode FS1 -Server $Fs1 -WhatIf | Should -BeNullOrEmpty
        $m = Move-WitnessShare -ShareName VMs -DestinationNode FS1 -Server $Fs1 -Confirm:$false -ErrorAction Stop
        $m.PSObject.TypeNames[0] | Should -Be 'HvCbt.WitnessShareMove'
        $m.Notified | Should -Be 0
    }

    It 'stops the service; its admin socket goes away and a second stop is ObjectNotFound' {
        $Service | Stop-WitnessService -WhatIf
        @(Get-WitnessClient -Server $Fs1 -ErrorAction Stop).Count | Should -Be 0
        $s = $Service | Stop-WitnessService -Confirm:$false -PassThru -ErrorAction Stop
        $s.Stopped | Should -BeTrue
        $null = Get-WitnessClient -Server $Fs1 -ErrorAction SilentlyContinue -ErrorVariable noService
        $noService.Count | Should -Be 1
        $null = Stop-WitnessService -Id $Service.Id -Confirm:$false -ErrorAction SilentlyContinue -ErrorVariable twice
        $twice[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $script:Service = $null
    }
}

Describe 'Witness authentication through the cmdlets' {
    It 'stores a user with Add-WitnessUser and lists interfaces only with the right credential' {
        $store = Join-Path $Dir 'users.json'
        $cred = [pscredential]::new('HV01', (ConvertTo-SecureString 'Pa55-word!' -AsPlainText -Force))
        Add-WitnessUser -CredentialStorePath $store -Credential $cred -WhatIf | Should -BeNullOrEmpty
        Test-Path -LiteralPath $store | Should -BeFalse
        $u = Add-WitnessUser -CredentialStorePath $store -Credential $cred -ErrorAction Stop
        $u.Replaced | Should -BeFalse
        (Get-Content -LiteralPath $store -Raw) | Should -Not -Match 'Pa55-word'
        $script:Service = Start-WitnessService -NodeName FS1 -NetName SOFS -IPAddress $Fs1 -Port 0 -EndpointMapperPort 0 -CredentialStorePath $store -StaticNode "FS1=$Fs1", "FS2=$Fs2" -ErrorAction Stop
        $Service.AllowAnonymous | Should -BeFalse

        @(Get-WitnessInterface -Server $Fs1 -Port $Service.Port -Credential $cred -ErrorAction Stop).Count | Should -Be 2
        @(Get-WitnessInterface -Server $Fs1 -Port $Service.Port -Credential $cred -Seal -ErrorAction Stop).Count | Should -Be 2
        $wrong = [pscredential]::new('HV01', (ConvertTo-SecureString 'wrong' -AsPlainText -Force))
        $null = Get-WitnessInterface -Server $Fs1 -Port $Service.Port -Credential $wrong -ErrorAction SilentlyContinue -ErrorVariable denied
        $denied.Count | Should -Be 1
        $null = Get-WitnessInterface -Server $Fs1 -Port $Service.Port -ErrorAction SilentlyContinue -ErrorVariable anonymous
        $anonymous.Count | Should -Be 1
        $Service | Stop-WitnessService -Confirm:$false
        $script:Service = $null
    }
}
