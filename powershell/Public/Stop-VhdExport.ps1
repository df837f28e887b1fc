function Stop-VhdExport {
    <#
    .SYNOPSIS
    Stops NBD exports started with Start-VhdExport.

    .DESCRIPTION
    Stop-VhdExport stops an export of this session's engine (method nbd.stop): requests in flight are answered,
    clients are disconnected, the disk is flushed and closed, and its change tracking is checkpointed. Pipe export
    objects from Start-VhdExport or Get-VhdExport (Id binds by property name). An unknown id is a non-terminating
    ObjectNotFound error. Nothing is returned unless -PassThru is given. Supports -WhatIf and -Confirm.

    .PARAMETER Id
    The export id(s), such as nbd:127.0.0.1:10809.

    .PARAMETER PassThru
    Return an object (Id, Stopped) for each export.

    .EXAMPLE
    Get-VhdExport | Stop-VhdExport

    Stops every export of this session.

    .EXAMPLE
    Stop-VhdExport -Id nbd:127.0.0.1:10809 -PassThru | Format-Table

    Stops one export and shows the result.

    .INPUTS
    HvCbt.VhdExport

    .OUTPUTS
    None, HvCbt.VhdExportStop
    #>
    [CmdletBinding(SupportsShouldProcess, ConfirmImpact = 'Medium')]
    [OutputType('HvCbt.VhdExportStop')]
    param(
        [Parameter(Mandatory, Position = 0, ValueFromPipeline, ValueFromPipelineByPropertyName)]
        [ValidateNotNullOrEmpty()]
        [string[]]$Id,

        [switch]$PassThru
    )

    process {
        foreach ($one in $Id) {
            if (-not $PSCmdlet.ShouldProcess($one, 'Stop NBD export')) { continue }
            $r = Invoke-HvCbtEngine -Cmdlet $PSCmdlet -Method 'nbd.stop' -Params @{ id = $one } -TargetObject $one
            if ($null -ne $r -and $PassThru) {
                [pscustomobject]@{ PSTypeName = 'HvCbt.VhdExportStop'; Id = $r.id; Stopped = [bool]$r.stopped }
            }
        }
    }
}
