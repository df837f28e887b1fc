function Register-WitnessClient {
    <#
    .SYNOPSIS
    Registers this host with a witness server (client side) and keeps listening for its notifications.

    .DESCRIPTION
    Register-WitnessClient does what an SMB 3 client does after connecting to a clustered file server (method
    witness.client.register): it asks the witness servers for the interface list, picks a witness on another node
    than -FileServer, registers for -NetName, and keeps an AsyncNotify call waiting. Notifications (a node going
    down, a move request) are written as warnings during later HvCbt calls and recorded in the registration's
    status (Get-WitnessStatus). If the witness goes away the client tries the other candidates.

    The registration lives in this session's engine until Unregister-WitnessClient, Remove-Module HvCbt or the end
    of the session. It returns an HvCbt.WitnessRegistration (Id, State, WitnessNodeName, FileServerNodeName, ...),
    or an OperationTimeout error when no witness accepted the registration within 15 s. With -Credential the
    calls are authenticated with NTLMSSP; the password travels to the engine over its standard input. Supports
    -WhatIf and -Confirm.

    .PARAMETER NetName
    The file server's network name.

    .PARAMETER FileServer
    The address of the file-server node this host uses.

    .PARAMETER ClientName
    This client's name (default: the host name).

    .PARAMETER WitnessServer
    Other witness addresses to ask for the interface list.

    .PARAMETER ShareName
    The share, for share-level (V2) notifications.

    .PARAMETER Port
    The witness port (default: ask the endpoint mapper).

    .PARAMETER EndpointMapperPort
    The endpoint mapper port (default 135).

    .PARAMETER KeepAliveSeconds
    The V2 keep-alive in seconds (0 = none).

    .PARAMETER Credential
    A user of the witness credential store (DOMAIN\user or user).

    .PARAMETER Seal
    Use packet privacy (encryption) instead of integrity.

    .EXAMPLE
    Register-WitnessClient -NetName SOFS -FileServer 10.0.0.11 -Credential (Get-Credential witness)

    Registers this host for SOFS while it uses node 10.0.0.11.

    .EXAMPLE
    Register-WitnessClient -NetName SOFS -FileServer 10.0.0.11 -ShareName VMs -KeepAliveSeconds 60 | Format-List

    A share-level registration with a one-minute keep-alive.

    .OUTPUTS
    HvCbt.WitnessRegistration
    #>
    [CmdletBinding(SupportsShouldProcess)]
    [OutputType('HvCbt.WitnessRegistration')]
    param(
        [Parameter(Mandatory, Position = 0)]
        [Alias('NetworkName')]
        [ValidateNotNullOrEmpty()]
        [string]$NetName,

        [Parameter(Mandatory, Position = 1)]
        [ValidateNotNullOrEmpty()]
        [string]$FileServer,

        [ValidateNotNullOrEmpty()]
        [string]$ClientName,

        [ValidateNotNullOrEmpty()]
        [string[]]$WitnessServer,

        [ValidateNotNullOrEmpty()]
        [string]$ShareName,

        [ValidateRange(1, 65535)]
        [int]$Port,

        [ValidateRange(1, 65535)]
        [int]$EndpointMapperPort,

        [ValidateRange(0, [int]::MaxValue)]
        [int]$KeepAliveSeconds,

        [System.Management.Automation.PSCredential]
        [System.Management.Automation.Credential()]
        $Credential = [System.Management.Automation.PSCredential]::Empty,

        [switch]$Seal
    )

    $params = @{ netName = $NetName; fileServer = $FileServer }
    if ($ClientName) { $params.clientName = $ClientName }
    if ($WitnessServer) { $params.witness = @($WitnessServer) }
    if ($ShareName) { $params.share = $ShareName }
    if ($Port) { $params.port = $Port }
    if ($EndpointMapperPort) { $params.epmPort = $EndpointMapperPort }
    if ($PSBoundParameters.ContainsKey('KeepAliveSeconds')) { $params.keepAlive = $KeepAliveSeconds }
    if ($Credential -ne [System.Management.Automation.PSCredential]::Empty) {
        $nc = $Credential.GetNetworkCredential()
        $params.user = $nc.UserName
        if ($nc.Domain) { $params.domain = $nc.Domain }
        $params.password = $nc.Password
        if ($Seal) { $params.seal = $true }
    }
    if (-not $PSCmdlet.ShouldProcess("$NetName (file server $FileServer)", 'Register with the witness')) { return }
    $r = Invoke-HvCbtEngine -Cmdlet $PSCmdlet -Method 'witness.client.register' -Params $params -TargetObject $NetName
    if ($null -eq $r) { return }
    ConvertTo-HvCbtWitnessRegistration -Registration $r
}
