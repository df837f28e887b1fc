function Reset-VhdChangeTracking {
    <#
    .SYNOPSIS
    Forgets the tracking history of virtual disk files: a new generation with no reference points.

    .DESCRIPTION
    Reset-VhdChangeTracking starts tracking afresh (method tracking.reset): every reference point is removed and a
    new generation begins, so the next backup of the disk is a full one. Use it after tracking became untrusted
    (the disk was written by something other than HvCbt) or to change the granularity. Returns the new
    HvCbt.VhdChangeTracking status. Supports -WhatIf and -Confirm (it asks by default: history is lost).

    .PARAMETER Path
    One or more disk files. Accepts pipeline input, and objects with a Path, FullName or PSPath property.

    .PARAMETER GranularityBytes
    A new granularity (power of two, 4 KiB to 64 MiB), as a number or a string such as '64K'. Default: keep.

    .EXAMPLE
    Get-VhdChangeTracking .\disk.vhdx | Where-Object { -not $_.IsTrusted } | Reset-VhdChangeTracking -Confirm:$false

    Resets tracking of the disk if it is no longer trusted.

    .EXAMPLE
    Reset-VhdChangeTracking .\disk.vhdx -GranularityBytes 256KB -WhatIf | Out-Null

    Shows what a reset at 256 KiB granularity would do.

    .INPUTS
    System.String, System.IO.FileInfo

    .OUTPUTS
    HvCbt.VhdChangeTracking
    #>
    [CmdletBinding(SupportsShouldProcess, ConfirmImpact = 'High')]
    [OutputType('HvCbt.VhdChangeTracking')]
    param(
        [Parameter(Mandatory, Position = 0, ValueFromPipeline, ValueFromPipelineByPropertyName)]
        [Alias('FullName', 'PSPath')]
        [ValidateNotNullOrEmpty()]
        [string[]]$Path,

        [ValidateNotNull()]
        [object]$GranularityBytes
    )

    process {
        foreach ($file in Resolve-HvCbtPath -Path $Path -Cmdlet $PSCmdlet) {
            if (-not $PSCmdlet.ShouldProcess($file, 'Reset change tracking (all reference points are removed)')) { continue }
            $params = @{ disk = $file }
            if ($PSBoundParameters.ContainsKey('GranularityBytes')) { $params.granularity = ConvertTo-HvCbtSize $GranularityBytes }
            $r = Invoke-HvCbtEngine -Cmdlet $PSCmdlet -Method 'tracking.reset' -Params $params -TargetObject $file
            if ($null -eq $r) { continue }
            ConvertTo-HvCbtChangeTracking -Status $r
        }
    }
}
