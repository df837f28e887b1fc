function Unregister-WitnessClient {
    <#
    .SYNOPSIS
    Ends a witness registration: this host's own (client side), or a client's on a witness server (forced).

    .DESCRIPTION
    With -Id, Unregister-WitnessClient stops a registration made with Register-WitnessClient in this session
    (method witness.client.unregister); pipe objects from Get-WitnessStatus. With -ClientName and -Server it forces
    the unregistration of a client from a witness service running on this host (method witness.unregister, through
    the service's admin socket), like an administrator removing a stale registration; it returns the number of
    registrations removed. Supports -WhatIf and -Confirm.

    .PARAMETER Id
    The id of this session's registration (from Register-WitnessClient or Get-WitnessStatus).

    .PARAMETER ClientName
    The client name (or registration id) to remove from a witness service.

    .PARAMETER Server
    An address the witness service listens on (selects its admin socket).

    .PARAMETER PassThru
    With -Id, return an object (Id, Stopped).

    .EXAMPLE
    Get-WitnessStatus | Unregister-WitnessClient

    Ends every registration of this session.

    .EXAMPLE
    Get-WitnessClient -Server 10.0.0.11 -ClientName HV01 | Unregister-WitnessClient -WhatIf

    Shows what removing HV01's registrations from the witness service would do.

    .INPUTS
    HvCbt.WitnessRegistration, HvCbt.WitnessClient

    .OUTPUTS
    None, HvCbt.WitnessUnregistration
    #>
    [CmdletBinding(SupportsShouldProcess, ConfirmImpact = 'Medium', DefaultParameterSetName = 'Registration')]
    [OutputType('HvCbt.WitnessUnregistration')]
    param(
        [Parameter(Mandatory, Position = 0, ParameterSetName = 'Registration', ValueFromPipelineByPropertyName)]
        [ValidateNotNullOrEmpty()]
        [string[]]$Id,

        [Parameter(Mandatory, ParameterSetName = 'Server', ValueFromPipelineByPropertyName)]
        [ValidateNotNullOrEmpty()]
        [string]$ClientName,

        [Parameter(Mandatory, ParameterSetName = 'Server', ValueFromPipelineByPropertyName)]
        [ValidateNotNullOrEmpty()]
        [string]$Server,

        [switch]$PassThru
    )

    process {
        if ($PSCmdlet.ParameterSetName -eq 'Server') {
            if (-not $PSCmdlet.ShouldProcess("$ClientName on the witness service at $Server", 'Force unregistration')) { return }
            $r = Invoke-HvCbtEngine -Cmdlet $PSCmdlet -Method 'witness.unregister' -Params @{ client = $ClientName; server = $Server } -TargetObject $ClientName
            if ($null -ne $r) {
                [pscustomobject]@{ PSTypeName = 'HvCbt.WitnessUnregistration'; ClientName = $ClientName; Server = $Server; Removed = [int]$r.removed }
            }
            return
        }
        foreach ($one in $Id) {
            if (-not $PSCmdlet.ShouldProcess($one, 'Unregister from the witness')) { continue }
            $r = Invoke-HvCbtEngine -Cmdlet $PSCmdlet -Method 'witness.client.unregister' -Params @{ id = $one } -TargetObject $one
            if ($null -ne $r -and $PassThru) {
                [pscustomobject]@{ PSTypeName = 'HvCbt.WitnessUnregistration'; Id = $r.id; Stopped = [bool]$r.stopped }
            }
        }
    }
}
