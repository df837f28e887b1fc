function Disable-VhdChangeTracking {
    <#
    .SYNOPSIS
    Stops changed-block tracking for virtual disk files and deletes their tracking state.

    .DESCRIPTION
    Disable-VhdChangeTracking removes the <disk>.hvcbt tracking state of each disk (method tracking.disable); the
    disk itself is not touched. A disk that is exported with tracking by this session (Start-VhdExport) is refused
    with ResourceBusy: stop the export first. Nothing is returned unless -PassThru is given. Supports -WhatIf and
    -Confirm.

    .PARAMETER Path
    One or more disk files. Accepts pipeline input, and objects with a Path, FullName or PSPath property.

    .PARAMETER PassThru
    Return an HvCbt.VhdChangeTrackingRemoval object (Path, Disabled: $false when tracking was not enabled).

    .EXAMPLE
    Get-ChildItem D:\VMs\*.vhdx | Disable-VhdChangeTracking -WhatIf

    Shows which disks would stop being tracked.

    .EXAMPLE
    Disable-VhdChangeTracking .\disk.vhdx -PassThru | Format-Table

    Stops tracking one disk and shows whether it was enabled.

    .INPUTS
    System.String, System.IO.FileInfo

    .OUTPUTS
    None, HvCbt.VhdChangeTrackingRemoval
    #>
    [CmdletBinding(SupportsShouldProcess, ConfirmImpact = 'Medium')]
    [OutputType('HvCbt.VhdChangeTrackingRemoval')]
    param(
        [Parameter(Mandatory, Position = 0, ValueFromPipeline, ValueFromPipelineByPropertyName)]
        [Alias('FullName', 'PSPath')]
        [ValidateNotNullOrEmpty()]
        [string[]]$Path,

        [switch]$PassThru
    )

    process {
        foreach ($file in Resolve-HvCbtPath -Path $Path -Cmdlet $PSCmdlet) {
            if (-not $PSCmdlet.ShouldProcess($file, 'Disable change tracking and delete its state')) { continue }
            $r = Invoke-HvCbtEngine -Cmdlet $PSCmdlet -Method 'tracking.disable' -Params @{ disk = $file } -TargetObject $file
            if ($null -eq $r) { continue }
            if (-not $r.disabled) { Write-Verbose "$file had no change tracking" }
            if ($PassThru) {
                [pscustomobject]@{ PSTypeName = 'HvCbt.VhdChangeTrackingRemoval'; Path = $r.diskPath; Disabled = [bool]$r.disabled }
            }
        }
    }
}
