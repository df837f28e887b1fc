function Get-WitnessInterface {
    <#
    .SYNOPSIS
    Gets the interface list a witness server reports (GetInterfaceList), as an SMB client sees it.

    .DESCRIPTION
    Get-WitnessInterface connects to a witness server as a client (method witness.interfaces) and returns its
    interface list as HvCbt.WitnessInterface objects: Server, InterfaceGroupName (the node), State (Available,
    Unavailable, Unknown), IPv4Address, IPv6Address, IsWitness (the interface may be used as a witness: it is on
    another node than the one serving files), Version. The port is found through the endpoint mapper unless -Port
    is given. With -Credential the call is authenticated with NTLMSSP (integrity, or privacy with -Seal); the
    password travels to the engine over its standard input, never on a command line.

    .PARAMETER Server
    An address of the witness server.

    .PARAMETER Port
    The witness port (default: ask the endpoint mapper).

    .PARAMETER EndpointMapperPort
    The endpoint mapper port (default 135).

    .PARAMETER Credential
    A user of the witness credential store (DOMAIN\user or user).

    .PARAMETER Seal
    Use packet privacy (encryption) instead of integrity.

    .EXAMPLE
    Get-WitnessInterface -Server 10.0.0.11 -Credential (Get-Credential witness) | Format-Table

    The interfaces of a scale-out file server, with the state of each node.

    .EXAMPLE
    Get-WitnessInterface -Server 10.0.0.11 -Credential $cred | Where-Object IsWitness

    The interfaces a client may use as its witness.

    .OUTPUTS
    HvCbt.WitnessInterface
    #>
    [CmdletBinding()]
    [OutputType('HvCbt.WitnessInterface')]
    param(
        [Parameter(Mandatory, Position = 0, ValueFromPipelineByPropertyName)]
        [Alias('IPAddress', 'ComputerName')]
        [ValidateNotNullOrEmpty()]
        [string]$Server,

        [Parameter(ValueFromPipelineByPropertyName)]
        [ValidateRange(1, 65535)]
        [int]$Port,

        [ValidateRange(1, 65535)]
        [int]$EndpointMapperPort,

        [System.Management.Automation.PSCredential]
        [System.Management.Automation.Credential()]
        $Credential = [System.Management.Automation.PSCredential]::Empty,

        [switch]$Seal
    )

    process {
        $params = @{ server = $Server }
        if ($Port) { $params.port = $Port }
        if ($EndpointMapperPort) { $params.epmPort = $EndpointMapperPort }
        if ($Credential -ne [System.Management.Automation.PSCredential]::Empty) {
            $nc = $Credential.GetNetworkCredential()
            $params.user = $nc.UserName
            if ($nc.Domain) { $params.domain = $nc.Domain }
            $params.password = $nc.Password
            if ($Seal) { $params.seal = $true }
        }
        foreach ($i in Invoke-HvCbtEngine -Cmdlet $PSCmdlet -Method 'witness.interfaces' -Params $params -TargetObject $Server) {
            [pscustomobject]@{
                PSTypeName         = 'HvCbt.WitnessInterface'
                Server             = $Server
                InterfaceGroupName = $i.name
                State              = (Get-Culture).TextInfo.ToTitleCase($i.state)
                IPv4Address        = $i.ipv4
                IPv6Address        = $i.ipv6
                IsWitness          = [bool]$i.witness
                Version            = [int]$i.version
            }
        }
    }
}
