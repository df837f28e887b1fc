function Invoke-VhdContentScan {
    <#
    .SYNOPSIS
    Hashes every block of a disk and reports the blocks changed since the previous scan (works without tracking).

    .DESCRIPTION
    Invoke-VhdContentScan reads the whole disk and hashes it block by block (method tracking.scan); the hash map is
    saved in the disk's <disk>.hvcbt folder, and the next scan reports the byte ranges whose content differs. It is
    the change source of last resort (a full read each time), and a check of change tracking: with -Verify and a
    previous scan taken with -ReferencePoint it tells whether tracking reported every block the scan found changed
    (Verified, MissedByTracking). Returns an HvCbt.VhdContentScan: Path, Blocks, BlockSizeBytes, PreviousScanAt,
    ChangedBytes ($null on the first scan), Ranges, Verified, MissedByTracking. Progress shows as Write-Progress.
    Supports -WhatIf and -Confirm (the saved hash map is replaced).

    .PARAMETER Path
    One or more disk files. Accepts pipeline input, and objects with a Path, FullName or PSPath property.

    .PARAMETER BlockSizeBytes
    Bytes per hashed block, a power of two (default 64 KiB), as a number or a string such as '1M'.

    .PARAMETER Algorithm
    SHA1 (default) or SHA256.

    .PARAMETER ReferencePoint
    Record that this scan was taken at this reference point (an id or a reference point object), for a later -Verify.

    .PARAMETER Verify
    Compare the blocks found changed with what tracking reports since the previous scan's reference point.

    .PARAMETER NoSave
    Do not replace the saved hash map (compare only).

    .EXAMPLE
    Get-ChildItem D:\VMs\*.vhdx | Invoke-VhdContentScan | Format-Table Path, ChangedBytes, PreviousScanAt

    Scans every VHDX and shows how much changed since the previous scan.

    .EXAMPLE
    $rp = New-VhdReferencePoint .\disk.vhdx; Invoke-VhdContentScan .\disk.vhdx -ReferencePoint $rp

    Takes a scan at a reference point; a later Invoke-VhdContentScan -Verify checks tracking against it.

    .INPUTS
    System.String, System.IO.FileInfo

    .OUTPUTS
    HvCbt.VhdContentScan
    #>
    [CmdletBinding(SupportsShouldProcess)]
    [OutputType('HvCbt.VhdContentScan')]
    param(
        [Parameter(Mandatory, Position = 0, ValueFromPipeline, ValueFromPipelineByPropertyName)]
        [Alias('FullName', 'PSPath')]
        [ValidateNotNullOrEmpty()]
        [string[]]$Path,

        [ValidateNotNull()]
        [object]$BlockSizeBytes,

        [ValidateSet('SHA1', 'SHA256')]
        [string]$Algorithm,

        [ValidateNotNull()]
        [object]$ReferencePoint,

        [switch]$Verify,

        [switch]$NoSave
    )

    process {
        foreach ($file in Resolve-HvCbtPath -Path $Path -Cmdlet $PSCmdlet) {
            if (-not $NoSave -and -not $PSCmdlet.ShouldProcess($file, 'Scan the content and save its hash map')) { continue }
            $params = @{ disk = $file }
            if ($PSBoundParameters.ContainsKey('BlockSizeBytes')) { $params.blockSize = ConvertTo-HvCbtSize $BlockSizeBytes }
            if ($Algorithm) { $params.algorithm = $Algorithm.ToLowerInvariant() }
            if ($null -ne $ReferencePoint) { $params.refpoint = if ($ReferencePoint.PSObject.Properties['Id']) { [string]$ReferencePoint.Id } else { [string]$ReferencePoint } }
            if ($Verify) { $params.verify = $true }
            if ($NoSave) { $params.save = $false }
            $r = Invoke-HvCbtEngine -Cmdlet $PSCmdlet -Method 'tracking.scan' -Params $params -TargetObject $file -Activity "Scanning $file"
            if ($null -eq $r) { continue }
            $toRanges = { param($list) @(foreach ($x in $list) { [pscustomobject]@{ PSTypeName = 'HvCbt.VhdChangedBlock'; Path = $file; Since = 'scan'; Until = $null; Offset = [long]$x.offset; Length = [long]$x.length } }) }
            [pscustomobject]@{
                PSTypeName       = 'HvCbt.VhdContentScan'
                Path             = $file
                Blocks           = [long]$r.blocks
                BlockSizeBytes   = [long]$r.blockBytes
                PreviousScanAt   = if ($r.previousScanAt) { [datetime]::Parse($r.previousScanAt, [cultureinfo]::InvariantCulture, [System.Globalization.DateTimeStyles]::RoundtripKind) } else { $null }
                ChangedBytes     = if ($null -ne $r.changedBytes) { [long]$r.changedBytes } else { $null }
                Ranges           = & $toRanges $r.ranges
                Verified         = $r.verified
                MissedByTracking = & $toRanges $r.missedByTracking
            }
        }
    }
}
