# Small conversions between the engine's JSON vocabulary and Hyper-V's PowerShell vocabulary.

function ConvertTo-HvCbtVhdFormat {
    # Engine 'vhdx' | 'vhd' | 'raw' -> Get-VHD's VhdFormat spelling ('VHDX', 'VHD'; 'Raw' has no Hyper-V name).
    [CmdletBinding()]
    [OutputType([string])]
    param([Parameter(Mandatory)][string]$Format)
    switch ($Format) {
        'vhdx' { 'VHDX' }
        'vhd' { 'VHD' }
        'raw' { 'Raw' }
        default { $Format }
    }
}

function ConvertTo-HvCbtVhdType {
    # Engine 'fixed' | 'dynamic' | 'differencing' -> Get-VHD's VhdType spelling.
    [CmdletBinding()]
    [OutputType([string])]
    param([Parameter(Mandatory)][string]$Type)
    switch ($Type) {
        'fixed' { 'Fixed' }
        'dynamic' { 'Dynamic' }
        'differencing' { 'Differencing' }
        default { $Type }
    }
}

function ConvertTo-HvCbtWitnessRegistration {
    # One witness client registration from the engine (witness.client.register / witness.client.status) as the
    # typed object Register-WitnessClient and Get-WitnessStatus return.
    [CmdletBinding()]
    [OutputType('HvCbt.WitnessRegistration')]
    param([Parameter(Mandatory)]$Registration)
    $r = $Registration
    $at = { param($s) if ($s) { [datetime]::Parse($s, [cultureinfo]::InvariantCulture, [System.Globalization.DateTimeStyles]::RoundtripKind) } else { $null } }
    [pscustomobject]@{
        PSTypeName         = 'HvCbt.WitnessRegistration'
        Id                 = $r.id
        State              = $r.state
        NetName            = $r.netName
        ClientName         = $r.clientName
        FileServerAddress  = $r.fileServerAddress
        FileServerNodeName = $r.fileServerNode
        FileServerState    = $r.fileServerState
        WitnessNodeName    = $r.witnessNode
        WitnessAddress     = $r.witnessAddress
        Version            = $r.version
        RegisteredAt       = & $at $r.registeredAt
        LastNotification   = if ($r.lastNotification) { "$($r.lastNotification.type): $($r.lastNotification.detail)" } else { $null }
        LastNotificationAt = if ($r.lastNotification) { & $at $r.lastNotification.at } else { $null }
        Notifications      = [int]$r.notifications
        Reconnects         = [int]$r.reconnects
        LastError          = $r.lastError
    }
}
