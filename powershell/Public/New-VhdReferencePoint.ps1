function New-VhdReferencePoint {
    <#
    .SYNOPSIS
    Creates a reference point on tracked virtual disks: a moment that later change queries start from.

    .DESCRIPTION
    New-VhdReferencePoint marks the current moment in each disk's change tracking (method
    tracking.refpoint.create) and returns an HvCbt.VhdReferencePoint: Path, Id (rp-<generation>-<sequence>),
    Sequence, CreatedAt and Checkpoint. Get-VhdChangedBlock -Since <Id> then lists what was written after it.

    With -Checkpoint (the disk must be exported with tracking by this session, see Start-VhdExport) the moment is
    also kept readable: copy-before-write saves what later writes overwrite, so a backup reads the disk exactly as it
    was at the reference point while the export keeps taking writes. Supports -WhatIf and -Confirm.

    .PARAMETER Path
    One or more tracked disk files. Accepts pipeline input, and objects with a Path, FullName or PSPath property.

    .PARAMETER Checkpoint
    Also keep a consistent view of this moment (live tracked export in this session only).

    .EXAMPLE
    $rp = New-VhdReferencePoint .\disk.vhdx

    Marks the moment; later, Get-VhdChangedBlock .\disk.vhdx -Since $rp lists what changed.

    .EXAMPLE
    Get-ChildItem D:\VMs\*.vhdx | New-VhdReferencePoint | Format-Table Path, Id, CreatedAt

    Creates a reference point on every VHDX in D:\VMs.

    .INPUTS
    System.String, System.IO.FileInfo

    .OUTPUTS
    HvCbt.VhdReferencePoint
    #>
    [CmdletBinding(SupportsShouldProcess)]
    [OutputType('HvCbt.VhdReferencePoint')]
    param(
        [Parameter(Mandatory, Position = 0, ValueFromPipeline, ValueFromPipelineByPropertyName)]
        [Alias('FullName', 'PSPath')]
        [ValidateNotNullOrEmpty()]
        [string[]]$Path,

        [switch]$Checkpoint
    )

    process {
        foreach ($file in Resolve-HvCbtPath -Path $Path -Cmdlet $PSCmdlet) {
            if (-not $PSCmdlet.ShouldProcess($file, 'Create a reference point')) { continue }
            $params = @{ disk = $file }
            if ($Checkpoint) { $params.checkpoint = $true }
            $r = Invoke-HvCbtEngine -Cmdlet $PSCmdlet -Method 'tracking.refpoint.create' -Params $params -TargetObject $file
            if ($null -eq $r) { continue }
            ConvertTo-HvCbtReferencePoint -Path $file -ReferencePoint $r
        }
    }
}
