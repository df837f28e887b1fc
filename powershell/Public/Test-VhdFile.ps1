function Test-VhdFile {
    <#
    .SYNOPSIS
    Checks every structure of VHDX, VHD and raw disk files and reports the problems found.

    .DESCRIPTION
    Test-VhdFile validates each disk file with the HvCbt engine (method vhd.check): headers, region tables,
    metadata, block allocation tables, the log and (for VHD) the footer and BAT. It does not change the file.

    For each file it returns an HvCbt.VhdCheckResult: Path, VhdFormat, Status ('Clean', 'Problems' or
    'Unreadable'), IsValid ($true when Status is Clean; warnings alone keep a disk valid), ErrorCount,
    WarningCount and Problems (HvCbt.VhdProblem objects: Severity, Structure, Offset, Message). With -Quiet it
    returns only $true or $false per file, like Test-Path.

    A damaged file is not an error of the cmdlet: it is a result with IsValid = $false. A missing file is a
    non-terminating ObjectNotFound error.

    .PARAMETER Path
    One or more disk files. Accepts pipeline input, and objects with a Path, FullName or PSPath property.

    .PARAMETER Quiet
    Return $true (valid) or $false (problems or unreadable) instead of result objects.

    .EXAMPLE
    Get-ChildItem D:\VMs -Recurse -Include *.vhdx | Test-VhdFile | Where-Object { -not $_.IsValid }

    Lists the disks under D:\VMs that have problems.

    .EXAMPLE
    Get-Item .\disk.vhdx | Test-VhdFile -Quiet

    Returns $true when the disk is valid, $false otherwise (for use in a condition).

    .EXAMPLE
    (Test-VhdFile .\broken.vhdx).Problems | Format-Table Severity, Structure, Offset, Message

    Shows each problem with the structure and file offset it is about.

    .INPUTS
    System.String, System.IO.FileInfo

    .OUTPUTS
    HvCbt.VhdCheckResult, System.Boolean
    #>
    [CmdletBinding()]
    [OutputType('HvCbt.VhdCheckResult', [bool])]
    param(
        [Parameter(Mandatory, Position = 0, ValueFromPipeline, ValueFromPipelineByPropertyName)]
        [Alias('FullName', 'PSPath')]
        [ValidateNotNullOrEmpty()]
        [string[]]$Path,

        [switch]$Quiet
    )

    process {
        foreach ($file in Resolve-HvCbtPath -Path $Path -Cmdlet $PSCmdlet) {
            $r = Invoke-HvCbtEngine -Cmdlet $PSCmdlet -Method 'vhd.check' -Params @{ path = $file } -TargetObject $file
            if ($null -eq $r) { continue }
            if ($Quiet) { $r.status -eq 'clean'; continue }
            $problems = @(foreach ($p in $r.problems) {
                    [pscustomobject]@{
                        PSTypeName = 'HvCbt.VhdProblem'
                        Path       = $r.path
                        Severity   = (Get-Culture).TextInfo.ToTitleCase($p.severity)
                        Structure  = $p.structure
                        Offset     = if ($null -ne $p.offset) { [long]$p.offset } else { $null }
                        Message    = $p.message
                    }
                })
            [pscustomobject]@{
                PSTypeName   = 'HvCbt.VhdCheckResult'
                Path         = $r.path
                VhdFormat    = if ($r.format) { ConvertTo-HvCbtVhdFormat $r.format } else { $null }
                Status       = (Get-Culture).TextInfo.ToTitleCase($r.status)
                IsValid      = $r.status -eq 'clean'
                ErrorCount   = [int]$r.errors
                WarningCount = [int]$r.warnings
                Problems     = $problems
            }
        }
    }
}
