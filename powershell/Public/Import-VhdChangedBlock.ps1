function Import-VhdChangedBlock {
    <#
    .SYNOPSIS
    Adds changes found by another source to a tracked disk: a differencing child's sectors, or a content scan's
    changed blocks.

    .DESCRIPTION
    Import-VhdChangedBlock feeds changes that HvCbt did not see being written into the disk's change tracking
    (method tracking.import), after its newest reference point, so Get-VhdChangedBlock, incremental backups and the
    NBD dirty-bitmap contexts include them. -DifferencingPath imports the sectors present in a differencing child
    of the disk (for example the writes a VM made to a Hyper-V checkpoint AVHDX, before it is merged);
    -FromContentScan imports the blocks whose content changed since the disk's last saved content scan
    (Invoke-VhdContentScan; the saved scan is updated). Returns an HvCbt.VhdChangeImport (Path, RangeCount,
    ImportedBytes). Supports -WhatIf and -Confirm.

    .PARAMETER Path
    The tracked disk. Accepts pipeline input, and objects with a Path, FullName or PSPath property.

    .PARAMETER DifferencingPath
    A differencing child of the disk whose present sectors to import.

    .PARAMETER FromContentScan
    Import the blocks changed since the last saved content scan of the disk.

    .EXAMPLE
    Get-Item .\disk.vhdx | Import-VhdChangedBlock -DifferencingPath .\disk_5D2C.avhdx; Merge-VhdFile .\disk_5D2C.avhdx

    Records a checkpoint's writes in tracking before merging it, so the next incremental backup includes them.

    .EXAMPLE
    Get-ChildItem D:\VMs\*.vhdx | Import-VhdChangedBlock -FromContentScan

    Catches up tracking on disks that were written outside HvCbt, from their content scans.

    .INPUTS
    System.String, System.IO.FileInfo

    .OUTPUTS
    HvCbt.VhdChangeImport
    #>
    [CmdletBinding(SupportsShouldProcess)]
    [OutputType('HvCbt.VhdChangeImport')]
    param(
        [Parameter(Mandatory, Position = 0, ValueFromPipeline, ValueFromPipelineByPropertyName)]
        [Alias('FullName', 'PSPath')]
        [ValidateNotNullOrEmpty()]
        [string[]]$Path,

        [Parameter(Mandatory, ParameterSetName = 'Differencing')]
        [ValidateNotNullOrEmpty()]
        [string]$DifferencingPath,

        [Parameter(Mandatory, ParameterSetName = 'Scan')]
        [switch]$FromContentScan
    )

    begin {
        $child = $null
        if ($DifferencingPath) {
            $child = @(Resolve-HvCbtPath -Path $DifferencingPath -Cmdlet $PSCmdlet)
            if ($child.Count -ne 1) {
                $PSCmdlet.ThrowTerminatingError([System.Management.Automation.ErrorRecord]::new(
                        [System.ArgumentException]::new("-DifferencingPath '$DifferencingPath' must name exactly one file."),
                        'HvCbt.DifferencingPath', [System.Management.Automation.ErrorCategory]::InvalidArgument, $DifferencingPath))
            }
            $child = $child[0]
        }
    }

    process {
        foreach ($file in Resolve-HvCbtPath -Path $Path -Cmdlet $PSCmdlet) {
            $source = if ($child) { "the sectors present in $child" } else { 'the blocks changed since the last content scan' }
            if (-not $PSCmdlet.ShouldProcess($file, "Import $source into change tracking")) { continue }
            $params = @{ disk = $file }
            if ($child) { $params.fromDifferencing = $child } else { $params.fromScan = $true }
            $r = Invoke-HvCbtEngine -Cmdlet $PSCmdlet -Method 'tracking.import' -Params $params -TargetObject $file -Activity "Importing changes into $file"
            if ($null -eq $r) { continue }
            [pscustomobject]@{ PSTypeName = 'HvCbt.VhdChangeImport'; Path = $file; RangeCount = [int]$r.rangeCount; ImportedBytes = [long]$r.importedBytes }
        }
    }
}
