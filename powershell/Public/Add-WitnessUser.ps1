function Add-WitnessUser {
    <#
    .SYNOPSIS
    Adds a user to a witness credential store, or replaces the user's password.

    .DESCRIPTION
    Add-WitnessUser writes a user and the NT hash of its password into a witness credential store file (method
    witness.user.add; the file is created with mode 0600 if needed). Start-WitnessService -CredentialStorePath
    then authenticates witness clients (NTLMSSP) against it. The password comes from a PSCredential (Get-Credential
    prompts without echo) and travels to the engine over its standard input, never on a command line. Returns an
    HvCbt.WitnessUser (Name, CredentialStorePath, Replaced). Supports -WhatIf and -Confirm.

    .PARAMETER CredentialStorePath
    The credential store file.

    .PARAMETER Credential
    The user name and password to store.

    .EXAMPLE
    Add-WitnessUser -CredentialStorePath /etc/hvcbt/witness-users.json -Credential (Get-Credential HV01)

    Prompts for HV01's password and stores its NT hash.

    .EXAMPLE
    Import-Csv users.csv | ForEach-Object { Add-WitnessUser -CredentialStorePath ./users.json -Credential ([pscredential]::new($_.Name, (ConvertTo-SecureString $_.Password -AsPlainText -Force))) }

    Fills a store for a test lab from a file (do not keep real passwords in files).

    .OUTPUTS
    HvCbt.WitnessUser
    #>
    [CmdletBinding(SupportsShouldProcess)]
    [OutputType('HvCbt.WitnessUser')]
    param(
        [Parameter(Mandatory, Position = 0)]
        [ValidateNotNullOrEmpty()]
        [string]$CredentialStorePath,

        [Parameter(Mandatory, Position = 1)]
        [System.Management.Automation.PSCredential]
        [System.Management.Automation.Credential()]
        $Credential
    )

    $store = @(Resolve-HvCbtPath -Path $CredentialStorePath -Cmdlet $PSCmdlet)
    if ($store.Count -ne 1) { return }
    $nc = $Credential.GetNetworkCredential()
    if (-not $PSCmdlet.ShouldProcess($store[0], "Add or replace witness user $($nc.UserName)")) { return }
    $r = Invoke-HvCbtEngine -Cmdlet $PSCmdlet -Method 'witness.user.add' -Params @{ name = $nc.UserName; credentials = $store[0]; password = $nc.Password } -TargetObject $nc.UserName
    if ($null -eq $r) { return }
    [pscustomobject]@{ PSTypeName = 'HvCbt.WitnessUser'; Name = $r.name; CredentialStorePath = $r.credentials; Replaced = [bool]$r.replaced }
}
