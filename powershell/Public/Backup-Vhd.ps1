function Backup-Vhd {
    <#
    .SYNOPSIS
    Backs up virtual disks into a repository: full, incremental or differential.

    .DESCRIPTION
    Backup-Vhd copies each disk (VHDX, VHD, raw; differencing chains resolved) into a deduplicating, compressed
    backup repository with the HvCbt engine (method backup.create). The first backup of a disk is full; with the
    default -Mode Auto later ones are incremental, reading only what changed. The change source is the best one
    available: change tracking (Enable-VhdChangeTracking), the differencing disk's own allocation, or a content
    scan; when a better source could not be used the result says so (FellBack, Reasons) and a warning is written.
    Progress shows as Write-Progress.

    Returns an HvCbt.VhdBackupResult: Id, Repository, Path, Mode, ParentId, ChangeSource, FellBack, Reasons,
    ReferencePoint, SizeBytes, BytesRead, BytesWritten, ChangedBytes, Duration. Supports -WhatIf and -Confirm.

    .PARAMETER Path
    One or more disk files. Accepts pipeline input, and objects with a Path, FullName or PSPath property.

    .PARAMETER Repository
    The backup repository folder (created by the first backup).

    .PARAMETER Mode
    Auto (default: incremental when a previous backup exists, else full), Full, Incremental or Differential
    (changes since the last full backup).

    .PARAMETER ChunkSizeBytes
    Chunk size of a new repository: a multiple of 64 KiB (default 1 MiB), as a number (4MB) or a string ('4M').

    .PARAMETER BreakLock
    Remove another host's repository lock (only when that host is gone).

    .EXAMPLE
    Get-ChildItem D:\VMs\*.vhdx | Backup-Vhd -Repository E:\Backups

    Backs up every VHDX in D:\VMs: full the first time, incremental afterwards.

    .EXAMPLE
    Backup-Vhd .\disk.vhdx -Repository /backups -Mode Full | Format-List

    Forces a full backup and shows every detail of the result.

    .EXAMPLE
    Get-ChildItem D:\VMs\*.vhdx | Backup-Vhd -Repository E:\Backups | Where-Object FellBack

    Shows the backups that could not use change tracking, with the reasons.

    .INPUTS
    System.String, System.IO.FileInfo

    .OUTPUTS
    HvCbt.VhdBackupResult
    #>
    [CmdletBinding(SupportsShouldProcess)]
    [OutputType('HvCbt.VhdBackupResult')]
    param(
        [Parameter(Mandatory, Position = 0, ValueFromPipeline, ValueFromPipelineByPropertyName)]
        [Alias('FullName', 'PSPath')]
        [ValidateNotNullOrEmpty()]
        [string[]]$Path,

        [Parameter(Mandatory, Position = 1)]
        [Alias('Repo')]
        [ValidateNotNullOrEmpty()]
        [string]$Repository,

        [ValidateSet('Auto', 'Full', 'Incremental', 'Differential')]
        [string]$Mode = 'Auto',

        [ValidateNotNull()]
        [object]$ChunkSizeBytes,

        [switch]$BreakLock
    )

    begin {
        $repo = @(Resolve-HvCbtPath -Path $Repository -Cmdlet $PSCmdlet)
        if ($repo.Count -ne 1) {
            $PSCmdlet.ThrowTerminatingError([System.Management.Automation.ErrorRecord]::new(
                    [System.ArgumentException]::new("-Repository '$Repository' must name exactly one folder."),
                    'HvCbt.Repository', [System.Management.Automation.ErrorCategory]::InvalidArgument, $Repository))
        }
        $repo = $repo[0]
    }

    process {
        foreach ($file in Resolve-HvCbtPath -Path $Path -Cmdlet $PSCmdlet) {
            if (-not $PSCmdlet.ShouldProcess($file, "Back up ($($Mode.ToLowerInvariant())) to $repo")) { continue }
            $params = @{ disk = $file; repo = $repo; mode = $Mode.ToLowerInvariant() }
            if ($PSBoundParameters.ContainsKey('ChunkSizeBytes')) { $params.chunkSize = ConvertTo-HvCbtSize $ChunkSizeBytes }
            if ($BreakLock) { $params.breakLock = $true }
            $r = Invoke-HvCbtEngine -Cmdlet $PSCmdlet -Method 'backup.create' -Params $params -TargetObject $file -Activity "Backing up $file"
            if ($null -eq $r) { continue }
            [pscustomobject]@{
                PSTypeName     = 'HvCbt.VhdBackupResult'
                Id             = $r.id
                Repository     = $r.repo
                Path           = $r.disk
                RequestedMode  = (Get-Culture).TextInfo.ToTitleCase($r.requestedMode)
                Mode           = (Get-Culture).TextInfo.ToTitleCase($r.mode)
                ParentId       = $r.parentId
                ChangeSource   = $r.changeSource
                FellBack       = [bool]$r.fellBack
                Reasons        = @($r.reasons)
                ReferencePoint = $r.referencePoint
                SizeBytes      = [long]$r.virtualSizeBytes
                ChunkSizeBytes = [long]$r.chunkSizeBytes
                ChangedBytes   = [long]$r.changedBytesChunkRounded
                BytesRead      = [long]$r.stats.bytesRead
                BytesWritten   = [long]$r.stats.bytesWritten
                ChunksStored   = [long]$r.stats.chunksStored
                Duration       = [timespan]::FromMilliseconds($r.durationMs)
            }
        }
    }
}
