function Get-VhdAllocation {
    <#
    .SYNOPSIS
    Gets the allocation map of a virtual disk: which byte ranges hold data, read as zeros, are unallocated, or come
    from the parent.

    .DESCRIPTION
    Get-VhdAllocation asks the HvCbt engine (method vhd.map) for the extents of each disk file and returns one
    HvCbt.VhdExtent object per extent: Path, Offset, Length (bytes, in the virtual disk) and State ('Data', 'Zero',
    'Unallocated' or 'Parent'). By default only the top layer of a differencing disk is described ('Parent' ranges
    are read from the parent); -ResolveParent follows the chain so every range says what the whole chain reads as.

    -Offset and -Length limit the map to a range; they accept numbers (1GB) or strings ('1G').

    .PARAMETER Path
    One or more disk files. Accepts pipeline input, and objects with a Path, FullName or PSPath property.

    .PARAMETER Offset
    Start of the range to map (default 0).

    .PARAMETER Length
    Length of the range to map (default: to the end of the disk).

    .PARAMETER ResolveParent
    Resolve 'Parent' ranges of differencing disks through the parent chain.

    .EXAMPLE
    Get-VhdAllocation .\disk.vhdx | Where-Object State -eq Data | Measure-Object Length -Sum

    Adds up the bytes of the disk that hold data.

    .EXAMPLE
    Get-VhdAllocation .\snap.avhdx -Offset 0 -Length 1GB | Format-Table

    Shows the allocation of the first GiB of a differencing disk's top layer.

    .INPUTS
    System.String, System.IO.FileInfo

    .OUTPUTS
    HvCbt.VhdExtent
    #>
    [CmdletBinding()]
    [OutputType('HvCbt.VhdExtent')]
    param(
        [Parameter(Mandatory, Position = 0, ValueFromPipeline, ValueFromPipelineByPropertyName)]
        [Alias('FullName', 'PSPath')]
        [ValidateNotNullOrEmpty()]
        [string[]]$Path,

        [ValidateNotNull()]
        [object]$Offset,

        [ValidateNotNull()]
        [object]$Length,

        [switch]$ResolveParent
    )

    process {
        foreach ($file in Resolve-HvCbtPath -Path $Path -Cmdlet $PSCmdlet) {
            $params = @{ path = $file }
            if ($PSBoundParameters.ContainsKey('Offset')) { $params.offset = ConvertTo-HvCbtSize $Offset }
            if ($PSBoundParameters.ContainsKey('Length')) { $params.length = ConvertTo-HvCbtSize $Length }
            if ($ResolveParent) { $params.resolve = $true }
            $r = Invoke-HvCbtEngine -Cmdlet $PSCmdlet -Method 'vhd.map' -Params $params -TargetObject $file
            if ($null -eq $r) { continue }
            foreach ($e in $r.extents) {
                [pscustomobject]@{
                    PSTypeName = 'HvCbt.VhdExtent'
                    Path       = $r.path
                    Offset     = [long]$e.offset
                    Length     = [long]$e.length
                    State      = (Get-Culture).TextInfo.ToTitleCase($e.state)
                }
            }
        }
    }
}
