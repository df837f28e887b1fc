function Get-VhdReferencePoint {
    <#
    .SYNOPSIS
    Gets the reference points of tracked virtual disks, oldest first.

    .DESCRIPTION
    Get-VhdReferencePoint lists the reference points of each disk's change tracking (method
    tracking.refpoint.list) as HvCbt.VhdReferencePoint objects: Path, Id, Sequence, CreatedAt. -Id filters by id
    (wildcards allowed). The objects can be piped to Remove-VhdReferencePoint and Get-VhdChangedBlock.

    .PARAMETER Path
    One or more tracked disk files. Accepts pipeline input, and objects with a Path, FullName or PSPath property.

    .PARAMETER Id
    Only reference points whose id matches (wildcards allowed).

    .EXAMPLE
    Get-VhdReferencePoint .\disk.vhdx | Select-Object -Last 1

    The newest reference point of a disk.

    .EXAMPLE
    Get-ChildItem D:\VMs\*.vhdx | Get-VhdReferencePoint | Where-Object CreatedAt -lt (Get-Date).AddDays(-30)

    Reference points older than 30 days on every VHDX in D:\VMs.

    .INPUTS
    System.String, System.IO.FileInfo

    .OUTPUTS
    HvCbt.VhdReferencePoint
    #>
    [CmdletBinding()]
    [OutputType('HvCbt.VhdReferencePoint')]
    param(
        [Parameter(Mandatory, Position = 0, ValueFromPipeline, ValueFromPipelineByPropertyName)]
        [Alias('FullName', 'PSPath')]
        [ValidateNotNullOrEmpty()]
        [string[]]$Path,

        [SupportsWildcards()]
        [string[]]$Id
    )

    process {
        foreach ($file in Resolve-HvCbtPath -Path $Path -Cmdlet $PSCmdlet) {
            $list = Invoke-HvCbtEngine -Cmdlet $PSCmdlet -Method 'tracking.refpoint.list' -Params @{ disk = $file } -TargetObject $file
            foreach ($rp in $list) {
                if ($Id -and -not ($Id | Where-Object { $rp.id -like $_ })) { continue }
                ConvertTo-HvCbtReferencePoint -Path $file -ReferencePoint $rp
            }
        }
    }
}
