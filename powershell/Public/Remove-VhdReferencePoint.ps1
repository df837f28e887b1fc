function Remove-VhdReferencePoint {
    <#
    .SYNOPSIS
    Removes reference points from tracked virtual disks.

    .DESCRIPTION
    Remove-VhdReferencePoint removes a reference point (method tracking.refpoint.remove); the changes recorded
    after it merge into the previous reference point, so no change is lost for queries from older points. Pipe
    reference points from Get-VhdReferencePoint: Path and Id bind by property name. Nothing is returned unless
    -PassThru is given. Supports -WhatIf and -Confirm.

    .PARAMETER Path
    The tracked disk file. Binds by property name from HvCbt.VhdReferencePoint objects (and FullName, PSPath).

    .PARAMETER Id
    The reference point id(s), e.g. rp-1a2b3c4d-3.

    .PARAMETER PassThru
    Return an object (Path, Id, Removed) for each removed reference point.

    .EXAMPLE
    Get-VhdReferencePoint .\disk.vhdx | Select-Object -SkipLast 2 | Remove-VhdReferencePoint

    Keeps only the two newest reference points of a disk.

    .EXAMPLE
    Remove-VhdReferencePoint -Path .\disk.vhdx -Id rp-1a2b3c4d-1 -WhatIf | Out-Null

    Shows what would be removed.

    .INPUTS
    HvCbt.VhdReferencePoint

    .OUTPUTS
    None, HvCbt.VhdReferencePointRemoval
    #>
    [CmdletBinding(SupportsShouldProcess, ConfirmImpact = 'Medium')]
    [OutputType('HvCbt.VhdReferencePointRemoval')]
    param(
        [Parameter(Mandatory, Position = 0, ValueFromPipelineByPropertyName)]
        [Alias('FullName', 'PSPath')]
        [ValidateNotNullOrEmpty()]
        [string]$Path,

        [Parameter(Mandatory, Position = 1, ValueFromPipelineByPropertyName)]
        [ValidateNotNullOrEmpty()]
        [string[]]$Id,

        [switch]$PassThru
    )

    process {
        foreach ($file in Resolve-HvCbtPath -Path $Path -Cmdlet $PSCmdlet) {
            foreach ($rp in $Id) {
                if (-not $PSCmdlet.ShouldProcess("$file $rp", 'Remove reference point')) { continue }
                $r = Invoke-HvCbtEngine -Cmdlet $PSCmdlet -Method 'tracking.refpoint.remove' -Params @{ disk = $file; id = $rp } -TargetObject $rp
                if ($null -ne $r -and $PassThru) {
                    [pscustomobject]@{ PSTypeName = 'HvCbt.VhdReferencePointRemoval'; Path = $file; Id = $r.id; Removed = [bool]$r.removed }
                }
            }
        }
    }
}
