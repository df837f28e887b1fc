function Get-WitnessStatus {
    <#
    .SYNOPSIS
    Gets this session's witness registrations (client side): witness node, file-server node, state, last
    notification.

    .DESCRIPTION
    Get-WitnessStatus lists the registrations made with Register-WitnessClient in this session's engine (method
    witness.client.status) as HvCbt.WitnessRegistration objects: Id, State, NetName, ClientName,
    FileServerAddress, FileServerNodeName, WitnessNodeName, WitnessAddress, Version, RegisteredAt,
    FileServerState (available, unavailable or unknown), LastNotification, LastNotificationAt, Notifications,
    Reconnects, LastError. -Id filters (wildcards allowed).

    .PARAMETER Id
    Only registrations whose id matches (wildcards allowed).

    .EXAMPLE
    Get-WitnessStatus | Format-Table NetName, WitnessNodeName, FileServerNodeName, FileServerState, State, LastNotification

    Shows which witness each registration uses and the last thing it was told.

    .EXAMPLE
    Get-WitnessStatus | Where-Object Reconnects -gt 0

    Registrations that had to find another witness.

    .OUTPUTS
    HvCbt.WitnessRegistration
    #>
    [CmdletBinding()]
    [OutputType('HvCbt.WitnessRegistration')]
    param(
        [SupportsWildcards()]
        [string[]]$Id
    )

    foreach ($r in Invoke-HvCbtEngine -Cmdlet $PSCmdlet -Method 'witness.client.status') {
        if ($Id -and -not ($Id | Where-Object { $r.id -like $_ })) { continue }
        ConvertTo-HvCbtWitnessRegistration -Registration $r
    }
}
