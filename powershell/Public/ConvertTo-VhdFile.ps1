function ConvertTo-VhdFile {
    <#
    .SYNOPSIS
    Copies a virtual disk into a new file of any format (VHDX, VHD, raw), sparsely.

    .DESCRIPTION
    ConvertTo-VhdFile reads a disk (differencing chains resolved) and writes a new disk file with the HvCbt engine
    (method vhd.convert). Unallocated and all-zero ranges are not written, so the new file is thin. The format comes
    from the destination's extension unless -Format is given; -VhdType chooses Dynamic (default) or Fixed. Like
    Hyper-V's Convert-VHD, the source is not changed and the destination must not exist. Progress shows as
    Write-Progress. Supports -WhatIf and -Confirm.

    Returns an HvCbt.VhdConvertResult: Source, Destination, VhdFormat, VhdType, Size, BytesRead, BytesWritten,
    Seconds.

    .PARAMETER Path
    The source disk. Accepts pipeline input, and objects with a Path, FullName or PSPath property.

    .PARAMETER DestinationPath
    The new disk file.

    .PARAMETER Format
    VHDX, VHD or Raw. Default: from the destination's extension, else VHDX.

    .PARAMETER VhdType
    Dynamic (default) or Fixed.

    .PARAMETER BlockSizeBytes
    Block size of a VHD or VHDX destination, as a number (32MB) or a string ('32M').

    .PARAMETER LogicalSectorSizeBytes
    512 or 4096 (VHDX destination only).

    .EXAMPLE
    ConvertTo-VhdFile -Path .\old.vhd -DestinationPath .\new.vhdx | Format-List

    Converts a VHD into a dynamic VHDX and shows how many bytes were read and written.

    .EXAMPLE
    Get-Item .\disk.vhdx | ConvertTo-VhdFile -DestinationPath .\disk.img -Format Raw

    Makes a sparse raw image of a VHDX (for qemu, dd, or a loop device).

    .INPUTS
    System.String, System.IO.FileInfo

    .OUTPUTS
    HvCbt.VhdConvertResult
    #>
    [CmdletBinding(SupportsShouldProcess)]
    [OutputType('HvCbt.VhdConvertResult')]
    param(
        [Parameter(Mandatory, Position = 0, ValueFromPipeline, ValueFromPipelineByPropertyName)]
        [Alias('FullName', 'PSPath', 'SourcePath')]
        [ValidateNotNullOrEmpty()]
        [string]$Path,

        [Parameter(Mandatory, Position = 1)]
        [ValidateNotNullOrEmpty()]
        [string]$DestinationPath,

        [ValidateSet('VHDX', 'VHD', 'Raw')]
        [string]$Format,

        [ValidateSet('Dynamic', 'Fixed')]
        [string]$VhdType,

        [ValidateNotNull()]
        [object]$BlockSizeBytes,

        [ValidateSet(512, 4096)]
        [int]$LogicalSectorSizeBytes
    )

    process {
        $sources = @(Resolve-HvCbtPath -Path $Path -Cmdlet $PSCmdlet)
        if ($sources.Count -gt 1) {
            $PSCmdlet.WriteError([System.Management.Automation.ErrorRecord]::new(
                    [System.ArgumentException]::new("'$Path' matches $($sources.Count) files; convert one file per destination."),
                    'HvCbt.AmbiguousSource', [System.Management.Automation.ErrorCategory]::InvalidArgument, $Path))
            return
        }
        if ($sources.Count -eq 0) { return }
        $source = $sources[0]
        $dest = @(Resolve-HvCbtPath -Path $DestinationPath -Cmdlet $PSCmdlet)
        if ($dest.Count -ne 1) { return }
        if (-not $PSCmdlet.ShouldProcess($dest[0], "Convert from $source")) { return }
        $params = @{ source = $source; destination = $dest[0] }
        if ($Format) { $params.format = $Format.ToLowerInvariant() }
        if ($VhdType) { $params.type = $VhdType.ToLowerInvariant() }
        if ($PSBoundParameters.ContainsKey('BlockSizeBytes')) { $params.blockSize = ConvertTo-HvCbtSize $BlockSizeBytes }
        if ($LogicalSectorSizeBytes) { $params.logicalSectorSize = $LogicalSectorSizeBytes }
        $r = Invoke-HvCbtEngine -Cmdlet $PSCmdlet -Method 'vhd.convert' -Params $params -TargetObject $source -Activity "Converting $source"
        if ($null -eq $r) { return }
        [pscustomobject]@{
            PSTypeName   = 'HvCbt.VhdConvertResult'
            Source       = $r.source
            Destination  = $r.destination
            VhdFormat    = ConvertTo-HvCbtVhdFormat $r.format
            VhdType      = ConvertTo-HvCbtVhdType $r.type
            Size         = [long]$r.virtualSizeBytes
            BytesRead    = [long]$r.bytesRead
            BytesWritten = [long]$r.bytesWritten
            Seconds      = [double]$r.seconds
        }
    }
}
