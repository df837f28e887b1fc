function Get-VhdFileInfo {
    <#
    .SYNOPSIS
    Gets the format, type, sizes, identity and parent of VHDX, VHD and raw virtual disk files.

    .DESCRIPTION
    Get-VhdFileInfo reads the headers of each disk file (it does not mount or lock the disk) and returns one
    HvCbt.VhdFileInfo object per file, with properties named like those of Hyper-V's Get-VHD: Path, VhdFormat
    (VHDX, VHD or Raw), VhdType (Fixed, Dynamic or Differencing), Size (virtual size in bytes), FileSize,
    BlockSize, LogicalSectorSize, PhysicalSectorSize (all in bytes), DiskIdentifier and ParentPath.

    It works without Hyper-V, on any system where the HvCbt engine runs. Paths may be relative, use PowerShell
    drives, or contain wildcards; files can also be piped in from Get-ChildItem. A file that cannot be read is
    reported as a non-terminating error (for example ObjectNotFound for a missing file) and the next file is
    processed.

    .PARAMETER Path
    One or more disk files. Accepts pipeline input, and objects with a Path, FullName or PSPath property.

    .EXAMPLE
    Get-VhdFileInfo -Path D:\VMs\web01\disk0.vhdx

    Shows the format, type, virtual size and file size of one disk.

    .EXAMPLE
    Get-ChildItem D:\VMs -Recurse -Include *.vhdx, *.avhdx | Get-VhdFileInfo | Where-Object VhdType -eq Differencing

    Lists every differencing disk (checkpoint) under D:\VMs.

    .EXAMPLE
    Get-VhdFileInfo .\disk.vhdx | Format-List *

    Shows every property, including DiskIdentifier and ParentPath.

    .EXAMPLE
    Get-VhdFileInfo *.vhd* -ErrorAction SilentlyContinue -ErrorVariable bad | Measure-Object -Property FileSize -Sum

    Adds up the file sizes of the readable disks in the current folder; the files that could not be read are in $bad.

    .INPUTS
    System.String, System.IO.FileInfo

    .OUTPUTS
    HvCbt.VhdFileInfo

    .LINK
    https://learn.microsoft.com/powershell/module/hyper-v/get-vhd
    #>
    [CmdletBinding()]
    [OutputType('HvCbt.VhdFileInfo')]
    param(
        [Parameter(Mandatory, Position = 0, ValueFromPipeline, ValueFromPipelineByPropertyName)]
        [Alias('FullName', 'PSPath')]
        [ValidateNotNullOrEmpty()]
        [string[]]$Path
    )

    process {
        foreach ($file in Resolve-HvCbtPath -Path $Path -Cmdlet $PSCmdlet) {
            $r = Invoke-HvCbtEngine -Cmdlet $PSCmdlet -Method 'vhd.info' -Params @{ path = $file } -TargetObject $file
            if ($null -eq $r) { continue }
            ConvertTo-HvCbtVhdFileInfo -Info $r
        }
    }
}
