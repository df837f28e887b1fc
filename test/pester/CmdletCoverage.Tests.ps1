# Every engine method has a cmdlet, and engine progress reaches the cmdlets' progress stream.
BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')
    Import-HvCbtUnderTest
    $script:Dir = New-TestFolder
}

AfterAll {
    Remove-Module HvCbt -Force -ErrorAction SilentlyContinue
    if ($Dir) { Remove-Item -LiteralPath $Dir -Recurse -Force -ErrorAction SilentlyContinue }
}

Describe 'Cmdlet coverage of the engine''s methods' {
    It 'calls every method rpc.discover lists from some cmdlet in Public/' {
        $doc = & (Get-Module HvCbt) { Invoke-HvCbtEngine -Method 'rpc.discover' -ErrorAction Stop }
        $methods = @($doc.methods.name | Where-Object { $_ -notin 'engine.version', 'rpc.discover' })
        $methods.Count | Should -BeGreaterThan 30
        $source = (Get-ChildItem (Join-Path $RepoRoot 'powershell/Public') -Filter '*.ps1' | Get-Content -Raw) -join "`n"
        $missing = @($methods | Where-Object { $source -notmatch ("-Method '" + [regex]::Escape($_) + "'") })
        $missing | Should -BeNullOrEmpty -Because 'each engine method should have a cmdlet (or be listed here on purpose)'
    }
}

Describe 'Engine progress in a cmdlet''s progress stream' {
    It 'shows ConvertTo-VhdFile''s progress as progress records of the calling cmdlet' {
        # A separate PowerShell instance keeps its progress records in Streams.Progress.
        $disk = (New-VhdFile -Path (Join-Path $Dir 'progress.vhdx') -SizeBytes 64MB -ErrorAction Stop).Path
        $null = Write-VhdData -Path $disk -Offset 0 -Value ([byte[]]::new(8MB)) -ErrorAction Stop
        $ps = [powershell]::Create()
        try {
            $null = $ps.AddScript({
                    param($Manifest, $Source, $Destination)
                    $ProgressPreference = 'Continue'
                    Import-Module $Manifest
                    ConvertTo-VhdFile -Path $Source -DestinationPath $Destination -Format Raw
                }).AddArgument($ModuleManifest).AddArgument($disk).AddArgument((Join-Path $Dir 'progress.img'))
            $out = $ps.Invoke()
            $ps.Streams.Error | Should -BeNullOrEmpty
            $out[0].VhdFormat | Should -Be 'Raw'
            $records = @($ps.Streams.Progress)
            $records.Count | Should -BeGreaterThan 0
            $records[0].Activity | Should -Match 'Converting .*progress\.vhdx'
            $records[-1].RecordType | Should -Be 'Completed'
            @($records | Where-Object { $_.PercentComplete -ge 0 }).Count | Should -BeGreaterThan 0
        } finally {
            $ps.Commands.Clear()
            $null = $ps.AddScript({ Remove-Module HvCbt -Force -ErrorAction SilentlyContinue }).Invoke()
            $ps.Dispose()
        }
    }
}
