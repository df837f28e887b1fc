function Get-WitnessStatus {
    <#
    .SYNOPSIS
    Gets this session's witness registrations (client side): witness node, file-server node, state, last
    notification.

    .DESCRIPTION
    Get-WitnessStatus lists the registrations made with Register-WitnessClient in this session's engine (method
    witness.client.status) as HvCbt.WitnessRegistration objects: Id, State, NetName, ClientName,
    FileServerAddress, FileServerNodeName, WitnessNodeName, WitnessAddress, Version, RegisteredAt,
    LastNotification, LastNotificationAt, Notifications, Reconnects, LastError. -Id filters (wildcards allowed).

    .PARAMETER Id
    Only registrations whose id matches (wildcards allowed).

    .EXAMPLE
    Get-WitnessStatus | Format-Table NetName, WitnessNodeName, FileServerNodeName, State, LastNotification

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
        [pscustomobject]@{
            PSTypeName          = 'HvCbt.WitnessRegistration'
            Id                  = $r.id
            State               = $r.state
            NetName             = $r.netName
            ClientName          = $r.clientName
            FileServerAddress   = $r.fileServerAddress
            FileServerNodeName  = $r.fileServerNode
            WitnessNodeName     = $r.witnessNode
            WitnessAddress      = $r.witnessAddress
            Version             = $r.version
            RegisteredAt        = if ($r.registeredAt) { [datetime]::Parse($r.registeredAt, [cultureinfo]::InvariantCulture, [System.Globalization.DateTimeStyles]::RoundtripKind) } else { $null }
            LastNotification    = if ($r.lastNotification) { "$($r.lastNotification.type): $($r.lastNotification.detail)" } else { $null }
            LastNotificationAt  = if ($r.lastNotification) { [datetime]::Parse($r.lastNotification.at, [cultureinfo]::InvariantCulture, [System.Globalization.DateTimeStyles]::RoundtripKind) } else { $null }
            Notifications       = [int]$r.notifications
            Reconnects          = [int]$r.reconnects
            LastError           = $r.lastError
        }
    }
}
