# Change tracking, reference points, changed blocks and the NBD export cmdlets against the real engine: writes go
# through the module's own export with qemu-io (an independent NBD client), and the changed ranges must name them.
BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')
    Import-HvCbtUnderTest
    $script:Dir = New-TestFolder
    $script:QemuIo = (Get-Command qemu-io -CommandType Application -ErrorAction Ignore | Select-Object -First 1).Source

    function Invoke-QemuIo {
        param([string]$Format, [string]$Command, [string]$Target)
        $out = & $script:QemuIo -f $Format -c $Command $Target 2>&1
        if ($LASTEXITCODE -ne 0 -or ($out -join "`n") -match 'error|failed') { throw "qemu-io $Command $Target failed: $out" }
    }
}

AfterAll {
    Get-VhdExport -ErrorAction SilentlyContinue | Stop-VhdExport -Confirm:$false -ErrorAction SilentlyContinue
    Remove-Module HvCbt -Force -ErrorAction SilentlyContinue
    if ($Dir) { Remove-Item -LiteralPath $Dir -Recurse -Force -ErrorAction SilentlyContinue }
}

Describe 'A tracking cycle through the cmdlets' {
    BeforeAll {
        $script:Disk = (New-VhdFile -Path (Join-Path $Dir 'tracked.vhdx') -SizeBytes 256MB -ErrorAction Stop).Path
    }
    BeforeEach {
        if (-not $QemuIo) { Set-ItResult -Skipped -Because 'qemu-io not installed (Debian package qemu-utils)' }
    }

    It 'enables nothing with -WhatIf, then enables tracking from the pipeline' {
        Get-Item -LiteralPath $Disk | Enable-VhdChangeTracking -WhatIf | Should -BeNullOrEmpty
        Test-Path -LiteralPath "$Disk.hvcbt" | Should -BeFalse
        $null = Get-VhdChangeTracking $Disk -ErrorAction SilentlyContinue -ErrorVariable notYet
        $notYet[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'

        $s = Get-Item -LiteralPath $Disk | Enable-VhdChangeTracking -GranularityBytes '64K' -ErrorAction Stop
        $s.PSObject.TypeNames[0] | Should -Be 'HvCbt.VhdChangeTracking'
        $s.Path | Should -Be $Disk
        $s.IsTrusted | Should -BeTrue
        $s.GranularityBytes | Should -Be 64KB
        $s.SizeBytes | Should -Be 256MB
        @($s.ReferencePoints).Count | Should -Be 0
        Test-Path -LiteralPath "$Disk.hvcbt" | Should -BeTrue
    }

    It 'reports the ranges qemu-io wrote through a tracked export since a reference point' {
        $rp1 = New-VhdReferencePoint -Path $Disk -ErrorAction Stop
        $rp1.PSObject.TypeNames[0] | Should -Be 'HvCbt.VhdReferencePoint'
        $rp1.Id | Should -Match '^rp-'
        $rp1.CreatedAt | Should -BeOfType [datetime]

        $e = Start-VhdExport -Path $Disk -Listen 127.0.0.1:0 -ErrorAction Stop
        $e.PSObject.TypeNames[0] | Should -Be 'HvCbt.VhdExport'
        $e.Uri | Should -Match '^nbd://127\.0\.0\.1:\d+/tracked$'
        $e.SizeBytes | Should -Be 256MB
        (Get-VhdExport -Id $e.Id).Path | Should -Be $Disk
        try {
            Invoke-QemuIo -Format raw -Command 'write -P 0x11 1M 64k' -Target $e.Uri
            Invoke-QemuIo -Format raw -Command 'write -P 0x22 100M 200k' -Target $e.Uri
            $script:Rp2 = New-VhdReferencePoint -Path $Disk -ErrorAction Stop
            Invoke-QemuIo -Format raw -Command 'write -P 0x33 200M 4k' -Target $e.Uri

            # While the export runs this engine answers from its live store: exact, at 64 KiB granularity.
            $since1 = @(Get-VhdChangedBlock -Path $Disk -Since $rp1 -ErrorAction Stop)
            $since1[0].PSObject.TypeNames[0] | Should -Be 'HvCbt.VhdChangedBlock'
            @($since1 | ForEach-Object { "$($_.Offset)+$($_.Length)" }) | Should -Be @("$(1MB)+$(64KB)", "$(100MB)+$(256KB)", "$(200MB)+$(64KB)")
            $between = @(Get-VhdChangedBlock -Path $Disk -Since $rp1.Id -Until $Rp2 -ErrorAction Stop)
            @($between | ForEach-Object Offset) | Should -Be @(1MB, 100MB)
            $sum = Get-VhdChangedBlock -Path $Disk -Since $Rp2 -Summary -ErrorAction Stop
            $sum.PSObject.TypeNames[0] | Should -Be 'HvCbt.VhdChangeSummary'
            $sum.RangeCount | Should -Be 1
            $sum.ChangedBytes | Should -Be 64KB
            $sum.Ranges[0].Offset | Should -Be 200MB

            # Disabling tracking while the export holds it is refused.
            $null = Disable-VhdChangeTracking -Path $Disk -Confirm:$false -ErrorAction SilentlyContinue -ErrorVariable busy
            $busy[0].CategoryInfo.Category | Should -Be 'ResourceBusy'
        } finally {
            Get-VhdExport | Where-Object Path -eq $Disk | Stop-VhdExport -Confirm:$false
        }
        @(Get-VhdExport) | Where-Object Path -eq $Disk | Should -BeNullOrEmpty

        # After the export stopped, another open (read-only, from the files) gives the same answer.
        @(Get-VhdChangedBlock -Path $Disk -Since $rp1 | ForEach-Object Offset) | Should -Be @(1MB, 100MB, 200MB)
        $st = Get-VhdChangeTracking -Path $Disk
        $st.IsTrusted | Should -BeTrue
        @($st.ReferencePoints.Id) | Should -Be @($rp1.Id, $Rp2.Id)
        $st.ChangedBytesSinceNewest | Should -Be 64KB
    }

    It 'lists and removes reference points through the pipeline; -WhatIf removes nothing' {
        $all = @(Get-VhdReferencePoint -Path $Disk -ErrorAction Stop)
        $all.Count | Should -Be 2
        $all | Remove-VhdReferencePoint -WhatIf
        @(Get-VhdReferencePoint -Path $Disk).Count | Should -Be 2
        $gone = @(Get-VhdReferencePoint -Path $Disk -Id $all[1].Id | Remove-VhdReferencePoint -Confirm:$false -PassThru -ErrorAction Stop)
        $gone.Count | Should -Be 1
        $gone[0].Removed | Should -BeTrue
        @(Get-VhdReferencePoint -Path $Disk).Id | Should -Be @($all[0].Id)
        # The removed point's changes merged into the older one: nothing is lost.
        @(Get-VhdChangedBlock -Path $Disk -Since $all[0] | ForEach-Object Offset) | Should -Be @(1MB, 100MB, 200MB)
        $null = Get-VhdChangedBlock -Path $Disk -Since $all[1].Id -ErrorAction SilentlyContinue -ErrorVariable stale
        $stale.Count | Should -Be 1
        $stale[0].CategoryInfo.Category | Should -BeIn 'ObjectNotFound', 'InvalidArgument'
    }

    It 'marks tracking untrusted after a write that bypassed HvCbt, and Reset-VhdChangeTracking starts afresh' {
        Invoke-QemuIo -Format vhdx -Command 'write -P 0x44 8M 4k' -Target $Disk
        $st = Get-VhdChangeTracking -Path $Disk
        $st.IsTrusted | Should -BeFalse
        $st.UntrustedReason | Should -Not -BeNullOrEmpty
        $gen = $st.Generation

        Reset-VhdChangeTracking -Path $Disk -WhatIf | Should -BeNullOrEmpty
        (Get-VhdChangeTracking -Path $Disk).Generation | Should -Be $gen
        $r = Reset-VhdChangeTracking -Path $Disk -Confirm:$false -ErrorAction Stop
        $r.IsTrusted | Should -BeTrue
        $r.Generation | Should -Not -Be $gen
        @($r.ReferencePoints).Count | Should -Be 0
    }

    It 'disables tracking (-WhatIf keeps it) and deletes the tracking folder' {
        Disable-VhdChangeTracking -Path $Disk -WhatIf
        Test-Path -LiteralPath "$Disk.hvcbt" | Should -BeTrue
        $d = Disable-VhdChangeTracking -Path $Disk -Confirm:$false -PassThru -ErrorAction Stop
        $d.Disabled | Should -BeTrue
        Test-Path -LiteralPath "$Disk.hvcbt" | Should -BeFalse
        (Disable-VhdChangeTracking -Path $Disk -Confirm:$false -PassThru).Disabled | Should -BeFalse
    }
}

Describe 'Other change sources: differencing disks and content scans' {
    BeforeEach {
        if (-not $QemuIo) { Set-ItResult -Skipped -Because 'qemu-io not installed (Debian package qemu-utils)' }
    }

    It 'reports a differencing child''s sectors with -SinceParent and imports them into the parent''s tracking' {
        $parent = (New-VhdFile -Path (Join-Path $Dir 'base.vhdx') -SizeBytes 64MB -ErrorAction Stop).Path
        $null = Enable-VhdChangeTracking -Path $parent -ErrorAction Stop
        $rp = New-VhdReferencePoint -Path $parent -ErrorAction Stop
        $child = (New-VhdFile -Path (Join-Path $Dir 'base-snap.avhdx') -ParentPath $parent -ErrorAction Stop).Path
        $e = Start-VhdExport -Path $child -Listen 127.0.0.1:0 -ErrorAction Stop
        try {
            Invoke-QemuIo -Format raw -Command 'write -P 0x21 4M 128k' -Target $e.Uri
            Invoke-QemuIo -Format raw -Command 'write -P 0x22 30M 64k' -Target $e.Uri
        } finally {
            $e | Stop-VhdExport -Confirm:$false
        }
        $own = Get-Item -LiteralPath $child | Get-VhdChangedBlock -SinceParent -Summary -ErrorAction Stop
        $own.Since | Should -Be 'parent'
        $own.ChangedBytes | Should -BeGreaterOrEqual (192KB)
        @($own.Ranges | Where-Object { $_.Offset -le 4MB -and $_.Offset + $_.Length -ge 4MB + 128KB }).Count | Should -Be 1
        $null = Get-VhdChangedBlock -Path $parent -SinceParent -ErrorAction SilentlyContinue -ErrorVariable notChild
        $notChild[0].CategoryInfo.Category | Should -Be 'InvalidArgument'

        Import-VhdChangedBlock -Path $parent -DifferencingPath $child -WhatIf | Should -BeNullOrEmpty
        @(Get-VhdChangedBlock -Path $parent -Since $rp).Count | Should -Be 0
        $imp = Import-VhdChangedBlock -Path $parent -DifferencingPath $child -ErrorAction Stop
        $imp.PSObject.TypeNames[0] | Should -Be 'HvCbt.VhdChangeImport'
        $imp.ImportedBytes | Should -Be $own.ChangedBytes
        $after = @(Get-VhdChangedBlock -Path $parent -Since $rp)
        @($after | Where-Object { $_.Offset -le 30MB -and $_.Offset + $_.Length -ge 30MB + 64KB }).Count | Should -Be 1
        (Get-VhdChangeTracking -Path $parent).IsTrusted | Should -BeTrue
    }

    It 'finds the blocks changed between two content scans; -WhatIf and -NoSave keep the saved scan' {
        $disk = (New-VhdFile -Path (Join-Path $Dir 'scanned.vhdx') -SizeBytes 32MB -ErrorAction Stop).Path
        Invoke-VhdContentScan -Path $disk -WhatIf | Should -BeNullOrEmpty
        Test-Path -LiteralPath "$disk.hvcbt" | Should -BeFalse
        $first = Get-Item -LiteralPath $disk | Invoke-VhdContentScan -ErrorAction Stop
        $first.PSObject.TypeNames[0] | Should -Be 'HvCbt.VhdContentScan'
        $first.ChangedBytes | Should -BeNullOrEmpty
        $first.Blocks | Should -Be (32MB / 64KB)
        Invoke-QemuIo -Format vhdx -Command 'write -P 0x31 5M 4k' -Target $disk
        $peek = Invoke-VhdContentScan -Path $disk -NoSave -ErrorAction Stop
        $peek.ChangedBytes | Should -Be 64KB
        $second = Invoke-VhdContentScan -Path $disk -ErrorAction Stop
        $second.ChangedBytes | Should -Be 64KB
        $second.Ranges[0].Offset | Should -Be 5MB
        (Invoke-VhdContentScan -Path $disk -ErrorAction Stop).ChangedBytes | Should -Be 0
    }
}

Describe 'NBD export cmdlets' {
    BeforeEach {
        if (-not $QemuImg) { Set-ItResult -Skipped -Because 'qemu-img not installed (Debian package qemu-utils)' }
    }

    It 'serves a read-only export that qemu-img reads with the disk''s size, and stops it by id' {
        $disk = (New-VhdFile -Path (Join-Path $Dir 'exported.vhdx') -SizeBytes 48MB -ErrorAction Stop).Path
        Start-VhdExport -Path $disk -Listen 127.0.0.1:0 -WhatIf | Should -BeNullOrEmpty
        @(Get-VhdExport) | Where-Object Path -eq $disk | Should -BeNullOrEmpty
        $e = Start-VhdExport -Path $disk -Listen 127.0.0.1:0 -ReadOnly -Name ro-test -ErrorAction Stop
        try {
            $e.ReadOnly | Should -BeTrue
            $e.Name | Should -Be 'ro-test'
            $info = & $QemuImg info --output=json -f raw $e.Uri | ConvertFrom-Json
            $info.'virtual-size' | Should -Be 48MB
            (Get-VhdExport -Path '*exported.vhdx').Id | Should -Be $e.Id
        } finally {
            $stopped = Stop-VhdExport -Id $e.Id -Confirm:$false -PassThru -ErrorAction Stop
        }
        $stopped.Stopped | Should -BeTrue
        $null = Stop-VhdExport -Id $e.Id -Confirm:$false -ErrorAction SilentlyContinue -ErrorVariable again
        $again[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
    }

    It 'keeps a checkpoint view on a tracked export, backs the exported disk up, and closes the view' {
        $disk = (New-VhdFile -Path (Join-Path $Dir 'live.vhdx') -SizeBytes 32MB -ErrorAction Stop).Path
        $null = Enable-VhdChangeTracking -Path $disk -ErrorAction Stop
        $null = New-VhdReferencePoint -Path $disk -Checkpoint -ErrorAction SilentlyContinue -ErrorVariable notLive
        $notLive[0].CategoryInfo.Category | Should -Be 'InvalidOperation'
        $e = Start-VhdExport -Path $disk -Listen 127.0.0.1:0 -ErrorAction Stop
        try {
            $rp = New-VhdReferencePoint -Path $disk -Checkpoint -ErrorAction Stop
            $rp.Checkpoint | Should -BeTrue
            if ($QemuIo) {
                $out = & $QemuIo -f raw -c 'write -P 0x5e 2M 64k' $e.Uri 2>&1
                $LASTEXITCODE | Should -Be 0 -Because "$out"
            }
            $c = $rp | Close-VhdCheckpoint -ErrorAction Stop
            $c.Closed | Should -BeTrue
            ($rp | Close-VhdCheckpoint).Closed | Should -BeFalse
            # The backup of a live export takes its own checkpoint (one per disk at a time, so after the close).
            $b = Backup-Vhd -Path $disk -Repository (Join-Path $Dir 'live-repo') -ErrorAction Stop
            $b.Mode | Should -Be 'Full'
            (Test-VhdBackup -Repository (Join-Path $Dir 'live-repo') -Deep -Quiet) | Should -BeTrue
            @(Get-VhdReferencePoint -Path $disk -Id $rp.Id).Count | Should -Be 1
        } finally {
            $e | Stop-VhdExport -Confirm:$false
        }
    }

    It 'refuses a non-loopback listen address without -AllowRemote (SecurityError)' {
        $disk = Join-Path $Dir 'exported.vhdx'
        $null = Start-VhdExport -Path $disk -Listen 0.0.0.0:0 -ErrorAction SilentlyContinue -ErrorVariable refused
        $refused[0].CategoryInfo.Category | Should -Be 'SecurityError'
    }
}
