function Read-VhdData {
    <#
    .SYNOPSIS
    Reads bytes of a virtual disk (differencing chain resolved) into a file, or returns them as a byte array.

    .DESCRIPTION
    Read-VhdData reads -Length bytes at -Offset of the disk as a virtual machine would see them (method vhd.read):
    parents of differencing disks are read where the child has nothing, unallocated ranges read as zeros. With
    -DestinationPath the bytes go to that file (overwritten); without it they are returned as one byte[] (at most
    64 MiB; use a file for more). Offset and length must be multiples of the disk's logical sector size; they take
    numbers (1MB) or strings ('1M'). Progress shows as Write-Progress.

    .PARAMETER Path
    The disk file. Accepts pipeline input, and objects with a Path, FullName or PSPath property.

    .PARAMETER Offset
    Where to start reading (default 0).

    .PARAMETER Length
    How many bytes to read (default: to the end of the disk; required without -DestinationPath).

    .PARAMETER DestinationPath
    The file to write the bytes to. Without it the bytes are returned.

    .EXAMPLE
    Read-VhdData .\disk.vhdx -Offset 0 -Length 512 | Format-Hex

    Shows the first sector (the MBR or protective MBR) of a disk.

    .EXAMPLE
    Get-Item .\disk.vhdx | Read-VhdData -DestinationPath .\disk.raw

    Writes the whole virtual disk into a plain (non-sparse) file.

    .INPUTS
    System.String, System.IO.FileInfo

    .OUTPUTS
    System.Byte[], HvCbt.VhdDataTransfer
    #>
    [CmdletBinding()]
    [OutputType([byte[]])]
    [OutputType('HvCbt.VhdDataTransfer')]
    param(
        [Parameter(Mandatory, Position = 0, ValueFromPipeline, ValueFromPipelineByPropertyName)]
        [Alias('FullName', 'PSPath')]
        [ValidateNotNullOrEmpty()]
        [string]$Path,

        [ValidateNotNull()]
        [object]$Offset,

        [ValidateNotNull()]
        [object]$Length,

        [ValidateNotNullOrEmpty()]
        [string]$DestinationPath
    )

    process {
        $files = @(Resolve-HvCbtPath -Path $Path -Cmdlet $PSCmdlet)
        if ($files.Count -ne 1) {
            if ($files.Count -gt 1) {
                $PSCmdlet.WriteError([System.Management.Automation.ErrorRecord]::new(
                        [System.ArgumentException]::new("'$Path' matches $($files.Count) files; read one disk at a time."),
                        'HvCbt.AmbiguousPath', [System.Management.Automation.ErrorCategory]::InvalidArgument, $Path))
            }
            return
        }
        $file = $files[0]
        $params = @{ path = $file }
        if ($PSBoundParameters.ContainsKey('Offset')) { $params.offset = ConvertTo-HvCbtSize $Offset }
        if ($PSBoundParameters.ContainsKey('Length')) { $params.length = ConvertTo-HvCbtSize $Length }
        if ($DestinationPath) {
            $dest = @(Resolve-HvCbtPath -Path $DestinationPath -Cmdlet $PSCmdlet)
            if ($dest.Count -ne 1) { return }
            $params.output = $dest[0]
            $r = Invoke-HvCbtEngine -Cmdlet $PSCmdlet -Method 'vhd.read' -Params $params -TargetObject $file -Activity "Reading $file"
            if ($null -ne $r) {
                [pscustomobject]@{ PSTypeName = 'HvCbt.VhdDataTransfer'; Path = $r.path; Offset = [long]$r.offset; Length = [long]$r.length; File = $r.output }
            }
            return
        }
        if (-not $PSBoundParameters.ContainsKey('Length')) {
            $PSCmdlet.WriteError([System.Management.Automation.ErrorRecord]::new(
                    [System.ArgumentException]::new('Give -Length (at most 64 MiB) to get the bytes back, or -DestinationPath to read into a file.'),
                    'HvCbt.LengthRequired', [System.Management.Automation.ErrorCategory]::InvalidArgument, $file))
            return
        }
        if ($Length -isnot [string] -and [long]$Length -gt 64MB) {
            $PSCmdlet.WriteError([System.Management.Automation.ErrorRecord]::new(
                    [System.ArgumentException]::new("-Length $Length is more than 64 MiB: use -DestinationPath."),
                    'HvCbt.LengthTooLarge', [System.Management.Automation.ErrorCategory]::InvalidArgument, $file))
            return
        }
        # The engine writes to a file; a private temporary one carries the bytes back.
        $tmp = [System.IO.Path]::GetTempFileName()
        try {
            $params.output = $tmp
            $r = Invoke-HvCbtEngine -Cmdlet $PSCmdlet -Method 'vhd.read' -Params $params -TargetObject $file -Activity "Reading $file"
            if ($null -ne $r) {
                $info = [System.IO.FileInfo]::new($tmp)
                if ($info.Length -gt 64MB) {
                    $PSCmdlet.WriteError([System.Management.Automation.ErrorRecord]::new(
                            [System.ArgumentException]::new("-Length $Length is more than 64 MiB: use -DestinationPath."),
                            'HvCbt.LengthTooLarge', [System.Management.Automation.ErrorCategory]::InvalidArgument, $file))
                    return
                }
                # One byte[] object on the pipeline, not one object per byte.
                , [System.IO.File]::ReadAllBytes($tmp)
            }
        } finally {
            Remove-Item -LiteralPath $tmp -Force -ErrorAction Ignore
        }
    }
}
