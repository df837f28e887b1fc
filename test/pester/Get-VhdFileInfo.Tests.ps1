# Get-VhdFileInfo against the real engine, on disks made by qemu-img, compared with `qemu-img info`.
BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')
    Import-HvCbtUnderTest
    $script:Dir = New-TestFolder
    if ($QemuImg) {
        # Sizes that are not multiples of the VHD CHS geometry or of 1 MiB, so rounding differences show.
        $script:Disks = @(
            New-QemuDisk -Folder $Dir -Name 'dyn.vhdx' -Format vhdx -Size 1G
            New-QemuDisk -Folder $Dir -Name 'fixed.vhdx' -Format vhdx -Size 24M -Options 'subformat=fixed'
            New-QemuDisk -Folder $Dir -Name 'big-blocks.vhdx' -Format vhdx -Size 3G -Options 'block_size=33554432'
            New-QemuDisk -Folder $Dir -Name 'dyn.vhd' -Format vpc -Size 300M
            New-QemuDisk -Folder $Dir -Name 'fixed.vhd' -Format vpc -Size 40M -Options 'subformat=fixed'
        )
    }
}

AfterAll {
    Remove-Module HvCbt -Force -ErrorAction SilentlyContinue
    if ($Dir) { Remove-Item -LiteralPath $Dir -Recurse -Force -ErrorAction SilentlyContinue }
}

Describe 'Get-VhdFileInfo on qemu-img disks' {
    BeforeEach {
        if (-not $QemuImg) { Set-ItResult -Skipped -Because 'qemu-img not installed (Debian package qemu-utils)' }
    }

    It 'reports the virtual size qemu-img reports, for Get-ChildItem *.vhdx | Get-VhdFileInfo' {
        Push-Location $Dir
        try { $infos = @(Get-ChildItem *.vhdx | Get-VhdFileInfo -ErrorAction Stop) } finally { Pop-Location }
        $infos.Count | Should -Be 3
        foreach ($i in $infos) {
            $i.PSObject.TypeNames[0] | Should -Be 'HvCbt.VhdFileInfo'
            $i.VhdFormat | Should -Be 'VHDX'
            $i.Size | Should -Be (Get-QemuInfo $i.Path -Format vhdx).'virtual-size' -Because $i.Path
        }
    }

    It 'reports the virtual size qemu-img reports, for VHD (vpc) disks' {
        $infos = @(Get-ChildItem (Join-Path $Dir '*.vhd') | Get-VhdFileInfo -ErrorAction Stop)
        $infos.Count | Should -Be 2
        foreach ($i in $infos) {
            $i.VhdFormat | Should -Be 'VHD'
            $i.Size | Should -Be (Get-QemuInfo $i.Path -Format vpc).'virtual-size' -Because $i.Path
        }
    }

    It 'reports format, type, block size and file size like Get-VHD' {
        $byName = @{}
        Get-VhdFileInfo -Path $Disks -ErrorAction Stop | ForEach-Object { $byName[(Split-Path -Leaf $_.Path)] = $_ }
        $byName.Keys.Count | Should -Be 5
        $byName['dyn.vhdx'].VhdType | Should -Be 'Dynamic'
        $byName['fixed.vhdx'].VhdType | Should -Be 'Fixed'
        $byName['dyn.vhd'].VhdType | Should -Be 'Dynamic'
        $byName['fixed.vhd'].VhdType | Should -Be 'Fixed'
        $byName['big-blocks.vhdx'].BlockSize | Should -Be 33554432
        foreach ($i in $byName.Values) {
            $i.FileSize | Should -Be (Get-Item -LiteralPath $i.Path).Length -Because $i.Path
            $i.LogicalSectorSize | Should -BeIn 512, 4096
            $i.PhysicalSectorSize | Should -BeIn 512, 4096
            $i.ParentPath | Should -BeNullOrEmpty
        }
        # A fixed VHD's file is the disk plus a 512-byte footer.
        $byName['fixed.vhd'].FileSize | Should -Be ($byName['fixed.vhd'].Size + 512)
    }

    It 'gives VHDX disks their Virtual Disk ID as an upper-case GUID, different per disk' {
        $ids = @(Get-VhdFileInfo (Join-Path $Dir '*.vhdx') -ErrorAction Stop | ForEach-Object DiskIdentifier)
        $ids.Count | Should -Be 3
        foreach ($id in $ids) {
            $id | Should -MatchExactly '^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$'
        }
        @($ids | Sort-Object -Unique).Count | Should -Be 3
    }

    It 'binds -Path by position, by value, and by the FullName and PSPath properties' {
        $file = Join-Path $Dir 'dyn.vhdx'
        (Get-VhdFileInfo $file).Path | Should -Be $file
        ($file | Get-VhdFileInfo).Path | Should -Be $file
        ([pscustomobject]@{ FullName = $file } | Get-VhdFileInfo).Path | Should -Be $file
        ([pscustomobject]@{ PSPath = "Microsoft.PowerShell.Core\FileSystem::$file" } | Get-VhdFileInfo).Path | Should -Be $file
        (Get-Item -LiteralPath $file | Get-VhdFileInfo).Path | Should -Be $file
    }

    It 'resolves relative paths, wildcards, and names with wildcard characters taken literally' {
        $odd = Join-Path $Dir 'odd[1].vhdx'
        Copy-Item -LiteralPath (Join-Path $Dir 'fixed.vhdx') -Destination $odd
        Push-Location $Dir
        try {
            (Get-VhdFileInfo ./dyn.vhd).Path | Should -Be (Join-Path $Dir 'dyn.vhd')
            @(Get-VhdFileInfo 'fixed.*').Count | Should -Be 2
            (Get-VhdFileInfo 'odd[1].vhdx' -ErrorAction Stop).Path | Should -Be $odd
            @(Get-VhdFileInfo 'nothing-matches-*.vhdx' -ErrorAction Stop).Count | Should -Be 0
        } finally {
            Pop-Location
            Remove-Item -LiteralPath $odd
        }
    }

    It 'reports a differencing VHDX and its parent as libvhdi sees them' {
        if (-not $VhdiInfo) { Set-ItResult -Skipped -Because 'vhdiinfo not installed (Debian package libvhdi-utils)' }
        # qemu-img cannot create differencing VHDX files; the engine's own vhd.create makes the child, and
        # libvhdi (an independent reader) is the reference.
        $parent = Join-Path $Dir 'dyn.vhdx'
        $child = Join-Path $Dir 'child.avhdx'
        & (Get-Module HvCbt) { param($c, $p) Invoke-HvCbtEngine -Method 'vhd.create' -Params @{ path = $c; parent = $p } -ErrorAction Stop } $child $parent | Out-Null
        try {
            $i = Get-VhdFileInfo $child -ErrorAction Stop
            $i.VhdFormat | Should -Be 'VHDX'
            $i.VhdType | Should -Be 'Differencing'
            $i.Size | Should -Be (Get-VhdFileInfo $parent).Size
            $i.ParentPath | Should -Match '(^|[\\/])dyn\.vhdx$'
            $vhdi = (& $VhdiInfo $child) -join "`n"
            $vhdi | Should -Match 'Disk type\s*:\s*Differential'
            $vhdi | Should -Match "Media size\s*:.*\($($i.Size) bytes\)"
            $vhdi | Should -Match 'Parent filename\s*:.*dyn\.vhdx'
        } finally {
            Remove-Item -LiteralPath $child -ErrorAction SilentlyContinue
        }
    }

    It 'shows a table by default' {
        $text = Get-VhdFileInfo (Join-Path $Dir 'dyn.vhdx') | Out-String -Width 200
        $text | Should -Match 'VhdFormat\s+VhdType\s+Size\s+FileSize\s+Path'
        $text | Should -Match 'VHDX\s+Dynamic\s+1 GiB'
    }
}

Describe 'Get-VhdFileInfo errors' {
    BeforeEach {
        if (-not $QemuImg) { Set-ItResult -Skipped -Because 'qemu-img not installed (Debian package qemu-utils)' }
    }

    It 'writes a non-terminating ObjectNotFound error for a missing file and goes on with the next' {
        $missing = Join-Path $Dir 'missing.vhdx'
        $out = @($Disks[0], $missing, $Disks[3] | Get-VhdFileInfo -ErrorVariable errs -ErrorAction SilentlyContinue)
        $out.Count | Should -Be 2
        $out[0].Path | Should -Be $Disks[0]
        $out[1].Path | Should -Be $Disks[3]
        $errs.Count | Should -Be 1
        $errs[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $errs[0].TargetObject | Should -Be $missing
        $errs[0].Exception.Message | Should -Match ([regex]::Escape($missing))
        $errs[0].Exception.GetType().FullName | Should -Be 'HvCbt.EngineException'
        $errs[0].FullyQualifiedErrorId | Should -Match '^HvCbt\.vhd\.info\.\d+,Get-VhdFileInfo$'
    }

    It 'stops the pipeline on the first error with -ErrorAction Stop' {
        $seen = [System.Collections.Generic.List[object]]::new()
        $err = $null
        try {
            Join-Path $Dir 'missing.vhdx', $Disks[0] | Get-VhdFileInfo -ErrorAction Stop | ForEach-Object { $seen.Add($_) }
        } catch {
            $err = $_
        }
        $err | Should -Not -BeNullOrEmpty
        $err.CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $seen.Count | Should -Be 0
    }

    It 'reports a damaged VHDX with the engine''s InvalidData category, and goes on' {
        # The VHDX file signature followed by zeros: no valid header at 64 KiB or 128 KiB.
        $junk = Join-Path $Dir 'junk.vhdx'
        $bytes = [byte[]]::new(1048576)
        [System.Text.Encoding]::ASCII.GetBytes('vhdxfile').CopyTo($bytes, 0)
        [System.IO.File]::WriteAllBytes($junk, $bytes)
        try {
            $out = @(Get-VhdFileInfo $junk, $Disks[1] -ErrorVariable errs -ErrorAction SilentlyContinue)
            $errs.Count | Should -Be 1
            $errs[0].CategoryInfo.Category | Should -Be 'InvalidData'
            $errs[0].Exception.Message | Should -Match 'junk\.vhdx'
            ($errs[0].Exception.DataJson | ConvertFrom-Json).file | Should -Be $junk
            $out.Count | Should -Be 1
        } finally {
            Remove-Item -LiteralPath $junk
        }
    }

    It 'refuses paths on other providers with InvalidArgument' {
        $out = @(Get-VhdFileInfo 'Env:\PATH', $Disks[0] -ErrorVariable errs -ErrorAction SilentlyContinue)
        $errs.Count | Should -Be 1
        $errs[0].CategoryInfo.Category | Should -Be 'InvalidArgument'
        $out.Count | Should -Be 1
    }
}
