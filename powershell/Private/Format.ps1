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

function ConvertTo-HvCbtVhdFileInfo {
    # vhd.info / vhd.create's result as Get-VhdFileInfo's object, shaped like Hyper-V's Get-VHD.
    [CmdletBinding()]
    [OutputType('HvCbt.VhdFileInfo')]
    param([Parameter(Mandatory)]$Info)
    $r = $Info
    [pscustomobject]@{
        PSTypeName         = 'HvCbt.VhdFileInfo'
        Path               = $r.path
        VhdFormat          = ConvertTo-HvCbtVhdFormat $r.format
        VhdType            = ConvertTo-HvCbtVhdType $r.type
        Size               = [long]$r.virtualSizeBytes
        FileSize           = [long]$r.fileSizeBytes
        BlockSize          = [long]$r.blockSizeBytes
        LogicalSectorSize  = [int]$r.logicalSectorSizeBytes
        PhysicalSectorSize = [int]$r.physicalSectorSizeBytes
        DiskIdentifier     = if ($r.diskId) { $r.diskId.ToUpperInvariant() } else { $null }
        ParentPath         = $r.parentPath
    }
}

function ConvertTo-HvCbtChangeTracking {
    # tracking.enable / status / reset's result as the HvCbt.VhdChangeTracking object.
    [CmdletBinding()]
    [OutputType('HvCbt.VhdChangeTracking')]
    param([Parameter(Mandatory)]$Status)
    $r = $Status
    [pscustomobject]@{
        PSTypeName              = 'HvCbt.VhdChangeTracking'
        Path                    = $r.diskPath
        IsTrusted               = [bool]$r.trusted
        UntrustedReason         = $r.untrustedReason
        Generation              = $r.generation
        Sequence                = [long]$r.sequence
        GranularityBytes        = [long]$r.granularityBytes
        JournalRegionBytes      = [long]$r.coarseRegionBytes
        SizeBytes               = [long]$r.diskSizeBytes
        ReferencePoints         = @(foreach ($rp in $r.refPoints) {
                [pscustomobject]@{
                    PSTypeName = 'HvCbt.VhdReferencePoint'
                    Path       = $r.diskPath
                    Id         = $rp.id
                    Sequence   = [long]$rp.sequence
                    CreatedAt  = [datetime]::Parse($rp.createdAt, [cultureinfo]::InvariantCulture, [System.Globalization.DateTimeStyles]::RoundtripKind)
                    Checkpoint = $false
                }
            })
        ChangedBytesSinceNewest = [long]$r.liveChangedBytes
        RecoveredAfterCrash     = [bool]$r.recoveredAfterCrash
        RecoveryReason          = $r.recoveryReason
        OpenElsewhere           = [bool]$r.openElsewhereOrCrashed
        SidecarPath             = $r.sidecarPath
    }
}
