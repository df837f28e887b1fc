function Stop-WitnessService {
    <#
    .SYNOPSIS
    Stops a witness service started with Start-WitnessService.

    .DESCRIPTION
    Stop-WitnessService stops a witness service of this session's engine (method witness.stop): registrations end,
    the listeners and the admin socket close. Pipe the object Start-WitnessService returned (Id binds by property
    name). An unknown id is a non-terminating ObjectNotFound error. Nothing is returned unless -PassThru is given.
    Supports -WhatIf and -Confirm.

    .PARAMETER Id
    The service id, such as witness:FS1.

    .PARAMETER PassThru
    Return an object (Id, Stopped).

    .EXAMPLE
    $w = Start-WitnessService -NodeName FS1 -NetName SOFS -IPAddress 10.0.0.11 -CredentialStorePath ./users.json; $w | Stop-WitnessService

    Starts, then stops, a witness service.

    .EXAMPLE
    Stop-WitnessService -Id witness:FS1 -PassThru | Format-Table

    Stops the service of node FS1 and shows the result.

    .INPUTS
    HvCbt.WitnessService

    .OUTPUTS
    None, HvCbt.WitnessServiceStop
    #>
    [CmdletBinding(SupportsShouldProcess, ConfirmImpact = 'Medium')]
    [OutputType('HvCbt.WitnessServiceStop')]
    param(
        [Parameter(Mandatory, Position = 0, ValueFromPipeline, ValueFromPipelineByPropertyName)]
        [ValidateNotNullOrEmpty()]
        [string[]]$Id,

        [switch]$PassThru
    )

    process {
        foreach ($one in $Id) {
            if (-not $PSCmdlet.ShouldProcess($one, 'Stop witness service')) { continue }
            $r = Invoke-HvCbtEngine -Cmdlet $PSCmdlet -Method 'witness.stop' -Params @{ id = $one } -TargetObject $one
            if ($null -ne $r -and $PassThru) {
                [pscustomobject]@{ PSTypeName = 'HvCbt.WitnessServiceStop'; Id = $r.id; Stopped = [bool]$r.stopped }
            }
        }
    }
}
