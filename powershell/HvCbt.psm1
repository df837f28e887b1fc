# HvCbt: changed-block tracking and incremental backups of VHD/VHDX disks, driven from PowerShell.
#
# The module is a thin client: each public cmdlet (one file under Public/) resolves its input, calls one engine
# method through Invoke-HvCbtEngine (Private/), and shapes the result into a typed object. The engine process is
# started on the first call and stopped when the module is removed or PowerShell exits.
#
# Adding a cmdlet: one file Public/<Verb>-<Noun>.ps1 holding one advanced function with comment-based help
# (.SYNOPSIS, .DESCRIPTION, .PARAMETER, two or more .EXAMPLEs), plus its name in HvCbt.psd1's FunctionsToExport.
# The body is usually:
#     process {
#         foreach ($file in Resolve-HvCbtPath -Path $Path -Cmdlet $PSCmdlet) {
#             if (-not $PSCmdlet.ShouldProcess($file, 'Enable change tracking')) { continue }
#             $r = Invoke-HvCbtEngine -Cmdlet $PSCmdlet -Method 'tracking.enable' -Params @{ path = $file } -TargetObject $file
#             if ($null -ne $r) { [pscustomobject]@{ PSTypeName = 'HvCbt.<Type>'; ... } }
#         }
#     }
# Pass -Cmdlet $PSCmdlet so progress, messages and errors go through the public cmdlet (its -ErrorAction,
# -Verbose, -WhatIf apply). Give new output types a view in HvCbt.Format.ps1xml. test/pester/Module.Tests.ps1
# checks the export list, approved verbs, Hyper-V name collisions and help for every public cmdlet.
Set-StrictMode -Version 3.0

foreach ($folder in 'Private', 'Public') {
    foreach ($file in Get-ChildItem -LiteralPath (Join-Path $PSScriptRoot $folder) -Filter '*.ps1' | Sort-Object Name) {
        . $file.FullName
    }
}

# Stop the engine when PowerShell exits. The action runs outside the module's scope, so it calls the static
# StopAll rather than a module function. (EngineClient.cs also kills engines on process exit, and the engine exits
# by itself when its stdin closes, so an engine never outlives the session even if this event does not run.)
$script:HvCbtExitingJob = Register-EngineEvent -SourceIdentifier PowerShell.Exiting -Action {
    [HvCbt.EngineClient]::StopAll()
}

$ExecutionContext.SessionState.Module.OnRemove = {
    Stop-HvCbtEngine -Confirm:$false
    if ($script:HvCbtExitingJob) {
        Get-EventSubscriber -Force | Where-Object { $_.Action -eq $script:HvCbtExitingJob } |
            Unregister-Event -Force -ErrorAction SilentlyContinue
        Remove-Job -Job $script:HvCbtExitingJob -Force -ErrorAction SilentlyContinue
    }
}

# The manifest's FunctionsToExport is the authoritative list; this keeps private helpers private when the .psm1 is
# imported on its own.
Export-ModuleMember -Function (Get-ChildItem -LiteralPath (Join-Path $PSScriptRoot 'Public') -Filter '*.ps1').BaseName
