function Enable-VhdChangeTracking {
    <#
    .SYNOPSIS
    Starts changed-block tracking for virtual disk files.

    .DESCRIPTION
    Enable-VhdChangeTracking creates the tracking state of each disk (a <disk>.hvcbt folder beside it) with the
    HvCbt engine (method tracking.enable) and returns its HvCbt.VhdChangeTracking status. From then on, writes made
    through HvCbt (an export started with Start-VhdExport) are recorded at -GranularityBytes granularity. A write by
    anything else (Hyper-V, qemu) is detected at the next open (the VHDX DataWriteGuid, the file's size and time)
    and makes tracking untrusted until Reset-VhdChangeTracking; backups then fall back to a slower change source.

    Create a reference point (New-VhdReferencePoint) to mark a moment; Get-VhdChangedBlock lists what changed
    since. Supports -WhatIf and -Confirm.

    .PARAMETER Path
    One or more disk files. Accepts pipeline input, and objects with a Path, FullName or PSPath property.

    .PARAMETER GranularityBytes
    Bytes per bitmap bit: a power of two from 4 KiB to 64 MiB (default 64 KiB), as a number (64KB) or a string ('64K').

    .PARAMETER JournalRegionBytes
    Bytes per bit of the crash journal's coarse map: a power of two from 1 MiB to 64 MiB (default 8 MiB).

    .EXAMPLE
    Get-ChildItem D:\VMs\*.vhdx | Enable-VhdChangeTracking

    Starts tracking every VHDX in D:\VMs at the default 64 KiB granularity.

    .EXAMPLE
    Enable-VhdChangeTracking .\disk.vhdx -GranularityBytes 1MB | Format-List

    Tracks a disk at 1 MiB granularity (a smaller bitmap, coarser incrementals).

    .INPUTS
    System.String, System.IO.FileInfo

    .OUTPUTS
    HvCbt.VhdChangeTracking
    #>
    [CmdletBinding(SupportsShouldProcess)]
    [OutputType('HvCbt.VhdChangeTracking')]
    param(
        [Parameter(Mandatory, Position = 0, ValueFromPipeline, ValueFromPipelineByPropertyName)]
        [Alias('FullName', 'PSPath')]
        [ValidateNotNullOrEmpty()]
        [string[]]$Path,

        [ValidateNotNull()]
        [object]$GranularityBytes,

        [ValidateNotNull()]
        [object]$JournalRegionBytes
    )

    process {
        foreach ($file in Resolve-HvCbtPath -Path $Path -Cmdlet $PSCmdlet) {
            if (-not $PSCmdlet.ShouldProcess($file, 'Enable change tracking')) { continue }
            $params = @{ disk = $file }
            if ($PSBoundParameters.ContainsKey('GranularityBytes')) { $params.granularity = ConvertTo-HvCbtSize $GranularityBytes }
            if ($PSBoundParameters.ContainsKey('JournalRegionBytes')) { $params.journalRegion = ConvertTo-HvCbtSize $JournalRegionBytes }
            $r = Invoke-HvCbtEngine -Cmdlet $PSCmdlet -Method 'tracking.enable' -Params $params -TargetObject $file
            if ($null -eq $r) { continue }
            ConvertTo-HvCbtChangeTracking -Status $r
        }
    }
}
