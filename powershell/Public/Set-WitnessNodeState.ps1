function Set-WitnessNodeState {
    <#
    .SYNOPSIS
    Overrides the state of a file-server node as a witness service sees it (Up or Down).

    .DESCRIPTION
    Set-WitnessNodeState tells a witness service running on this host that a node is down or up again (method
    witness.node-state, through the service's admin socket). Marking a node Down sends RESOURCE_CHANGE
    (unavailable) to the clients that use it, so they move to another node; use it for maintenance. On a node
    clustered through etcd the override is stored in etcd for every node. Returns an HvCbt.WitnessNodeState (Node,
    State). Supports -WhatIf and -Confirm (it asks by default: clients move their I/O).

    .PARAMETER Node
    The node whose state to set.

    .PARAMETER State
    Up or Down.

    .PARAMETER Server
    An address the witness service listens on (selects its admin socket).

    .EXAMPLE
    Set-WitnessNodeState -Node FS2 -State Down -Server 10.0.0.11 -Confirm:$false | Format-Table

    Takes FS2 out of service: its clients are told to move.

    .EXAMPLE
    (Get-WitnessService -Server 10.0.0.11).Nodes | Where-Object State -eq down | ForEach-Object { Set-WitnessNodeState -Node $_.Name -State Up -Server 10.0.0.11 }

    Brings every node marked down back.

    .OUTPUTS
    HvCbt.WitnessNodeState
    #>
    [CmdletBinding(SupportsShouldProcess, ConfirmImpact = 'High')]
    [OutputType('HvCbt.WitnessNodeState')]
    param(
        [Parameter(Mandatory, Position = 0, ValueFromPipelineByPropertyName)]
        [Alias('Name', 'NodeName')]
        [ValidateNotNullOrEmpty()]
        [string]$Node,

        [Parameter(Mandatory, Position = 1)]
        [ValidateSet('Up', 'Down')]
        [string]$State,

        [Parameter(Mandatory)]
        [ValidateNotNullOrEmpty()]
        [string]$Server
    )

    process {
        if (-not $PSCmdlet.ShouldProcess($Node, "Set witness node state to $State")) { return }
        $r = Invoke-HvCbtEngine -Cmdlet $PSCmdlet -Method 'witness.node-state' -Params @{ node = $Node; state = $State.ToLowerInvariant(); server = $Server } -TargetObject $Node
        if ($null -eq $r) { return }
        [pscustomobject]@{ PSTypeName = 'HvCbt.WitnessNodeState'; Node = $r.node; State = (Get-Culture).TextInfo.ToTitleCase($r.state) }
    }
}
