function New-VhdFile {
    <#
    .SYNOPSIS
    Creates a VHDX, VHD or raw virtual disk file: dynamic, fixed or differencing.

    .DESCRIPTION
    New-VhdFile creates a new disk file with the HvCbt engine (method vhd.create), without Hyper-V, and returns it
    as an HvCbt.VhdFileInfo object (the same object Get-VhdFileInfo returns). Its parameters follow Hyper-V's
    New-VHD: -SizeBytes, -Fixed / -Dynamic / -Differencing with -ParentPath, -BlockSizeBytes and
    -LogicalSectorSizeBytes. The format comes from the extension (.vhdx and .avhdx: VHDX, .vhd: VHD, .img and .raw:
    raw) unless -Format says otherwise.

    Sizes are numbers of bytes, so PowerShell's literals work (10GB, 32MB), or strings with a binary suffix
    ('10G', '64K', '1.5T'). The file must not exist. Supports -WhatIf and -Confirm.

    .PARAMETER Path
    The disk file to create. Accepts pipeline input, and objects with a Path, FullName or PSPath property.

    .PARAMETER SizeBytes
    Virtual size: a number of bytes (10GB) or a string such as '10G'. Required except for differencing disks,
    which take the size of their parent.

    .PARAMETER Dynamic
    Create a dynamically expanding disk (the default).

    .PARAMETER Fixed
    Create a fixed-size disk (every block allocated up front).

    .PARAMETER Differencing
    Create a differencing disk whose parent is -ParentPath. Implied by -ParentPath.

    .PARAMETER ParentPath
    The parent disk of a differencing disk.

    .PARAMETER Format
    VHDX, VHD or Raw. Default: from the file extension, else VHDX.

    .PARAMETER BlockSizeBytes
    Block size (VHDX 1-256 MiB, default 32 MiB; VHD default 2 MiB), as a number or a string such as '2M'.

    .PARAMETER LogicalSectorSizeBytes
    512 or 4096 (VHDX only).

    .EXAMPLE
    New-VhdFile -Path D:\VMs\web01\disk1.vhdx -SizeBytes 40GB

    Creates a 40 GiB dynamic VHDX with 32 MiB blocks.

    .EXAMPLE
    New-VhdFile -Path .\data.vhd -SizeBytes '1G' -Fixed

    Creates a fixed 1 GiB VHD (the file is 1 GiB plus a 512-byte footer).

    .EXAMPLE
    Get-ChildItem D:\VMs\*.vhdx | ForEach-Object { New-VhdFile -Path ($_.FullName -replace '\.vhdx$', '-snap.avhdx') -ParentPath $_.FullName }

    Creates a differencing child next to every VHDX in D:\VMs.

    .EXAMPLE
    New-VhdFile -Path .\test.vhdx -SizeBytes 10GB -WhatIf

    Shows what would be created without creating anything.

    .INPUTS
    System.String, System.IO.FileInfo

    .OUTPUTS
    HvCbt.VhdFileInfo

    .LINK
    Get-VhdFileInfo
    #>
    [CmdletBinding(SupportsShouldProcess, DefaultParameterSetName = 'Dynamic')]
    [OutputType('HvCbt.VhdFileInfo')]
    param(
        [Parameter(Mandatory, Position = 0, ValueFromPipeline, ValueFromPipelineByPropertyName)]
        [Alias('FullName', 'PSPath')]
        [ValidateNotNullOrEmpty()]
        [string[]]$Path,

        [Parameter(Mandatory, Position = 1, ParameterSetName = 'Dynamic')]
        [Parameter(Mandatory, Position = 1, ParameterSetName = 'Fixed')]
        [Alias('Size')]
        [ValidateNotNull()]
        [object]$SizeBytes,

        [Parameter(ParameterSetName = 'Dynamic')]
        [switch]$Dynamic,

        [Parameter(Mandatory, ParameterSetName = 'Fixed')]
        [switch]$Fixed,

        [Parameter(ParameterSetName = 'Differencing')]
        [switch]$Differencing,

        [Parameter(Mandatory, ParameterSetName = 'Differencing')]
        [ValidateNotNullOrEmpty()]
        [string]$ParentPath,

        [ValidateSet('VHDX', 'VHD', 'Raw')]
        [string]$Format,

        [ValidateNotNull()]
        [object]$BlockSizeBytes,

        [ValidateSet(512, 4096)]
        [int]$LogicalSectorSizeBytes
    )

    begin {
        $base = @{}
        if ($PSBoundParameters.ContainsKey('SizeBytes')) { $base.size = ConvertTo-HvCbtSize $SizeBytes }
        if ($PSBoundParameters.ContainsKey('BlockSizeBytes')) { $base.blockSize = ConvertTo-HvCbtSize $BlockSizeBytes }
        if ($Format) { $base.format = $Format.ToLowerInvariant() }
        if ($LogicalSectorSizeBytes) { $base.logicalSectorSize = $LogicalSectorSizeBytes }
        $base.type = $PSCmdlet.ParameterSetName.ToLowerInvariant()
        if ($ParentPath) {
            $parent = @(Resolve-HvCbtPath -Path $ParentPath -Cmdlet $PSCmdlet)
            if ($parent.Count -ne 1) {
                $PSCmdlet.ThrowTerminatingError([System.Management.Automation.ErrorRecord]::new(
                        [System.ArgumentException]::new("-ParentPath '$ParentPath' must name exactly one file."),
                        'HvCbt.ParentPath', [System.Management.Automation.ErrorCategory]::InvalidArgument, $ParentPath))
            }
            $base.parent = $parent[0]
        }
    }

    process {
        foreach ($file in Resolve-HvCbtPath -Path $Path -Cmdlet $PSCmdlet) {
            $what = if ($ParentPath) { "Create differencing disk (parent $($base.parent))" } else { "Create $($base.type) disk of $($base.size) bytes" }
            if (-not $PSCmdlet.ShouldProcess($file, $what)) { continue }
            $params = $base.Clone()
            $params.path = $file
            $r = Invoke-HvCbtEngine -Cmdlet $PSCmdlet -Method 'vhd.create' -Params $params -TargetObject $file
            if ($null -eq $r) { continue }
            ConvertTo-HvCbtVhdFileInfo -Info $r
        }
    }
}
