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
        ReferencePoints         = @(foreach ($rp in $r.refPoints) { ConvertTo-HvCbtReferencePoint -Path $r.diskPath -ReferencePoint $rp })
        ChangedBytesSinceNewest = [long]$r.liveChangedBytes
        RecoveredAfterCrash     = [bool]$r.recoveredAfterCrash
        RecoveryReason          = $r.recoveryReason
        OpenElsewhere           = [bool]$r.openElsewhereOrCrashed
        SidecarPath             = $r.sidecarPath
    }
}

function ConvertTo-HvCbtSize {
    # A size parameter for the engine: strings with a suffix ('10G', '64K') go as they are (the engine parses them),
    # PowerShell numbers (10GB, 65536) as whole bytes.
    [CmdletBinding()]
    param([Parameter(Mandatory)]$Value)
    if ($Value -is [string]) { $Value } else { [long]$Value }
}

function ConvertTo-HvCbtVhdExport {
    # An NBD export from nbd.serve / nbd.list as the HvCbt.VhdExport object.
    [CmdletBinding()]
    [OutputType('HvCbt.VhdExport')]
    param([Parameter(Mandatory)]$Export)
    $r = $Export
    [pscustomobject]@{
        PSTypeName  = 'HvCbt.VhdExport'
        Id          = $r.id
        Uri         = $r.uri
        Listen      = $r.listen
        Name        = $r.name
        Path        = $r.path
        SizeBytes   = [long]$r.sizeBytes
        ReadOnly    = [bool]$r.readOnly
        Connections = [int]$r.connections
    }
}

function ConvertTo-HvCbtReferencePoint {
    # A reference point of the disk at -Path (tracking.refpoint.create / list, tracking.status) as an object.
    [CmdletBinding()]
    [OutputType('HvCbt.VhdReferencePoint')]
    param([Parameter(Mandatory)][string]$Path, [Parameter(Mandatory)]$ReferencePoint)
    $rp = $ReferencePoint
    [pscustomobject]@{
        PSTypeName = 'HvCbt.VhdReferencePoint'
        Path       = $Path
        Id         = $rp.id
        Sequence   = [long]$rp.sequence
        CreatedAt  = [datetime]::Parse($rp.createdAt, [cultureinfo]::InvariantCulture, [System.Globalization.DateTimeStyles]::RoundtripKind)
        # only tracking.refpoint.create reports it (a checkpoint opened with the point); listed points have none
        Checkpoint = [bool]($rp.PSObject.Properties['checkpoint'] -and $rp.checkpoint)
    }
}
