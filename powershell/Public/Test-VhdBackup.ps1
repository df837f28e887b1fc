function Test-VhdBackup {
    <#
    .SYNOPSIS
    Verifies the backups of a repository: every chunk present and intact, optionally every image rebuilt.

    .DESCRIPTION
    Test-VhdBackup checks a repository (method backup.verify): each backup's manifest, and every chunk it uses
    (present, and its content matches its hash). With -Deep the engine also rebuilds each backed-up image and
    checks its whole-disk SHA-256. It returns one HvCbt.VhdBackupVerification per backup checked: Repository, Id,
    IsValid, ChunksChecked, Problems (chunk hash, Missing or Corrupt, disk offsets), ManifestProblem, ImageSha256,
    ImageSha256Matches. With -Quiet it returns only $true (everything checked is intact) or $false. Progress shows
    as Write-Progress. Pipe backups from Get-VhdBackup to check just those.

    .PARAMETER Repository
    The backup repository folder. Binds by property name.

    .PARAMETER Id
    Only this backup (default: all). Binds by property name from Get-VhdBackup.

    .PARAMETER Deep
    Also rebuild each image and check its whole-disk SHA-256 (reads everything).

    .PARAMETER Quiet
    Return $true or $false instead of result objects.

    .EXAMPLE
    Test-VhdBackup -Repository E:\Backups | Where-Object { -not $_.IsValid }

    Lists the damaged backups of a repository.

    .EXAMPLE
    Get-VhdBackup E:\Backups | Select-Object -Last 1 | Test-VhdBackup -Deep -Quiet

    Fully verifies the newest backup and returns $true or $false.

    .OUTPUTS
    HvCbt.VhdBackupVerification, System.Boolean
    #>
    [CmdletBinding()]
    [OutputType('HvCbt.VhdBackupVerification', [bool])]
    param(
        [Parameter(Mandatory, Position = 0, ValueFromPipelineByPropertyName)]
        [Alias('Repo')]
        [ValidateNotNullOrEmpty()]
        [string]$Repository,

        [Parameter(ValueFromPipelineByPropertyName)]
        [string]$Id,

        [switch]$Deep,

        [switch]$Quiet
    )

    process {
        foreach ($repo in Resolve-HvCbtPath -Path $Repository -Cmdlet $PSCmdlet) {
            $params = @{ repo = $repo }
            if ($Id) { $params.id = $Id }
            if ($Deep) { $params.deep = $true }
            $r = Invoke-HvCbtEngine -Cmdlet $PSCmdlet -Method 'backup.verify' -Params $params -TargetObject $repo -Activity "Verifying $repo"
            if ($null -eq $r) { continue }
            if ($Quiet) { [bool]$r.ok; continue }
            foreach ($b in $r.backups) {
                [pscustomobject]@{
                    PSTypeName         = 'HvCbt.VhdBackupVerification'
                    Repository         = $repo
                    Id                 = $b.id
                    IsValid            = [bool]$b.ok
                    ChunksChecked      = [long]$b.chunksChecked
                    Problems           = @(foreach ($p in $b.problems) {
                            [pscustomobject]@{
                                PSTypeName = 'HvCbt.VhdBackupProblem'
                                Chunk      = $p.hash
                                Problem    = (Get-Culture).TextInfo.ToTitleCase($p.problem)
                                Detail     = $p.detail
                                Offsets    = @($p.offsets | ForEach-Object { [long]$_ })
                            }
                        })
                    ManifestProblem    = $b.manifestProblem
                    ImageSha256        = $b.imageSha256
                    ImageSha256Matches = $b.imageSha256Matches
                }
            }
        }
    }
}
