# The module's shape: manifest, export list, help, naming rules.
BeforeDiscovery {
    $manifest = Import-PowerShellDataFile (Join-Path $PSScriptRoot '../../powershell/HvCbt.psd1')
    $script:Exported = @($manifest.FunctionsToExport | ForEach-Object { @{ Name = $_ } })
}

BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')
    Import-HvCbtUnderTest
    $script:PublicFiles = @(Get-ChildItem (Join-Path $RepoRoot 'powershell/Public') -Filter '*.ps1').BaseName
}

AfterAll {
    Remove-Module HvCbt -Force -ErrorAction SilentlyContinue
}

Describe 'HvCbt module manifest' {
    It 'passes Test-ModuleManifest' {
        $m = Test-ModuleManifest -Path $ModuleManifest -ErrorAction Stop
        $m.Name | Should -Be 'HvCbt'
        $m.Version | Should -Be ([version]'0.1.0')
    }

    It 'has the same version as package.json (one release number for engine and module)' {
        $pkg = Get-Content (Join-Path $RepoRoot 'package.json') -Raw | ConvertFrom-Json
        (Import-PowerShellDataFile $ModuleManifest).ModuleVersion | Should -Be $pkg.version
    }

    It 'exports exactly the functions in Public/, one file each' {
        $exported = @((Get-Module HvCbt).ExportedFunctions.Keys)
        ($exported | Sort-Object) | Should -Be ($PublicFiles | Sort-Object)
        @((Import-PowerShellDataFile $ModuleManifest).FunctionsToExport | Sort-Object) | Should -Be ($PublicFiles | Sort-Object)
    }

    It 'keeps private helpers private' {
        Get-Command -Module HvCbt -Name Invoke-HvCbtEngine -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        Get-Command -Module HvCbt -Name Resolve-HvCbtPath -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
    }

    It 'loads the format views for its output types' {
        $views = Get-FormatData -TypeName 'HvCbt.VhdFileInfo'
        $views | Should -Not -BeNullOrEmpty
        @($views.FormatViewDefinition.Control | ForEach-Object { $_.GetType().Name }) | Should -Contain 'TableControl'
    }
}

Describe 'Public cmdlet <Name>' -ForEach $Exported {
    It 'uses an approved verb' {
        $verb = ($Name -split '-', 2)[0]
        (Get-Verb).Verb | Should -Contain $verb
    }

    It 'does not collide with the Hyper-V module' {
        $hyperV = 'Get-VHD', 'New-VHD', 'Test-VHD', 'Mount-VHD', 'Dismount-VHD', 'Merge-VHD', 'Resize-VHD',
        'Convert-VHD', 'Optimize-VHD', 'Set-VHD', 'Get-VM', 'Get-VMHardDiskDrive', 'Checkpoint-VM', 'Export-VM'
        $hyperV | Should -Not -Contain $Name   # -Contain is case-insensitive, as PowerShell names are
    }

    It 'has comment-based help with a synopsis, a description and examples' {
        $help = Get-Help $Name -Full
        $help.Synopsis | Should -Not -BeNullOrEmpty
        $help.Synopsis | Should -Not -Match "^\s*$Name\s*\["    # the generated stub when help is missing
        ($help.description.Text -join '') | Should -Not -BeNullOrEmpty
        @($help.examples.example).Count | Should -BeGreaterOrEqual 2
        foreach ($ex in $help.examples.example) {
            $ex.code | Should -Match 'Get-|Set-|New-|Enable-|Disable-|Backup-|Restore-|\|'
            ($ex.remarks.Text -join '').Trim() | Should -Not -BeNullOrEmpty
        }
    }

    It 'documents every parameter' {
        $cmd = Get-Command $Name
        $common = [System.Management.Automation.PSCmdlet]::CommonParameters + [System.Management.Automation.PSCmdlet]::OptionalCommonParameters
        $help = Get-Help $Name -Full
        foreach ($p in $cmd.Parameters.Keys | Where-Object { $_ -notin $common }) {
            $ph = $help.parameters.parameter | Where-Object name -eq $p
            ($ph.description.Text -join '').Trim() | Should -Not -BeNullOrEmpty -Because "-$p of $Name needs a description"
        }
    }
}

Describe 'Get-Help Get-VhdFileInfo -Examples' {
    It 'shows the examples' {
        $text = Get-Help Get-VhdFileInfo -Examples | Out-String -Width 300
        $text | Should -Match 'EXAMPLE 1'
        $text | Should -Match 'Get-ChildItem .* \| Get-VhdFileInfo'
    }
}

Describe 'about_HvCbt' {
    It 'explains engine resolution, lifetime and errors' {
        $text = Get-Help about_HvCbt | Out-String
        $text | Should -Match 'HVCBT_ENGINE'
        $text | Should -Match 'Remove-Module HvCbt'
        $text | Should -Match 'ErrorAction Stop'
    }
}

Describe 'The compiled engine client cache' {
    It 'compiles once into the per-user cache and loads the compiled copy in the next session' {
        $cache = New-TestFolder
        $savedCacheHome = $env:XDG_CACHE_HOME
        try {
            $script = "Import-Module '$ModuleManifest'; [HvCbt.EngineClient].Assembly.Location"
            $env:XDG_CACHE_HOME = $cache
            $first = & $Pwsh -NoProfile -NonInteractive -Command $script
            $dlls = @(Get-ChildItem -LiteralPath (Join-Path $cache 'hvcbt') -Filter '*.dll')
            $second = & $Pwsh -NoProfile -NonInteractive -Command $script
            $dlls.Count | Should -Be 1
            $dlls[0].Name | Should -Match "^HvCbt\.EngineClient-[0-9A-F]{16}-pwsh$([regex]::Escape($PSVersionTable.PSVersion.ToString()))\.dll$"
            $first | Should -Be $dlls[0].FullName
            $second | Should -Be $dlls[0].FullName
            @(Get-ChildItem -LiteralPath (Join-Path $cache 'hvcbt') -Filter '*.partial').Count | Should -Be 0
        } finally {
            $env:XDG_CACHE_HOME = $savedCacheHome
            Remove-Item -LiteralPath $cache -Recurse -Force -ErrorAction SilentlyContinue
        }
    }
}
