function Get-VhdChangeTracking {
    <#
    .SYNOPSIS
    Gets the changed-block tracking status of virtual disk files.

    .DESCRIPTION
    Get-VhdChangeTracking reads the tracking state of each disk with the HvCbt engine (method tracking.status) and
    returns an HvCbt.VhdChangeTracking object: Path, IsTrusted and UntrustedReason (false when something other than
    HvCbt wrote the disk), Generation, GranularityBytes, ReferencePoints, ChangedBytesSinceNewest (changes since the
    newest reference point), and whether the state was recovered after a crash. It changes nothing. A disk without
    tracking is a non-terminating ObjectNotFound error.

    .PARAMETER Path
    One or more disk files. Accepts pipeline input, and objects with a Path, FullName or PSPath property.

    .EXAMPLE
    Get-ChildItem D:\VMs\*.vhdx | Get-VhdChangeTracking -ErrorAction SilentlyContinue | Where-Object { -not $_.IsTrusted }

    Lists tracked disks whose tracking is no longer trusted (take a full backup, then Reset-VhdChangeTracking).

    .EXAMPLE
    Get-VhdChangeTracking .\disk.vhdx | Format-List

    Shows every detail of one disk's tracking.

    .INPUTS
    System.String, System.IO.FileInfo

    .OUTPUTS
    HvCbt.VhdChangeTracking
    #>
    [CmdletBinding()]
    [OutputType('HvCbt.VhdChangeTracking')]
    param(
        [Parameter(Mandatory, Position = 0, ValueFromPipeline, ValueFromPipelineByPropertyName)]
        [Alias('FullName', 'PSPath')]
        [ValidateNotNullOrEmpty()]
        [string[]]$Path
    )

    process {
        foreach ($file in Resolve-HvCbtPath -Path $Path -Cmdlet $PSCmdlet) {
            $r = Invoke-HvCbtEngine -Cmdlet $PSCmdlet -Method 'tracking.status' -Params @{ disk = $file } -TargetObject $file
            if ($null -eq $r) { continue }
            ConvertTo-HvCbtChangeTracking -Status $r
        }
    }
}
