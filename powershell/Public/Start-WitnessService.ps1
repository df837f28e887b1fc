function Start-WitnessService {
    <#
    .SYNOPSIS
    Starts the SMB Witness service (MS-SWN) of a file-server node in this session's engine.

    .DESCRIPTION
    Start-WitnessService runs the DCE/RPC witness service and its endpoint mapper (method witness.serve) inside the
    module's engine process, so SMB 3 clients of a scale-out or clustered file server are told when the node they
    use goes down or when they should move. It returns an HvCbt.WitnessService: Id, NodeName, NetName, IPAddress,
    Port, EndpointMapperPort, AdminSocket, AllowAnonymous, MembershipSource (static or etcd), ClusterName.

    Clients authenticate with NTLMSSP against a credential store (-CredentialStorePath; add users with the CLI,
    `hvcbt witness user add`), at packet integrity or privacy; -AllowAnonymous accepts unauthenticated calls (for
    tests). Kerberos is not supported. -StaticNode lists the cluster's nodes and addresses (NAME=IP[,IP...]); the
    default is this node alone; -EtcdEndpoint joins a cluster whose membership is kept in etcd instead. Without -Port the service takes a free port that clients find through the
    endpoint mapper (port 135 unless -EndpointMapperPort). The service runs until Stop-WitnessService,
    Remove-Module HvCbt or the end of the session. Supports -WhatIf and -Confirm.

    .PARAMETER NodeName
    This node's name.

    .PARAMETER NetName
    The file server's network name(s) clients register for.

    .PARAMETER IPAddress
    The address(es) to listen on.

    .PARAMETER Port
    The witness TCP port (default: a free port, registered in the endpoint mapper).

    .PARAMETER EndpointMapperPort
    The endpoint mapper port (default 135; 0 = no endpoint mapper, then -Port is required).

    .PARAMETER CredentialStorePath
    The credential store file (users and NT hashes, mode 0600).

    .PARAMETER AllowAnonymous
    Accept calls below packet integrity (unauthenticated). For tests and closed networks only.

    .PARAMETER StaticNode
    The cluster's nodes as NAME=IP[,IP...] strings (static membership).

    .PARAMETER ShareName
    The shares RegisterEx accepts (default: any).

    .PARAMETER ConfigPath
    A JSON file with the same settings (parameters given here win).

    .PARAMETER EtcdEndpoint
    Join the cluster through etcd at these client URLs (http://10.0.0.5:2379, ...) instead of -StaticNode: the nodes
    announce themselves, and moves, client lists and node states are cluster-wide. etcd unreachable at start is an
    error (never a silent single-node service).

    .PARAMETER LeaseTtlSeconds
    The etcd lease TTL in seconds (default 3): how long a frozen or cut-off node still counts as up.

    .PARAMETER ClusterName
    The cluster name in etcd (default: default).

    .PARAMETER UnregisterAfterUnavailableSeconds
    Seconds after an UNAVAILABLE notification before the registration is removed (default 5).

    .EXAMPLE
    Start-WitnessService -NodeName FS1 -NetName SOFS -IPAddress 10.0.0.11 -CredentialStorePath /etc/hvcbt/witness-users.json -StaticNode FS1=10.0.0.11, FS2=10.0.0.12 | Format-List

    Serves the witness for node FS1 of a two-node scale-out file server.

    .EXAMPLE
    Start-WitnessService -NodeName FS1 -NetName SOFS -IPAddress 10.0.0.11 -CredentialStorePath ./users.json -EtcdEndpoint http://10.0.0.5:2379, http://10.0.0.6:2379 | Format-List

    Serves node FS1 of a cluster whose membership is kept in etcd.

    .EXAMPLE
    $w = Start-WitnessService -NodeName FS1 -NetName SOFS -IPAddress 127.0.0.5 -Port 0 -EndpointMapperPort 0 -AllowAnonymous; Get-WitnessInterface -Server 127.0.0.5 -Port $w.Port

    A test service on a loopback address and a free port, then its interface list.

    .OUTPUTS
    HvCbt.WitnessService
    #>
    [CmdletBinding(SupportsShouldProcess)]
    [OutputType('HvCbt.WitnessService')]
    param(
        [Parameter(Position = 0)]
        [ValidateNotNullOrEmpty()]
        [string]$NodeName,

        [ValidateNotNullOrEmpty()]
        [string[]]$NetName,

        [Alias('Listen')]
        [ValidateNotNullOrEmpty()]
        [string[]]$IPAddress,

        [ValidateRange(0, 65535)]
        [int]$Port,

        [ValidateRange(0, 65535)]
        [int]$EndpointMapperPort,

        [ValidateNotNullOrEmpty()]
        [string]$CredentialStorePath,

        [switch]$AllowAnonymous,

        [ValidateNotNullOrEmpty()]
        [string[]]$StaticNode,

        [ValidateNotNullOrEmpty()]
        [string[]]$ShareName,

        [ValidateNotNullOrEmpty()]
        [string]$ConfigPath,

        [ValidateNotNullOrEmpty()]
        [string[]]$EtcdEndpoint,

        [ValidateRange(1, 3600)]
        [int]$LeaseTtlSeconds,

        [ValidatePattern('^[A-Za-z0-9_.-]+$')]
        [string]$ClusterName,

        [ValidateRange(0, [int]::MaxValue)]
        [int]$UnregisterAfterUnavailableSeconds
    )

    $params = @{}
    if ($NodeName) { $params.node = $NodeName }
    if ($NetName) { $params.netname = @($NetName) }
    if ($IPAddress) { $params.listen = @($IPAddress) }
    if ($PSBoundParameters.ContainsKey('Port')) { $params.port = $Port }
    if ($PSBoundParameters.ContainsKey('EndpointMapperPort')) { $params.epmPort = $EndpointMapperPort }
    if ($CredentialStorePath) { $params.credentials = @(Resolve-HvCbtPath -Path $CredentialStorePath -Cmdlet $PSCmdlet)[0] }
    if ($AllowAnonymous) { $params.allowAnonymous = $true }
    if ($StaticNode) { $params.staticNode = @($StaticNode) }
    if ($ShareName) { $params.share = @($ShareName) }
    if ($EtcdEndpoint) { $params.etcd = @($EtcdEndpoint) }
    if ($PSBoundParameters.ContainsKey('LeaseTtlSeconds')) { $params.leaseTtl = $LeaseTtlSeconds }
    if ($ClusterName) { $params.cluster = $ClusterName }
    if ($PSBoundParameters.ContainsKey('UnregisterAfterUnavailableSeconds')) { $params.unregisterAfterUnavailable = $UnregisterAfterUnavailableSeconds }
    if ($ConfigPath) { $params.config = @(Resolve-HvCbtPath -Path $ConfigPath -Cmdlet $PSCmdlet)[0] }
    $target = if ($NodeName) { "witness for $NodeName on $($IPAddress -join ', ')" } else { "witness from $ConfigPath" }
    if (-not $PSCmdlet.ShouldProcess($target, 'Start')) { return }
    $r = Invoke-HvCbtEngine -Cmdlet $PSCmdlet -Method 'witness.serve' -Params $params -TargetObject $target
    if ($null -eq $r) { return }
    [pscustomobject]@{
        PSTypeName         = 'HvCbt.WitnessService'
        Id                 = $r.id
        NodeName           = $r.node
        NetName            = @($r.netNames)
        IPAddress          = @($r.listen)
        Port               = [int]$r.port
        EndpointMapperPort = [int]$r.epmPort
        AdminSocket        = @($r.adminSockets)
        AllowAnonymous     = [bool]$r.allowAnonymous
        MembershipSource   = if ($r.PSObject.Properties['membership'] -and $r.membership) { $r.membership.source } else { 'static' }
        ClusterName        = if ($r.PSObject.Properties['membership'] -and $r.membership) { $r.membership.cluster } else { $null }
    }
}
