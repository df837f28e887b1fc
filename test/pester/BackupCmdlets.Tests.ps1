# Backup-Vhd, Get-VhdBackup, Test-VhdBackup, Restore-Vhd and Remove-VhdBackup against the real engine: a full and
# an incremental backup of a tracked disk written through the module's NBD export (qemu-io), each restored and
# compared byte for byte (SHA-256 of raw images, and qemu-img compare) with a copy taken at backup time.
BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')
    Import-HvCbtUnderTest
    $script:Dir = New-TestFolder
    $script:Repo = Join-Path $Dir 'repo'
    $script:QemuIo = (Get-Command qemu-io -CommandType Application -ErrorAction Ignore | Select-Object -First 1).Source

    function Write-ThroughExport {
        # Each command runs through a tracked NBD export of the disk in the module's engine.
        param([string]$Disk, [string[]]$Command)
        $e = Start-VhdExport -Path $Disk -Listen 127.0.0.1:0 -ErrorAction Stop
        try {
            foreach ($c in $Command) {
                $out = & $script:QemuIo -f raw -c $c $e.Uri 2>&1
                if ($LASTEXITCODE -ne 0 -or ($out -join "`n") -match 'error|failed') { throw "qemu-io $c failed: $out" }
            }
        } finally {
            $e | Stop-VhdExport -Confirm:$false
        }
    }

    function Get-RawHash {
        # SHA-256 of the disk's virtual content: converted to raw by the engine, hashed by .NET.
        param([string]$Disk, [string]$Name)
        $raw = (ConvertTo-VhdFile -Path $Disk -DestinationPath (Join-Path $Dir $Name) -Format Raw -ErrorAction Stop).Destination
        (Get-FileHash -LiteralPath $raw -Algorithm SHA256).Hash
    }
}

AfterAll {
    Remove-Module HvCbt -Force -ErrorAction SilentlyContinue
    if ($Dir) { Remove-Item -LiteralPath $Dir -Recurse -Force -ErrorAction SilentlyContinue }
}

Describe 'A backup cycle through the cmdlets' {
    BeforeAll {
        if ($QemuIo) {
            $script:Disk = (New-VhdFile -Path (Join-Path $Dir 'vm.vhdx') -SizeBytes 96MB -ErrorAction Stop).Path
            $null = Enable-VhdChangeTracking -Path $Disk -ErrorAction Stop
            Write-ThroughExport $Disk 'write -P 0x61 0 4M', 'write -P 0x62 50M 3M', 'write -P 0x63 95M 1M'
        }
    }
    BeforeEach {
        if (-not $QemuIo) { Set-ItResult -Skipped -Because 'qemu-io not installed (Debian package qemu-utils)' }
    }

    It 'backs up nothing with -WhatIf' {
        Get-Item -LiteralPath $Disk | Backup-Vhd -Repository $Repo -WhatIf | Should -BeNullOrEmpty
        Test-Path -LiteralPath $Repo | Should -BeFalse
    }

    It 'takes a full backup of disks piped from Get-ChildItem' {
        $script:Hash1 = Get-RawHash $Disk 'at-full.img'
        $script:Full = @(Get-ChildItem -LiteralPath $Dir -Filter '*.vhdx' | Backup-Vhd -Repository $Repo -ErrorAction Stop)
        $Full.Count | Should -Be 1
        $Full = $Full[0]
        $Full.PSObject.TypeNames[0] | Should -Be 'HvCbt.VhdBackupResult'
        $Full.Mode | Should -Be 'Full'
        $Full.Path | Should -Be $Disk
        $Full.Repository | Should -Be $Repo
        $Full.SizeBytes | Should -Be 96MB
        $Full.ParentId | Should -BeNullOrEmpty
        $Full.ReferencePoint | Should -Match '^rp-'
        $Full.Duration | Should -BeOfType [timespan]
    }

    It 'takes an incremental backup that reads only what changed, from change tracking' {
        Write-ThroughExport $Disk 'write -P 0x71 50M 64k', 'write -P 0x72 10M 1M'
        $script:Hash2 = Get-RawHash $Disk 'at-incr.img'
        $Hash2 | Should -Not -Be $Hash1
        $script:Incr = Backup-Vhd -Path $Disk -Repository $Repo -ErrorAction Stop
        $Incr.Mode | Should -Be 'Incremental'
        $Incr.ParentId | Should -Be $Full.Id
        $Incr.ChangeSource | Should -Be 'tracking'
        $Incr.FellBack | Should -BeFalse
        # Two changed areas, rounded out to 64 KiB chunks: 1 + 16 chunks, read at most 1.1 x that.
        $Incr.BytesRead | Should -BeLessOrEqual (17 * 64KB * 1.1)
        $Incr.BytesRead | Should -BeLessThan $Full.BytesRead
    }

    It 'lists both backups with Get-VhdBackup, oldest first, and filters by id and disk' {
        $list = @(Get-VhdBackup -Repository $Repo -ErrorAction Stop)
        $list.Count | Should -Be 2
        $list[0].PSObject.TypeNames[0] | Should -Be 'HvCbt.VhdBackup'
        @($list.Id) | Should -Be @($Full.Id, $Incr.Id)
        $list[1].ParentId | Should -Be $Full.Id
        $list[0].DiskPath | Should -Be $Disk
        $list[0].FinishedAt | Should -BeOfType [datetime]
        @(Get-VhdBackup $Repo -Id $Incr.Id).Count | Should -Be 1
        @(Get-VhdBackup $Repo -DiskPath '*nothing*').Count | Should -Be 0
    }

    It 'verifies the repository with Test-VhdBackup, per backup from the pipeline and deep' {
        $all = @(Test-VhdBackup -Repository $Repo -ErrorAction Stop)
        $all.Count | Should -Be 2
        foreach ($v in $all) {
            $v.PSObject.TypeNames[0] | Should -Be 'HvCbt.VhdBackupVerification'
            $v.IsValid | Should -BeTrue
            $v.ChunksChecked | Should -BeGreaterThan 0
        }
        $one = @(Get-VhdBackup $Repo -Id $Full.Id | Test-VhdBackup -Deep -ErrorAction Stop)
        $one.Count | Should -Be 1
        $one[0].ImageSha256Matches | Should -BeTrue
        Test-VhdBackup -Repository $Repo -Quiet | Should -BeTrue
    }

    It 'restores each backup to a disk whose content hashes like the disk at that backup' {
        $r1 = Get-VhdBackup $Repo -Id $Full.Id | Restore-Vhd -DestinationPath (Join-Path $Dir 'restored-full.img') -Format Raw -ErrorAction Stop
        $r1.PSObject.TypeNames[0] | Should -Be 'HvCbt.VhdRestoreResult'
        $r1.VhdFormat | Should -Be 'Raw'
        (Get-FileHash -LiteralPath $r1.DestinationPath -Algorithm SHA256).Hash | Should -Be $Hash1
        $r2 = $Incr | Restore-Vhd -DestinationPath (Join-Path $Dir 'restored-incr.vhdx') -ErrorAction Stop
        $r2.VhdFormat | Should -Be 'VHDX'
        Get-RawHash $r2.DestinationPath 'restored-incr.img' | Should -Be $Hash2
        if ($QemuImg) {
            & $QemuImg compare -q -f vhdx -F raw $r2.DestinationPath (Join-Path $Dir 'at-incr.img')
            $LASTEXITCODE | Should -Be 0
        }
        (Test-VhdFile $r2.DestinationPath).IsValid | Should -BeTrue
    }

    It 'restores nothing with -WhatIf, and rolls a disk back in place writing only the differing chunks' {
        $copy = Join-Path $Dir 'rollback.vhdx'
        $null = ConvertTo-VhdFile -Path $Disk -DestinationPath $copy -ErrorAction Stop
        $Full | Restore-Vhd -DestinationPath $copy -InPlace -WhatIf | Should -BeNullOrEmpty
        Get-RawHash $copy 'rollback-before.img' | Should -Be $Hash2
        $r = $Full | Restore-Vhd -DestinationPath $copy -InPlace -Force -Confirm:$false -ErrorAction Stop
        $r.InPlace | Should -BeTrue
        $r.ChunksUnchanged | Should -BeGreaterThan 0
        # the 64 KiB at 50M and the 1 MiB at 10M changed since the full backup: 1 + 16 chunks differ
        $r.ChunksWritten | Should -Be 17
        Get-RawHash $copy 'rollback-after.img' | Should -Be $Hash1
    }

    It 'reports an unknown backup id as a non-terminating error with the engine''s category' {
        $null = Restore-Vhd -Repository $Repo -Id 'no-such-backup' -DestinationPath (Join-Path $Dir 'none.vhdx') -ErrorAction SilentlyContinue -ErrorVariable errs
        $errs.Count | Should -Be 1
        $errs[0].CategoryInfo.Category | Should -BeIn 'ObjectNotFound', 'InvalidArgument'
        Test-Path -LiteralPath (Join-Path $Dir 'none.vhdx') | Should -BeFalse
    }

    It 'finds a damaged chunk with Test-VhdBackup' {
        $damaged = Join-Path $Dir 'repo-damaged'
        Copy-Item -LiteralPath $Repo -Destination $damaged -Recurse
        # The last record of the largest pack ends the file: its chunk is the one the flipped last byte damages.
        # The pack's idx names it (16-byte header, then 48-byte entries: SHA-256, u64 offset, u32 length, u32 size).
        $pack = Get-ChildItem -LiteralPath (Join-Path $damaged 'packs') -Filter '*.pack' | Sort-Object Length -Descending | Select-Object -First 1
        $idx = [System.IO.File]::ReadAllBytes([System.IO.Path]::ChangeExtension($pack.FullName, '.idx'))
        $count = [BitConverter]::ToUInt32($idx, 8)
        $last = 0..($count - 1) | Sort-Object { [BitConverter]::ToUInt64($idx, 16 + 48 * $_ + 32) } | Select-Object -Last 1
        $name = [Convert]::ToHexString($idx, 16 + 48 * $last, 32).ToLowerInvariant()
        $bytes = [System.IO.File]::ReadAllBytes($pack.FullName)
        $bytes[$bytes.Length - 1] = $bytes[$bytes.Length - 1] -bxor 0xff
        [System.IO.File]::WriteAllBytes($pack.FullName, $bytes)
        $v = @(Test-VhdBackup -Repository $damaged -ErrorAction Stop)
        @($v | Where-Object { -not $_.IsValid }).Count | Should -BeGreaterThan 0
        $bad = $v | Where-Object { -not $_.IsValid } | Select-Object -First 1
        $bad.Problems[0].Problem | Should -Be 'Corrupt'
        $bad.Problems[0].Chunk | Should -Be $name
        Test-VhdBackup -Repository $damaged -Quiet | Should -BeFalse
    }

    It 'prunes by retention: -WhatIf removes nothing, then the backups before the newest full one go' {
        $null = Backup-Vhd -Path $Disk -Repository $Repo -Mode Full -ErrorAction Stop
        @(Get-VhdBackup $Repo).Count | Should -Be 3
        Remove-VhdBackup -Repository $Repo -KeepLast 1 -GraceMinutes 0 -WhatIf | Should -BeNullOrEmpty
        @(Get-VhdBackup $Repo).Count | Should -Be 3
        $p = @(Get-VhdBackup $Repo | Remove-VhdBackup -KeepLast 1 -GraceMinutes 0 -Confirm:$false -ErrorAction Stop)
        $p.Count | Should -Be 1 -Because 'three backups of one repository prune it once'
        $p = $p[0]
        $p.PSObject.TypeNames[0] | Should -Be 'HvCbt.VhdBackupPruneResult'
        @($p.Removed | Sort-Object) | Should -Be @(@($Full.Id, $Incr.Id) | Sort-Object)
        @(Get-VhdBackup $Repo).Count | Should -Be 1
        Test-VhdBackup -Repository $Repo -Quiet | Should -BeTrue
        { Remove-VhdBackup -Repository $Repo -Confirm:$false } | Should -Throw '*retention rule*'
    }
}
