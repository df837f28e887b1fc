function Get-VhdChangedBlock {
    <#
    .SYNOPSIS
    Gets the byte ranges of a tracked virtual disk that changed since a reference point (or between two).

    .DESCRIPTION
    Get-VhdChangedBlock asks the disk's change tracking (method tracking.changes) which ranges were written after
    reference point -Since (and before -Until, if given). Ranges are merged and rounded out to the tracking
    granularity. It returns one HvCbt.VhdChangedBlock object per range (Path, Since, Until, Offset, Length), or with
    -Summary a single HvCbt.VhdChangeSummary (RangeCount, ChangedBytes, GranularityBytes, Ranges). With -SkipZeroes
    the engine reads the changed ranges and leaves out granules that now read as zeros.

    -Since and -Until take a reference point id or an HvCbt.VhdReferencePoint object.

    .PARAMETER Path
    The tracked disk file. Accepts pipeline input, and objects with a Path, FullName or PSPath property.

    .PARAMETER Since
    The reference point the changes start from (an id such as rp-1a2b3c4d-1, or a reference point object).

    .PARAMETER Until
    A later reference point the changes end at (default: now).

    .PARAMETER SkipZeroes
    Leave out changed granules that read as zeros.

    .PARAMETER Summary
    Return one summary object per disk instead of one object per range.

    .EXAMPLE
    Get-VhdChangedBlock .\disk.vhdx -Since rp-1a2b3c4d-1 | Measure-Object Length -Sum

    How many bytes changed since a reference point.

    .EXAMPLE
    $rp = Get-VhdReferencePoint .\disk.vhdx | Select-Object -First 1; Get-VhdChangedBlock .\disk.vhdx -Since $rp -Summary

    A summary of the changes since the oldest reference point.

    .INPUTS
    System.String, System.IO.FileInfo

    .OUTPUTS
    HvCbt.VhdChangedBlock, HvCbt.VhdChangeSummary
    #>
    [CmdletBinding()]
    [OutputType('HvCbt.VhdChangedBlock', 'HvCbt.VhdChangeSummary')]
    param(
        [Parameter(Mandatory, Position = 0, ValueFromPipeline, ValueFromPipelineByPropertyName)]
        [Alias('FullName', 'PSPath')]
        [ValidateNotNullOrEmpty()]
        [string[]]$Path,

        [Parameter(Mandatory)]
        [Alias('ReferencePoint')]
        [ValidateNotNull()]
        [object]$Since,

        [ValidateNotNull()]
        [object]$Until,

        [switch]$SkipZeroes,

        [switch]$Summary
    )

    begin {
        $sinceId = if ($Since.PSObject.Properties['Id']) { [string]$Since.Id } else { [string]$Since }
        $untilId = if ($null -eq $Until) { $null } elseif ($Until.PSObject.Properties['Id']) { [string]$Until.Id } else { [string]$Until }
    }

    process {
        foreach ($file in Resolve-HvCbtPath -Path $Path -Cmdlet $PSCmdlet) {
            $params = @{ disk = $file; since = $sinceId }
            if ($untilId) { $params.until = $untilId }
            if ($SkipZeroes) { $params.skipZeroes = $true }
            $r = Invoke-HvCbtEngine -Cmdlet $PSCmdlet -Method 'tracking.changes' -Params $params -TargetObject $file
            if ($null -eq $r) { continue }
            $ranges = @(foreach ($x in $r.ranges) {
                    [pscustomobject]@{
                        PSTypeName = 'HvCbt.VhdChangedBlock'
                        Path       = $file
                        Since      = $r.since
                        Until      = $r.until
                        Offset     = [long]$x.offset
                        Length     = [long]$x.length
                    }
                })
            if (-not $Summary) { $ranges; continue }
            [pscustomobject]@{
                PSTypeName       = 'HvCbt.VhdChangeSummary'
                Path             = $file
                Since            = $r.since
                Until            = $r.until
                GranularityBytes = [long]$r.granularityBytes
                RangeCount       = [int]$r.rangeCount
                ChangedBytes     = [long]$r.changedBytes
                Ranges           = $ranges
            }
        }
    }
}
