function Move-WitnessClient {
    <#
    .SYNOPSIS
    Asks a witness client to move to another file-server node (CLIENT_MOVE), like Move-SmbWitnessClient.

    .DESCRIPTION
    Move-WitnessClient tells a client registered with a witness service on this host to reconnect to another
    node (method witness.move-client, through the service's admin socket): the service sends a CLIENT_MOVE
    notification with the destination node's addresses. Pipe clients from Get-WitnessClient (ClientName and Server
    bind by property name). Returns an HvCbt.WitnessClientMove (ClientName, DestinationNode, Notified: the number
    of registrations notified; on a node clustered through etcd also MoveId and the Nodes that delivered it). Supports -WhatIf and -Confirm (it asks by default: clients move their I/O).

    .PARAMETER ClientName
    The client to move (its name or registration id).

    .PARAMETER DestinationNode
    The node to move to.

    .PARAMETER Server
    An address the witness service listens on (selects its admin socket).

    .PARAMETER NetworkName
    Only the client's registration for this network name.

    .EXAMPLE
    Move-WitnessClient -ClientName HV01 -DestinationNode FS2 -Server 10.0.0.11 -Confirm:$false | Format-Table

    Moves HV01 to node FS2 without asking.

    .EXAMPLE
    Get-WitnessClient -Server 10.0.0.11 -ClientName HV* | Move-WitnessClient -DestinationNode FS2 -WhatIf

    Shows which clients would be moved.

    .INPUTS
    HvCbt.WitnessClient

    .OUTPUTS
    HvCbt.WitnessClientMove
    #>
    [CmdletBinding(SupportsShouldProcess, ConfirmImpact = 'High')]
    [OutputType('HvCbt.WitnessClientMove')]
    param(
        [Parameter(Mandatory, Position = 0, ValueFromPipelineByPropertyName)]
        [ValidateNotNullOrEmpty()]
        [string]$ClientName,

        [Parameter(Mandatory, Position = 1)]
        [ValidateNotNullOrEmpty()]
        [string]$DestinationNode,

        [Parameter(Mandatory, ValueFromPipelineByPropertyName)]
        [Alias('IPAddress')]
        [ValidateNotNullOrEmpty()]
        [string]$Server,

        [Parameter(ValueFromPipelineByPropertyName)]
        [ValidateNotNullOrEmpty()]
        [string]$NetworkName
    )

    process {
        if (-not $PSCmdlet.ShouldProcess($ClientName, "Move to node $DestinationNode")) { return }
        $params = @{ client = $ClientName; to = $DestinationNode; server = $Server }
        if ($NetworkName) { $params.networkName = $NetworkName }
        $r = Invoke-HvCbtEngine -Cmdlet $PSCmdlet -Method 'witness.move-client' -Params $params -TargetObject $ClientName
        if ($null -eq $r) { return }
        [pscustomobject]@{
            PSTypeName      = 'HvCbt.WitnessClientMove'
            ClientName      = $ClientName
            DestinationNode = $DestinationNode
            Notified        = [int]$r.notified
            MoveId          = if ($r.PSObject.Properties['moveId']) { $r.moveId } else { $null }
            Nodes           = if ($r.PSObject.Properties['nodes']) { @($r.nodes | ForEach-Object { [pscustomobject]@{ Node = $_.node; Notified = [int]$_.notified } }) } else { @() }
        }
    }
}
