function Get-VhdExport {
    <#
    .SYNOPSIS
    Gets the NBD exports running in this session's engine.

    .DESCRIPTION
    Get-VhdExport lists the exports started with Start-VhdExport that are still running (method nbd.list), as
    HvCbt.VhdExport objects: Id, Uri, Listen, Name, Path, SizeBytes, ReadOnly and the number of client
    Connections. -Id and -Path filter the list (wildcards allowed).

    .PARAMETER Id
    Only exports whose id matches (wildcards allowed), e.g. 'nbd:127.0.0.1:*'.

    .PARAMETER Path
    Only exports of disk files matching this path (wildcards allowed).

    .EXAMPLE
    Get-VhdExport | Format-Table Name, Uri, Connections

    Lists the running exports.

    .EXAMPLE
    Get-VhdExport -Path *web01* | Stop-VhdExport

    Stops every export of a web01 disk.

    .OUTPUTS
    HvCbt.VhdExport
    #>
    [CmdletBinding()]
    [OutputType('HvCbt.VhdExport')]
    param(
        [SupportsWildcards()]
        [string[]]$Id,

        [SupportsWildcards()]
        [string[]]$Path
    )

    foreach ($r in Invoke-HvCbtEngine -Cmdlet $PSCmdlet -Method 'nbd.list') {
        if ($Id -and -not ($Id | Where-Object { $r.id -like $_ })) { continue }
        if ($Path -and -not ($Path | Where-Object { $r.path -like $_ })) { continue }
        ConvertTo-HvCbtVhdExport -Export $r
    }
}
