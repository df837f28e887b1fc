@{
    RootModule           = 'HvCbt.psm1'
    ModuleVersion        = '0.1.0'
    GUID                 = 'd095e9d7-e76c-4325-a6fa-611d5fa4787f'
    Author               = 'HvCbt contributors'
    CompanyName          = 'HvCbt'
    Copyright            = '(c) HvCbt contributors. Apache-2.0.'
    Description          = 'Changed-block tracking and incremental backups for Hyper-V VHD/VHDX disks, an NBD export and an SMB Witness service; a PowerShell front end to the hvcbt engine.'
    PowerShellVersion    = '7.2'
    CompatiblePSEditions = @('Core')
    FormatsToProcess     = @('HvCbt.Format.ps1xml')
    # One entry per file in Public/ (keep in step: test/pester/Module.Tests.ps1 checks it).
    FunctionsToExport    = @(
        'Get-VhdFileInfo',
        'Backup-Vhd',
        'ConvertTo-VhdFile',
        'Disable-VhdChangeTracking',
        'Enable-VhdChangeTracking',
        'Get-VhdAllocation',
        'Get-VhdBackup',
        'Get-VhdChangeTracking',
        'Get-VhdChangedBlock',
        'Get-VhdExport',
        'Get-VhdReferencePoint',
        'Get-WitnessClient',
        'Get-WitnessInterface',
        'Get-WitnessStatus',
        'Merge-VhdFile',
        'Move-WitnessClient',
        'New-VhdFile',
        'New-VhdReferencePoint',
        'Register-WitnessClient',
        'Remove-VhdBackup',
        'Remove-VhdReferencePoint',
        'Reset-VhdChangeTracking',
        'Restore-Vhd',
        'Start-VhdExport',
        'Start-WitnessService',
        'Stop-VhdExport',
        'Stop-WitnessService',
        'Test-VhdBackup',
        'Test-VhdFile',
        'Unregister-WitnessClient',
        'Add-WitnessUser',
        'Get-WitnessService',
        'Set-WitnessNodeState',
        'Move-WitnessShare',
        'Read-VhdData',
        'Write-VhdData',
        'Close-VhdCheckpoint',
        'Import-VhdChangedBlock',
        'Invoke-VhdContentScan'
    )
    CmdletsToExport      = @()
    VariablesToExport    = @()
    AliasesToExport      = @()
    PrivateData          = @{
        PSData = @{
            Tags       = @('Hyper-V', 'VHD', 'VHDX', 'Backup', 'ChangedBlockTracking', 'NBD', 'Witness', 'Linux')
            LicenseUri = 'https://www.apache.org/licenses/LICENSE-2.0'
        }
    }
}
