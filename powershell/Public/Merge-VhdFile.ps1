function Merge-VhdFile {
    <#
    .SYNOPSIS
    Merges a differencing disk into its parent and removes the child, like Hyper-V's Merge-VHD.

    .DESCRIPTION
    Merge-VhdFile copies every sector present in the differencing (child) disk into its parent with the HvCbt
    engine (method vhd.merge); afterwards the parent reads exactly as the child did and the child file is deleted
    (with -KeepChild it is kept, but it is stale: do not use it). Merge from the leaf upwards. Progress shows as
    Write-Progress. Supports -WhatIf and -Confirm.

    Returns an HvCbt.VhdMergeResult: Child, Parent, BytesMerged, BytesZeroed, ChildRemoved, Seconds.

    .PARAMETER Path
    The differencing disk(s) to merge. Accepts pipeline input, and objects with a Path, FullName or PSPath property.

    .PARAMETER KeepChild
    Keep the child file after the merge (it is stale afterwards).

    .EXAMPLE
    Merge-VhdFile -Path D:\VMs\web01\disk0_8F3A.avhdx | Format-List

    Merges a checkpoint's differencing disk into its parent and removes it.

    .EXAMPLE
    Get-ChildItem .\*.avhdx | Merge-VhdFile -WhatIf

    Shows which differencing disks would be merged.

    .INPUTS
    System.String, System.IO.FileInfo

    .OUTPUTS
    HvCbt.VhdMergeResult
    #>
    [CmdletBinding(SupportsShouldProcess, ConfirmImpact = 'Medium')]
    [OutputType('HvCbt.VhdMergeResult')]
    param(
        [Parameter(Mandatory, Position = 0, ValueFromPipeline, ValueFromPipelineByPropertyName)]
        [Alias('FullName', 'PSPath')]
        [ValidateNotNullOrEmpty()]
        [string[]]$Path,

        [switch]$KeepChild
    )

    process {
        foreach ($file in Resolve-HvCbtPath -Path $Path -Cmdlet $PSCmdlet) {
            if (-not $PSCmdlet.ShouldProcess($file, 'Merge into its parent disk')) { continue }
            $params = @{ path = $file }
            if ($KeepChild) { $params.keepChild = $true }
            $r = Invoke-HvCbtEngine -Cmdlet $PSCmdlet -Method 'vhd.merge' -Params $params -TargetObject $file -Activity "Merging $file"
            if ($null -eq $r) { continue }
            [pscustomobject]@{
                PSTypeName   = 'HvCbt.VhdMergeResult'
                Child        = $r.child
                Parent       = $r.parent
                BytesMerged  = [long]$r.bytesMerged
                BytesZeroed  = [long]$r.bytesZeroed
                ChildRemoved = [bool]$r.childRemoved
                Seconds      = [double]$r.seconds
            }
        }
    }
}
