function Get-WitnessClient {
    <#
    .SYNOPSIS
    Gets the clients registered with a witness service running on this host, like Get-SmbWitnessClient.

    .DESCRIPTION
    Get-WitnessClient asks a witness service (started with Start-WitnessService, or `hvcbt witness serve` under a
    service manager) for its registrations, through the service's admin socket (method witness.clients). Each is an
    HvCbt.WitnessClient with the properties of Get-SmbWitnessClient: ClientName, FileServerNodeName, IPAddress,
    NetworkName, ShareName, NotificationsCancelled, NotificationsSent, QueuedNotifications, WitnessNodeName, Flags,
    Version, State; plus RegistrationId, KeepAliveSeconds, Principal, RemoteAddress, RegisteredAt,
    LastNotification and Server. -ClientName filters (wildcards allowed).

    .PARAMETER Server
    An address the witness service listens on (selects its admin socket).

    .PARAMETER ClientName
    Only clients whose name matches (wildcards allowed).

    .EXAMPLE
    Get-WitnessClient -Server 10.0.0.11 | Format-Table

    The clients registered with the witness of this node.

    .EXAMPLE
    Get-WitnessClient -Server 10.0.0.11 | Where-Object FileServerNodeName -eq FS2 | Move-WitnessClient -DestinationNode FS1

    Asks every client that uses node FS2 to move to FS1.

    .OUTPUTS
    HvCbt.WitnessClient
    #>
    [CmdletBinding()]
    [OutputType('HvCbt.WitnessClient')]
    param(
        [Parameter(Mandatory, Position = 0, ValueFromPipelineByPropertyName)]
        [Alias('IPAddress')]
        [ValidateNotNullOrEmpty()]
        [string]$Server,

        [SupportsWildcards()]
        [string[]]$ClientName
    )

    process {
        foreach ($r in Invoke-HvCbtEngine -Cmdlet $PSCmdlet -Method 'witness.clients' -Params @{ server = $Server } -TargetObject $Server) {
            if ($ClientName -and -not ($ClientName | Where-Object { $r.clientName -like $_ })) { continue }
            [pscustomobject]@{
                PSTypeName             = 'HvCbt.WitnessClient'
                ClientName             = $r.clientName
                FileServerNodeName     = $r.fileServerNodeName
                IPAddress              = $r.ipAddress
                NetworkName            = $r.networkName
                ShareName              = $r.shareName
                NotificationsCancelled = [long]$r.notificationsCancelled
                NotificationsSent      = [long]$r.notificationsSent
                QueuedNotifications    = [long]$r.queuedNotifications
                WitnessNodeName        = $r.witnessNodeName
                Flags                  = [int]$r.flags
                Version                = [int]$r.version
                State                  = $r.state
                RegistrationId         = $r.id
                KeepAliveSeconds       = [int]$r.keepAliveSeconds
                Principal              = $r.principal
                RemoteAddress          = $r.remoteAddress
                RegisteredAt           = [datetime]::Parse($r.registeredAt, [cultureinfo]::InvariantCulture, [System.Globalization.DateTimeStyles]::RoundtripKind)
                LastNotification       = $r.lastNotification
                Server                 = $Server
            }
        }
    }
}
