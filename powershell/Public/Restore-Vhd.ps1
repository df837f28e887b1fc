function Restore-Vhd {
    <#
    .SYNOPSIS
    Restores a backup to a new thin disk file, or rolls an existing disk back in place.

    .DESCRIPTION
    Restore-Vhd rebuilds the disk of a backup (method backup.restore) from its repository: full, incremental and
    differential backups all restore to the complete disk as it was at that backup. By default a new dynamic (thin)
    disk is created in the backed-up disk's format (-Format and -VhdType choose others); all-zero chunks are left
    unallocated. With -InPlace the existing disk at -DestinationPath is rolled back, writing only the chunks that
    differ from the backup (it asks for confirmation unless -Force: the disk's current content is overwritten). Progress shows as
    Write-Progress. Supports -WhatIf and -Confirm.

    Returns an HvCbt.VhdRestoreResult: Id, DestinationPath, VhdFormat, VhdType, InPlace, SizeBytes, ChunksWritten,
    BytesWritten, ChunksUnchanged, ZeroChunks, Duration, DiskIdentifier.

    .PARAMETER Repository
    The backup repository folder. Binds by property name from Get-VhdBackup and Backup-Vhd objects.

    .PARAMETER Id
    The backup id. Binds by property name from Get-VhdBackup and Backup-Vhd objects.

    .PARAMETER DestinationPath
    The new disk file (must not exist), or with -InPlace the disk to roll back.

    .PARAMETER Format
    VHDX, VHD or Raw. Default: the backed-up disk's format.

    .PARAMETER VhdType
    Dynamic (default, thin) or Fixed.

    .PARAMETER InPlace
    Roll the existing disk at -DestinationPath back to the backup, writing only the chunks that differ.

    .PARAMETER Force
    With -InPlace, do not ask for the extra confirmation before overwriting the disk.

    .EXAMPLE
    Get-VhdBackup E:\Backups -DiskPath *web01* | Select-Object -Last 1 | Restore-Vhd -DestinationPath D:\Restore\web01.vhdx

    Restores the newest backup of web01 to a new dynamic VHDX.

    .EXAMPLE
    Restore-Vhd -Repository E:\Backups -Id 20261125T101500Z-3fa2c1 -DestinationPath D:\VMs\web01.vhdx -InPlace -Force | Format-List

    Rolls web01's disk back to a backup (only the differing chunks are written).

    .INPUTS
    HvCbt.VhdBackup, HvCbt.VhdBackupResult

    .OUTPUTS
    HvCbt.VhdRestoreResult
    #>
    [CmdletBinding(SupportsShouldProcess, ConfirmImpact = 'Medium')]
    [OutputType('HvCbt.VhdRestoreResult')]
    param(
        [Parameter(Mandatory, ValueFromPipelineByPropertyName)]
        [Alias('Repo')]
        [ValidateNotNullOrEmpty()]
        [string]$Repository,

        [Parameter(Mandatory, ValueFromPipelineByPropertyName)]
        [ValidateNotNullOrEmpty()]
        [string]$Id,

        [Parameter(Mandatory, Position = 0)]
        [ValidateNotNullOrEmpty()]
        [string]$DestinationPath,

        [ValidateSet('VHDX', 'VHD', 'Raw')]
        [string]$Format,

        [ValidateSet('Dynamic', 'Fixed')]
        [string]$VhdType,

        [switch]$InPlace,

        [switch]$Force
    )

    process {
        $repo = @(Resolve-HvCbtPath -Path $Repository -Cmdlet $PSCmdlet)
        $dest = @(Resolve-HvCbtPath -Path $DestinationPath -Cmdlet $PSCmdlet)
        if ($repo.Count -ne 1 -or $dest.Count -ne 1) { return }
        $action = if ($InPlace) { "Roll back in place to backup $Id" } else { "Restore backup $Id" }
        if (-not $PSCmdlet.ShouldProcess($dest[0], $action)) { return }
        # Rolling a disk back overwrites it: ask once more unless -Force (as Remove-Item does for protected items).
        if ($InPlace -and -not $Force -and
            -not $PSCmdlet.ShouldContinue("Overwrite the parts of $($dest[0]) that differ from backup $($Id)?", 'Restore-Vhd -InPlace')) { return }
        $params = @{ repo = $repo[0]; id = $Id; output = $dest[0] }
        if ($Format) { $params.format = $Format.ToLowerInvariant() }
        if ($VhdType) { $params.type = $VhdType.ToLowerInvariant() }
        if ($InPlace) { $params.inPlace = $true }
        $r = Invoke-HvCbtEngine -Cmdlet $PSCmdlet -Method 'backup.restore' -Params $params -TargetObject $Id -Activity "Restoring $Id"
        if ($null -eq $r) { return }
        [pscustomobject]@{
            PSTypeName      = 'HvCbt.VhdRestoreResult'
            Id              = $r.id
            DestinationPath = $r.output
            VhdFormat       = ConvertTo-HvCbtVhdFormat $r.format
            VhdType         = ConvertTo-HvCbtVhdType $r.type
            InPlace         = [bool]$r.inPlace
            SizeBytes       = [long]$r.virtualSizeBytes
            ChunksWritten   = [long]$r.chunksWritten
            BytesWritten    = [long]$r.bytesWritten
            ChunksUnchanged = [long]$r.chunksUnchanged
            ZeroChunks      = [long]$r.zeroChunks
            Duration        = [timespan]::FromMilliseconds($r.durationMs)
            DiskIdentifier  = if ($r.diskId) { $r.diskId.ToUpperInvariant() } else { $null }
        }
    }
}
