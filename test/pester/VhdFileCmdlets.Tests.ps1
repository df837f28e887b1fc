# New-VhdFile, Test-VhdFile, Get-VhdAllocation, ConvertTo-VhdFile and Merge-VhdFile against the real engine, with
# qemu-img / qemu-io as the independent reference for sizes and content.
BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')
    Import-HvCbtUnderTest
    $script:Dir = New-TestFolder
    $script:QemuIo = (Get-Command qemu-io -CommandType Application -ErrorAction Ignore | Select-Object -First 1).Source

    function Invoke-QemuIo {
        # qemu-io -f <format> -c <command> <target>; throws on failure.
        param([string]$Format, [string]$Command, [string]$Target)
        $out = & $script:QemuIo -f $Format -c $Command $Target 2>&1
        if ($LASTEXITCODE -ne 0 -or ($out -join "`n") -match 'error|failed') { throw "qemu-io $Command $Target failed: $out" }
    }

    function Compare-QemuImage {
        # qemu-img compare: 0 when the two images read the same, 1 when they differ.
        param([string]$A, [string]$FormatA, [string]$B, [string]$FormatB)
        $null = & $script:QemuImg compare -q -f $FormatA -F $FormatB $A $B 2>&1
        $LASTEXITCODE
    }
}

AfterAll {
    Remove-Module HvCbt -Force -ErrorAction SilentlyContinue
    if ($Dir) { Remove-Item -LiteralPath $Dir -Recurse -Force -ErrorAction SilentlyContinue }
}

Describe 'New-VhdFile' {
    BeforeEach {
        if (-not $QemuImg) { Set-ItResult -Skipped -Because 'qemu-img not installed (Debian package qemu-utils)' }
    }

    It 'creates dynamic VHDX and fixed VHD files that qemu-img reads with the asked size' {
        $a = New-VhdFile -Path (Join-Path $Dir 'new-dyn.vhdx') -SizeBytes 96MB -ErrorAction Stop
        $b = New-VhdFile -Path (Join-Path $Dir 'new-fixed.vhd') -SizeBytes '40M' -Fixed -ErrorAction Stop
        $a.PSObject.TypeNames[0] | Should -Be 'HvCbt.VhdFileInfo'
        $a.VhdFormat | Should -Be 'VHDX'
        $a.VhdType | Should -Be 'Dynamic'
        $a.Size | Should -Be 96MB
        (Get-QemuInfo $a.Path -Format vhdx).'virtual-size' | Should -Be 96MB
        $b.VhdFormat | Should -Be 'VHD'
        $b.VhdType | Should -Be 'Fixed'
        $b.FileSize | Should -Be (40MB + 512)
        (Get-QemuInfo $b.Path -Format vpc).'virtual-size' | Should -Be 40MB
        & $QemuImg check -q -f vhdx $a.Path
        $LASTEXITCODE | Should -Be 0
    }

    It 'takes a size as a PowerShell number or a suffixed string alike, and -BlockSizeBytes / -LogicalSectorSizeBytes' {
        $n = New-VhdFile (Join-Path $Dir 'size-num.vhdx') 2GB -ErrorAction Stop
        $s = New-VhdFile (Join-Path $Dir 'size-str.vhdx') '2G' -BlockSizeBytes '1M' -LogicalSectorSizeBytes 4096 -ErrorAction Stop
        $n.Size | Should -Be $s.Size
        $s.BlockSize | Should -Be 1MB
        $s.LogicalSectorSize | Should -Be 4096
        # qemu-img does not open 4096-byte-sector VHDX files; it checks the 512-byte one.
        (Get-QemuInfo $n.Path -Format vhdx).'virtual-size' | Should -Be 2GB
        (Get-VhdFileInfo $s.Path).Size | Should -Be 2GB
    }

    It 'creates a differencing disk from -ParentPath with the size of its parent' {
        $parent = Join-Path $Dir 'new-dyn.vhdx'
        $c = New-VhdFile -Path (Join-Path $Dir 'new-child.avhdx') -ParentPath $parent -ErrorAction Stop
        $c.VhdType | Should -Be 'Differencing'
        $c.Size | Should -Be 96MB
        $c.ParentPath | Should -Match 'new-dyn\.vhdx$'
    }

    It 'creates nothing with -WhatIf' {
        $p = Join-Path $Dir 'whatif.vhdx'
        New-VhdFile -Path $p -SizeBytes 1GB -WhatIf | Should -BeNullOrEmpty
        Test-Path -LiteralPath $p | Should -BeFalse
    }

    It 'reports an existing file as ResourceExists and a bad size as InvalidArgument' {
        $null = New-VhdFile -Path (Join-Path $Dir 'new-dyn.vhdx') -SizeBytes 1GB -ErrorAction SilentlyContinue -ErrorVariable e1
        $e1.Count | Should -Be 1
        $e1[0].CategoryInfo.Category | Should -Be 'ResourceExists'
        $null = New-VhdFile -Path (Join-Path $Dir 'odd.vhdx') -SizeBytes 1000001 -ErrorAction SilentlyContinue -ErrorVariable e2
        $e2[0].CategoryInfo.Category | Should -Be 'InvalidArgument'
        $e2[0].FullyQualifiedErrorId | Should -Match '^HvCbt\.vhd\.create\.\d+,New-VhdFile$'
        Test-Path -LiteralPath (Join-Path $Dir 'odd.vhdx') | Should -BeFalse
    }
}

Describe 'Test-VhdFile' {
    BeforeEach {
        if (-not $QemuImg) { Set-ItResult -Skipped -Because 'qemu-img not installed (Debian package qemu-utils)' }
    }

    It 'checks every disk piped from Get-ChildItem and finds qemu-img disks valid' {
        $q = New-QemuDisk -Folder $Dir -Name 'by-qemu.vhdx' -Format vhdx -Size 50M
        $results = @(Get-ChildItem -LiteralPath $Dir -Filter '*.vhdx' | Test-VhdFile -ErrorAction Stop)
        $results.Count | Should -Be @(Get-ChildItem -LiteralPath $Dir -Filter '*.vhdx').Count
        foreach ($r in $results) {
            $r.PSObject.TypeNames[0] | Should -Be 'HvCbt.VhdCheckResult'
            $r.IsValid | Should -BeTrue -Because $r.Path
            $r.Status | Should -Be 'Clean'
            $r.ErrorCount | Should -Be 0
        }
        Test-VhdFile -Path $q -Quiet | Should -BeTrue
        ([pscustomobject]@{ FullName = $q } | Test-VhdFile).Path | Should -Be $q
    }

    It 'reports a damaged disk as a result with IsValid false and its problems, not as an error' {
        $bad = Join-Path $Dir 'damaged.vhdx'
        Copy-Item -LiteralPath (Join-Path $Dir 'by-qemu.vhdx') -Destination $bad
        # Zero both headers (64 KiB and 128 KiB): no valid header is left.
        $fs = [System.IO.File]::Open($bad, 'Open', 'ReadWrite')
        try { $fs.Position = 64KB; $fs.Write([byte[]]::new(128KB), 0, 128KB) } finally { $fs.Close() }
        $r = Test-VhdFile -Path $bad -ErrorAction Stop
        $r.IsValid | Should -BeFalse
        $r.Status | Should -BeIn 'Problems', 'Unreadable'
        $r.Problems.Count | Should -BeGreaterThan 0
        $r.Problems[0].PSObject.TypeNames[0] | Should -Be 'HvCbt.VhdProblem'
        $r.Problems[0].Message | Should -Not -BeNullOrEmpty
        Test-VhdFile -Path $bad -Quiet | Should -BeFalse
        Remove-Item -LiteralPath $bad
    }

    It 'writes ObjectNotFound for a missing file and goes on' {
        $out = @(Test-VhdFile -Path (Join-Path $Dir 'missing.vhdx'), (Join-Path $Dir 'by-qemu.vhdx') -ErrorAction SilentlyContinue -ErrorVariable errs)
        $out.Count | Should -Be 1
        $errs.Count | Should -Be 1
        $errs[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
    }
}

Describe 'ConvertTo-VhdFile, Get-VhdAllocation and Merge-VhdFile with content' {
    BeforeAll {
        if ($QemuImg -and $QemuIo) {
            # A VHDX written by qemu-io at two places: 1 MiB of 0x5a at 3 MiB and 64 KiB of 0xc3 at 40 MiB.
            $script:Src = New-QemuDisk -Folder $Dir -Name 'content.vhdx' -Format vhdx -Size 64M
            Invoke-QemuIo -Format vhdx -Command 'write -P 0x5a 3M 1M' -Target $Src
            Invoke-QemuIo -Format vhdx -Command 'write -P 0xc3 40M 64k' -Target $Src
        }
    }
    BeforeEach {
        if (-not $QemuImg -or -not $QemuIo) { Set-ItResult -Skipped -Because 'qemu-img/qemu-io not installed (Debian package qemu-utils)' }
    }

    It 'converts to raw, VHD and VHDX files that qemu-img compare finds identical to the source' {
        $raw = ConvertTo-VhdFile -Path $Src -DestinationPath (Join-Path $Dir 'content.img') -Format Raw -ErrorAction Stop
        $vhd = Get-Item -LiteralPath $Src | ConvertTo-VhdFile -DestinationPath (Join-Path $Dir 'content.vhd') -ErrorAction Stop
        $fixed = ConvertTo-VhdFile $Src (Join-Path $Dir 'content-fixed.vhdx') -VhdType Fixed -ErrorAction Stop
        $raw.PSObject.TypeNames[0] | Should -Be 'HvCbt.VhdConvertResult'
        $raw.VhdFormat | Should -Be 'Raw'
        $vhd.VhdFormat | Should -Be 'VHD'
        $fixed.VhdType | Should -Be 'Fixed'
        $raw.Size | Should -Be 64MB
        # Sparse: only the written data (plus format overhead) is written.
        $raw.BytesWritten | Should -BeLessOrEqual (8MB)
        Compare-QemuImage $Src vhdx $raw.Destination raw | Should -Be 0
        Compare-QemuImage $Src vhdx $vhd.Destination vpc | Should -Be 0
        Compare-QemuImage $Src vhdx $fixed.Destination vhdx | Should -Be 0
    }

    It 'converts nothing with -WhatIf' {
        $p = Join-Path $Dir 'whatif.img'
        ConvertTo-VhdFile -Path $Src -DestinationPath $p -WhatIf | Should -BeNullOrEmpty
        Test-Path -LiteralPath $p | Should -BeFalse
    }

    It 'maps the written ranges as Data and covers the whole disk with extents' {
        $ext = @(Get-VhdAllocation -Path $Src -ErrorAction Stop)
        $ext[0].PSObject.TypeNames[0] | Should -Be 'HvCbt.VhdExtent'
        ($ext | Measure-Object Length -Sum).Sum | Should -Be 64MB
        foreach ($at in 3MB, (4MB - 1), 40MB) {
            $hit = $ext | Where-Object { $_.Offset -le $at -and $_.Offset + $_.Length -gt $at }
            $hit.State | Should -Be 'Data' -Because "offset $at was written"
        }
        $ext | Where-Object { $_.Offset -le 20MB -and $_.Offset + $_.Length -gt 20MB } |
            ForEach-Object State | Should -BeIn 'Unallocated', 'Zero'
        $part = @(Get-VhdAllocation -Path $Src -Offset '3M' -Length 1MB)
        ($part | Measure-Object Length -Sum).Sum | Should -Be 1MB
    }

    It 'merges a differencing disk written through an NBD export into its parent (qemu-img compare)' {
        $parent = Join-Path $Dir 'merge-parent.vhdx'
        $null = ConvertTo-VhdFile -Path $Src -DestinationPath $parent -ErrorAction Stop
        $child = (New-VhdFile -Path (Join-Path $Dir 'merge-child.avhdx') -ParentPath $parent -ErrorAction Stop).Path
        $e = Start-VhdExport -Path $child -Listen 127.0.0.1:0 -ErrorAction Stop
        try {
            Invoke-QemuIo -Format raw -Command 'write -P 0x77 3584k 1M' -Target $e.Uri
            Invoke-QemuIo -Format raw -Command 'write -z 40M 64k' -Target $e.Uri
        } finally {
            $e | Stop-VhdExport -ErrorAction Stop
        }
        (Get-VhdAllocation $child | Where-Object State -eq 'Parent').Count | Should -BeGreaterThan 0
        (Get-VhdAllocation $child -ResolveParent | Where-Object State -eq 'Parent') | Should -BeNullOrEmpty
        $expected = (ConvertTo-VhdFile -Path $child -DestinationPath (Join-Path $Dir 'merge-expected.img') -ErrorAction Stop).Destination

        Merge-VhdFile -Path $child -WhatIf | Should -BeNullOrEmpty
        Test-Path -LiteralPath $child | Should -BeTrue

        $m = Get-Item -LiteralPath $child | Merge-VhdFile -Confirm:$false -ErrorAction Stop
        $m.PSObject.TypeNames[0] | Should -Be 'HvCbt.VhdMergeResult'
        $m.Parent | Should -Be $parent
        $m.ChildRemoved | Should -BeTrue
        $m.BytesMerged | Should -BeGreaterOrEqual 1MB
        Test-Path -LiteralPath $child | Should -BeFalse
        Compare-QemuImage $parent vhdx $expected raw | Should -Be 0
        Compare-QemuImage $parent vhdx $Src vhdx | Should -Be 1
        (Test-VhdFile $parent).IsValid | Should -BeTrue
    }

    It 'reads virtual-disk bytes as a byte array and into a file, matching what qemu-io wrote' {
        $bytes = Read-VhdData -Path $Src -Offset '3M' -Length 64KB -ErrorAction Stop
        $bytes.GetType() | Should -Be ([byte[]])
        $bytes.Length | Should -Be 64KB
        ($bytes -ne 0x5a).Count | Should -Be 0
        $zeros = Read-VhdData -Path $Src -Offset 20MB -Length 4096
        $zeros.Length | Should -Be 4096
        ($zeros -ne 0).Count | Should -Be 0
        $t = Get-Item -LiteralPath $Src | Read-VhdData -DestinationPath (Join-Path $Dir 'read-all.raw') -ErrorAction Stop
        $t.Length | Should -Be 64MB
        (Get-FileHash -LiteralPath $t.File).Hash | Should -Be (Get-FileHash -LiteralPath (Join-Path $Dir 'content.img')).Hash
        $null = Read-VhdData -Path $Src -Offset 1 -Length 512 -ErrorAction SilentlyContinue -ErrorVariable unaligned
        $unaligned[0].CategoryInfo.Category | Should -Be 'InvalidArgument'
    }

    It 'writes bytes and files into a disk (qemu-io reads them back); -WhatIf writes nothing' {
        $copy = (ConvertTo-VhdFile -Path $Src -DestinationPath (Join-Path $Dir 'write-target.vhdx') -ErrorAction Stop).Destination
        $null = Enable-VhdChangeTracking -Path $copy -ErrorAction Stop
        $rp = New-VhdReferencePoint -Path $copy -ErrorAction Stop
        $before = (Get-FileHash -LiteralPath $copy).Hash
        Write-VhdData -Path $copy -Offset 1MB -Value ([byte[]]::new(4096)) -WhatIf | Should -BeNullOrEmpty
        (Get-FileHash -LiteralPath $copy).Hash | Should -Be $before
        $pattern = [byte[]]@(1..8192 | ForEach-Object { 0xab })
        $w = Write-VhdData -Path $copy -Offset '1M' -Value $pattern -ErrorAction Stop
        $w.Length | Should -Be 8192
        $in = Join-Path $Dir 'input.bin'
        [System.IO.File]::WriteAllBytes($in, [byte[]]@(1..1000 | ForEach-Object { 0xcd }))
        (Get-Item -LiteralPath $copy | Write-VhdData -Offset 50MB -InputPath $in -ErrorAction Stop).Length | Should -Be 1000
        Invoke-QemuIo -Format vhdx -Command 'read -P 0xab 1M 8k' -Target $copy
        Invoke-QemuIo -Format vhdx -Command 'read -P 0xcd 50M 1000' -Target $copy
        Invoke-QemuIo -Format vhdx -Command 'read -P 0x5a 3M 1M' -Target $copy
        (Test-VhdFile $copy).IsValid | Should -BeTrue
        # The engine's own writes go through the disk's change tracking: still trusted, and both writes reported.
        (Get-VhdChangeTracking -Path $copy).IsTrusted | Should -BeTrue
        @(Get-VhdChangedBlock -Path $copy -Since $rp | ForEach-Object Offset) | Should -Be @(1MB, 50MB)
    }

    It 'refuses to merge a disk that has no parent with InvalidArgument-like errors, leaving it intact' {
        $before = (Get-FileHash -LiteralPath $Src).Hash
        $null = Merge-VhdFile -Path $Src -Confirm:$false -ErrorAction SilentlyContinue -ErrorVariable errs
        $errs.Count | Should -Be 1
        $errs[0].CategoryInfo.Category | Should -BeIn 'InvalidArgument', 'InvalidOperation'
        (Get-FileHash -LiteralPath $Src).Hash | Should -Be $before
    }
}
