function Get-VhdBackup {
    <#
    .SYNOPSIS
    Gets the backups in a backup repository, oldest first.

    .DESCRIPTION
    Get-VhdBackup lists the backups of a repository (method backup.list) as HvCbt.VhdBackup objects: Repository,
    Id, DiskPath, Mode, ChangeSource, ParentId, FinishedAt, SizeBytes, StoredBytes, ReadBytes, ReferencePoint.
    -Id and -DiskPath filter the list (wildcards allowed). Damaged backups are reported as warnings. The objects can
    be piped to Test-VhdBackup and Restore-Vhd (Repository and Id bind by property name).

    .PARAMETER Repository
    The backup repository folder. Binds by property name.

    .PARAMETER Id
    Only backups whose id matches (wildcards allowed).

    .PARAMETER DiskPath
    Only backups of disks whose path matches (wildcards allowed).

    .EXAMPLE
    Get-VhdBackup -Repository E:\Backups | Format-Table

    Lists every backup in a repository.

    .EXAMPLE
    Get-VhdBackup E:\Backups -DiskPath *web01* | Select-Object -Last 1 | Restore-Vhd -DestinationPath .\web01.vhdx

    Restores the newest backup of web01 to a new VHDX.

    .OUTPUTS
    HvCbt.VhdBackup
    #>
    [CmdletBinding()]
    [OutputType('HvCbt.VhdBackup')]
    param(
        [Parameter(Mandatory, Position = 0, ValueFromPipelineByPropertyName)]
        [Alias('Repo')]
        [ValidateNotNullOrEmpty()]
        [string]$Repository,

        [SupportsWildcards()]
        [string[]]$Id,

        [SupportsWildcards()]
        [string[]]$DiskPath
    )

    process {
        foreach ($repo in Resolve-HvCbtPath -Path $Repository -Cmdlet $PSCmdlet) {
            foreach ($b in Invoke-HvCbtEngine -Cmdlet $PSCmdlet -Method 'backup.list' -Params @{ repo = $repo } -TargetObject $repo) {
                if ($Id -and -not ($Id | Where-Object { $b.id -like $_ })) { continue }
                if ($DiskPath -and -not ($DiskPath | Where-Object { $b.disk -like $_ })) { continue }
                [pscustomobject]@{
                    PSTypeName     = 'HvCbt.VhdBackup'
                    Repository     = $repo
                    Id             = $b.id
                    DiskPath       = $b.disk
                    Mode           = (Get-Culture).TextInfo.ToTitleCase($b.mode)
                    ChangeSource   = $b.changeSource
                    ParentId       = $b.parentId
                    FinishedAt     = [datetime]::Parse($b.finishedAt, [cultureinfo]::InvariantCulture, [System.Globalization.DateTimeStyles]::RoundtripKind)
                    SizeBytes      = [long]$b.virtualSizeBytes
                    StoredBytes    = [long]$b.storedBytes
                    ReadBytes      = [long]$b.readBytes
                    ReferencePoint = $b.referencePoint
                }
            }
        }
    }
}
