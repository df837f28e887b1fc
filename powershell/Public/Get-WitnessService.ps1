function Get-WitnessService {
    <#
    .SYNOPSIS
    Gets the state of a witness service running on this host: its membership (static or etcd), and every node with
    its state.

    .DESCRIPTION
    Get-WitnessService asks a running witness service (started with Start-WitnessService, or `hvcbt witness serve`
    under a service manager) for its state through its admin socket (method witness.status). It returns an
    HvCbt.WitnessServiceStatus: Server, NodeName, NetName, IPAddress, Port, Registrations (held by this node),
    MembershipSource (static or etcd), ClusterName, Connected ($false while etcd is unreachable: the service is
    degraded and serves the last known view), DegradedSince, LeaseId, LeaseTtlSeconds, EtcdEndpoint and Nodes
    (HvCbt.WitnessNode objects: Name, State, IPAddress).

    .PARAMETER Server
    An address the witness service listens on (selects its admin socket).

    .EXAMPLE
    Get-WitnessService -Server 10.0.0.11 | Format-List

    Shows the service of this node and its view of the cluster.

    .EXAMPLE
    (Get-WitnessService -Server 10.0.0.11).Nodes | Where-Object State -ne 'up'

    Lists the nodes the witness considers down or unknown.

    .OUTPUTS
    HvCbt.WitnessServiceStatus
    #>
    [CmdletBinding()]
    [OutputType('HvCbt.WitnessServiceStatus')]
    param(
        [Parameter(Mandatory, Position = 0, ValueFromPipelineByPropertyName)]
        [Alias('IPAddress')]
        [ValidateNotNullOrEmpty()]
        [string[]]$Server
    )

    process {
        # An HvCbt.WitnessService object carries all its addresses; one is enough to reach its admin socket.
        $one = $Server[0]
        $r = Invoke-HvCbtEngine -Cmdlet $PSCmdlet -Method 'witness.status' -Params @{ server = $one } -TargetObject $one
        if ($null -eq $r) { return }
        $m = $r.membership
        [pscustomobject]@{
            PSTypeName       = 'HvCbt.WitnessServiceStatus'
            Server           = $one
            NodeName         = $r.node
            NetName          = @($r.netNames)
            IPAddress        = @($r.listen)
            Port             = [int]$r.port
            Registrations    = [int]$r.registrations
            MembershipSource = $m.source
            ClusterName      = $m.cluster
            Connected        = [bool]$m.connected
            DegradedSince    = if ($m.degradedSince) { [datetime]::Parse($m.degradedSince, [cultureinfo]::InvariantCulture, [System.Globalization.DateTimeStyles]::RoundtripKind) } else { $null }
            LeaseId          = $m.leaseId
            LeaseTtlSeconds  = $m.leaseTtlSeconds
            EtcdEndpoint     = @($m.endpoints)
            Nodes            = @(foreach ($n in $m.nodes) {
                    [pscustomobject]@{ PSTypeName = 'HvCbt.WitnessNode'; Name = $n.name; State = $n.state; IPAddress = @($n.addresses) }
                })
        }
    }
}
