function Close-VhdCheckpoint {
    <#
    .SYNOPSIS
    Closes the checkpoint view of a reference point made with New-VhdReferencePoint -Checkpoint.

    .DESCRIPTION
    A reference point created with -Checkpoint on a disk exported by this session keeps the disk's content at that
    moment readable (copy-before-write). Close-VhdCheckpoint ends that view (method tracking.checkpoint.close): the
    saved copies are deleted and writes stop paying for them; the reference point itself stays. Pipe the object
    New-VhdReferencePoint returned (Path and Id bind by property name). Returns an HvCbt.VhdCheckpointClose (Id,
    Closed: $false when no checkpoint of that id was open). Supports -WhatIf and -Confirm.

    .PARAMETER Path
    The exported, tracked disk file.

    .PARAMETER Id
    The reference point id whose checkpoint to close.

    .EXAMPLE
    $rp = New-VhdReferencePoint .\disk.vhdx -Checkpoint; Backup-Vhd .\disk.vhdx -Repository /backups; $rp | Close-VhdCheckpoint

    Keeps a consistent view while a backup reads the disk, then releases it.

    .EXAMPLE
    Get-VhdReferencePoint .\disk.vhdx | Close-VhdCheckpoint | Where-Object Closed

    Closes any open checkpoint of the disk's reference points.

    .INPUTS
    HvCbt.VhdReferencePoint

    .OUTPUTS
    HvCbt.VhdCheckpointClose
    #>
    [CmdletBinding(SupportsShouldProcess)]
    [OutputType('HvCbt.VhdCheckpointClose')]
    param(
        [Parameter(Mandatory, Position = 0, ValueFromPipelineByPropertyName)]
        [Alias('FullName', 'PSPath')]
        [ValidateNotNullOrEmpty()]
        [string]$Path,

        [Parameter(Mandatory, Position = 1, ValueFromPipelineByPropertyName)]
        [ValidateNotNullOrEmpty()]
        [string]$Id
    )

    process {
        foreach ($file in Resolve-HvCbtPath -Path $Path -Cmdlet $PSCmdlet) {
            if (-not $PSCmdlet.ShouldProcess("$file $Id", 'Close checkpoint')) { continue }
            $r = Invoke-HvCbtEngine -Cmdlet $PSCmdlet -Method 'tracking.checkpoint.close' -Params @{ disk = $file; id = $Id } -TargetObject $Id
            if ($null -ne $r) {
                [pscustomobject]@{ PSTypeName = 'HvCbt.VhdCheckpointClose'; Path = $file; Id = $r.id; Closed = [bool]$r.closed }
            }
        }
    }
}
