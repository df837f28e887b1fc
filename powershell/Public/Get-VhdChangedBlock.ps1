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

    -Since and -Until take a reference point id or an HvCbt.VhdReferencePoint object. With -SinceParent instead,
    -Path is a differencing disk (AVHDX, differencing VHD) and the changes are the sectors present in it, i.e. what
    was written since the checkpoint that created it (method tracking.differencing; no tracking needed).

    .PARAMETER Path
    The tracked disk file. Accepts pipeline input, and objects with a Path, FullName or PSPath property.

    .PARAMETER Since
    The reference point the changes start from (an id such as rp-1a2b3c4d-1, or a reference point object).

    .PARAMETER Until
    A later reference point the changes end at (default: now).

    .PARAMETER SinceParent
    Report the sectors present in the differencing disk -Path (its changes relative to its parent).

    .PARAMETER GranularityBytes
    With -SinceParent: round ranges out to this many bytes (default: none).

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

    .EXAMPLE
    Get-ChildItem D:\VMs\web01\*.avhdx | Get-VhdChangedBlock -SinceParent -Summary

    What each checkpoint's differencing disk holds.

    .INPUTS
    System.String, System.IO.FileInfo

    .OUTPUTS
    HvCbt.VhdChangedBlock, HvCbt.VhdChangeSummary
    #>
    [CmdletBinding(DefaultParameterSetName = 'ReferencePoint')]
    [OutputType('HvCbt.VhdChangedBlock', 'HvCbt.VhdChangeSummary')]
    param(
        [Parameter(Mandatory, Position = 0, ValueFromPipeline, ValueFromPipelineByPropertyName)]
        [Alias('FullName', 'PSPath')]
        [ValidateNotNullOrEmpty()]
        [string[]]$Path,

        [Parameter(Mandatory, ParameterSetName = 'ReferencePoint')]
        [Alias('ReferencePoint')]
        [ValidateNotNull()]
        [object]$Since,

        [Parameter(ParameterSetName = 'ReferencePoint')]
        [ValidateNotNull()]
        [object]$Until,

        [Parameter(Mandatory, ParameterSetName = 'Parent')]
        [switch]$SinceParent,

        [Parameter(ParameterSetName = 'Parent')]
        [ValidateNotNull()]
        [object]$GranularityBytes,

        [Parameter(ParameterSetName = 'ReferencePoint')]
        [switch]$SkipZeroes,

        [switch]$Summary
    )

    begin {
        $sinceId = if ($SinceParent) { $null } elseif ($Since.PSObject.Properties['Id']) { [string]$Since.Id } else { [string]$Since }
        $untilId = if ($null -eq $Until) { $null } elseif ($Until.PSObject.Properties['Id']) { [string]$Until.Id } else { [string]$Until }
    }

    process {
        foreach ($file in Resolve-HvCbtPath -Path $Path -Cmdlet $PSCmdlet) {
            if ($SinceParent) {
                $params = @{ disk = $file }
                if ($PSBoundParameters.ContainsKey('GranularityBytes')) { $params.granularity = ConvertTo-HvCbtSize $GranularityBytes }
                $r = Invoke-HvCbtEngine -Cmdlet $PSCmdlet -Method 'tracking.differencing' -Params $params -TargetObject $file
                if ($null -eq $r) { continue }
                $r | Add-Member -NotePropertyName since -NotePropertyValue 'parent'
                $r | Add-Member -NotePropertyName until -NotePropertyValue $null
                $r | Add-Member -NotePropertyName granularityBytes -NotePropertyValue $(if ($params.ContainsKey('granularity') -and $GranularityBytes -isnot [string]) { [long]$GranularityBytes } else { 0 })
            } else {
                $params = @{ disk = $file; since = $sinceId }
                if ($untilId) { $params.until = $untilId }
                if ($SkipZeroes) { $params.skipZeroes = $true }
                $r = Invoke-HvCbtEngine -Cmdlet $PSCmdlet -Method 'tracking.changes' -Params $params -TargetObject $file
                if ($null -eq $r) { continue }
            }
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
