function Remove-VhdBackup {
    <#
    .SYNOPSIS
    Removes the backups of a repository that fall outside retention rules, and the chunks no backup uses any more.

    .DESCRIPTION
    Remove-VhdBackup prunes a repository (method backup.prune). Retention is per disk: -KeepLast keeps the newest N
    backups, -KeepDaily the newest backup of each of the last N days, -KeepWeekly the newest of each of the last N
    ISO weeks; a backup kept by any rule stays. Then the chunks no remaining backup uses are collected, pack by
    pack: a pack holding only such chunks is deleted, a pack at least 20 % unused is rewritten without them. Packs
    modified within -GraceMinutes (default 60) are left alone, so a backup running at the same time is never
    damaged.

    The cmdlet first asks the engine what would be removed, then confirms with that list: -WhatIf shows it and
    removes nothing; -Confirm asks once per repository. Returns an HvCbt.VhdBackupPruneResult: Repository, Kept,
    Removed, ChunksRemoved, BytesFreed, ChunksKeptInGrace, PacksRemoved, PacksRewritten.

    .PARAMETER Repository
    The backup repository folder. Binds by property name.

    .PARAMETER KeepLast
    Keep the newest N backups of each disk.

    .PARAMETER KeepDaily
    Keep the newest backup of each of the last N days (per disk).

    .PARAMETER KeepWeekly
    Keep the newest backup of each of the last N ISO weeks (per disk).

    .PARAMETER GraceMinutes
    Leave packs modified within this many minutes alone (default 60).

    .PARAMETER BreakLock
    Remove another host's repository lock (only when that host is gone).

    .EXAMPLE
    Remove-VhdBackup -Repository E:\Backups -KeepLast 7 -KeepWeekly 4 -WhatIf | Out-Null

    Shows which backups a week of dailies plus four weeklies would remove.

    .EXAMPLE
    Get-VhdBackup E:\Backups | Remove-VhdBackup -KeepLast 3 -Confirm:$false

    Repositories piped in are pruned once each, however many backups name them.

    .EXAMPLE
    Remove-VhdBackup -Repository E:\Backups -KeepLast 14 -Confirm:$false | Select-Object Removed, BytesFreed

    Prunes without asking and shows what was removed and how much space was freed.

    .OUTPUTS
    HvCbt.VhdBackupPruneResult
    #>
    [CmdletBinding(SupportsShouldProcess, ConfirmImpact = 'High')]
    [OutputType('HvCbt.VhdBackupPruneResult')]
    param(
        [Parameter(Mandatory, Position = 0, ValueFromPipelineByPropertyName)]
        [Alias('Repo')]
        [ValidateNotNullOrEmpty()]
        [string]$Repository,

        [ValidateRange(0, [int]::MaxValue)]
        [int]$KeepLast,

        [ValidateRange(0, [int]::MaxValue)]
        [int]$KeepDaily,

        [ValidateRange(0, [int]::MaxValue)]
        [int]$KeepWeekly,

        [ValidateRange(0, [int]::MaxValue)]
        [int]$GraceMinutes,

        [switch]$BreakLock
    )

    begin {
        if (-not ($PSBoundParameters.ContainsKey('KeepLast') -or $PSBoundParameters.ContainsKey('KeepDaily') -or $PSBoundParameters.ContainsKey('KeepWeekly'))) {
            $PSCmdlet.ThrowTerminatingError([System.Management.Automation.ErrorRecord]::new(
                    [System.ArgumentException]::new('Give at least one retention rule: -KeepLast, -KeepDaily or -KeepWeekly.'),
                    'HvCbt.NoRetentionRule', [System.Management.Automation.ErrorCategory]::InvalidArgument, $null))
        }
        # Get-VhdBackup | Remove-VhdBackup binds the same repository once per backup: prune each repository once.
        $seen = [System.Collections.Generic.HashSet[string]]::new()
    }

    process {
        foreach ($repo in Resolve-HvCbtPath -Path $Repository -Cmdlet $PSCmdlet) {
            if (-not $seen.Add($repo)) { continue }
            $params = @{ repo = $repo }
            if ($PSBoundParameters.ContainsKey('KeepLast')) { $params.keepLast = $KeepLast }
            if ($PSBoundParameters.ContainsKey('KeepDaily')) { $params.keepDaily = $KeepDaily }
            if ($PSBoundParameters.ContainsKey('KeepWeekly')) { $params.keepWeekly = $KeepWeekly }
            if ($PSBoundParameters.ContainsKey('GraceMinutes')) { $params.graceMinutes = $GraceMinutes }
            if ($BreakLock) { $params.breakLock = $true }
            $dry = $params.Clone()
            $dry.dryRun = $true
            $plan = Invoke-HvCbtEngine -Cmdlet $PSCmdlet -Method 'backup.prune' -Params $dry -TargetObject $repo
            if ($null -eq $plan) { continue }
            $removing = @($plan.removed)
            if ($removing.Count -eq 0 -and [long]$plan.chunksRemoved -eq 0) {
                Write-Verbose "Remove-VhdBackup: nothing to remove in $repo"
                continue
            }
            $what = "Remove $($removing.Count) backup(s) ($(if ($removing.Count) { $removing -join ', ' } else { 'none' })) and $($plan.chunksRemoved) unused chunk(s)"
            if (-not $PSCmdlet.ShouldProcess($repo, $what)) { continue }
            $r = Invoke-HvCbtEngine -Cmdlet $PSCmdlet -Method 'backup.prune' -Params $params -TargetObject $repo
            if ($null -eq $r) { continue }
            [pscustomobject]@{
                PSTypeName        = 'HvCbt.VhdBackupPruneResult'
                Repository        = $repo
                Kept              = @($r.kept)
                Removed           = @($r.removed)
                ChunksRemoved     = [long]$r.chunksRemoved
                BytesFreed        = [long]$r.bytesFreed
                ChunksKeptInGrace = [long]$r.chunksKeptInGrace
                PacksRemoved      = [long]$r.packsRemoved
                PacksRewritten    = [long]$r.packsRewritten
            }
        }
    }
}
