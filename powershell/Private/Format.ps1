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
