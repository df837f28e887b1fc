function Move-WitnessShare {
    <#
    .SYNOPSIS
    Asks the clients of a share to move to another node (SHARE_MOVE, witness version 2).

    .DESCRIPTION
    Move-WitnessShare tells every client registered for a share with a witness service on this host to move that
    share's connections to another node (method witness.move-share, through the service's admin socket): the
    service sends a SHARE_MOVE notification with the destination node's addresses to the clients that registered
    with RegisterEx for the share. Returns an HvCbt.WitnessShareMove (ShareName, DestinationNode, Notified).
    Supports -WhatIf and -Confirm (it asks by default: clients move their I/O).

    .PARAMETER ShareName
    The share whose clients should move.

    .PARAMETER DestinationNode
    The node to move to.

    .PARAMETER Server
    An address the witness service listens on (selects its admin socket).

    .EXAMPLE
    Move-WitnessShare -ShareName VMs -DestinationNode FS2 -Server 10.0.0.11 -Confirm:$false | Format-Table

    Moves the clients of share VMs to node FS2.

    .EXAMPLE
    Get-WitnessClient -Server 10.0.0.11 | Where-Object ShareName | Select-Object -Unique ShareName | Move-WitnessShare -DestinationNode FS1 -Server 10.0.0.11 -WhatIf

    Shows which shares' clients would be moved to FS1.

    .OUTPUTS
    HvCbt.WitnessShareMove
    #>
    [CmdletBinding(SupportsShouldProcess, ConfirmImpact = 'High')]
    [OutputType('HvCbt.WitnessShareMove')]
    param(
        [Parameter(Mandatory, Position = 0, ValueFromPipelineByPropertyName)]
        [ValidateNotNullOrEmpty()]
        [string]$ShareName,

        [Parameter(Mandatory, Position = 1)]
        [ValidateNotNullOrEmpty()]
        [string]$DestinationNode,

        [Parameter(Mandatory)]
        [ValidateNotNullOrEmpty()]
        [string]$Server
    )

    process {
        if (-not $PSCmdlet.ShouldProcess($ShareName, "Move the share's clients to node $DestinationNode")) { return }
        $r = Invoke-HvCbtEngine -Cmdlet $PSCmdlet -Method 'witness.move-share' -Params @{ share = $ShareName; to = $DestinationNode; server = $Server } -TargetObject $ShareName
        if ($null -eq $r) { return }
        [pscustomobject]@{ PSTypeName = 'HvCbt.WitnessShareMove'; ShareName = $ShareName; DestinationNode = $DestinationNode; Notified = [int]$r.notified }
    }
}
