# The one way cmdlets talk to the engine: send a request, relay its notifications to the calling cmdlet's
# streams while waiting, and return the result or write the error.

function Invoke-HvCbtEngine {
    <#
    .SYNOPSIS
    Calls one engine method and returns its result (JSON converted to PSCustomObjects; an array result is
    enumerated onto the pipeline).

    .DESCRIPTION
    Pass the public cmdlet's $PSCmdlet as -Cmdlet: progress, verbose/warning/debug messages and errors are then
    written through it, so the caller's -Verbose, -ErrorAction, $ProgressPreference, ... apply. Engine errors
    become ErrorRecords with the engine's ErrorCategory: non-terminating (nothing is returned), terminating under
    -ErrorAction Stop. If the pipeline is stopped (Ctrl+C) while the call runs, the engine is asked to cancel it.

    .EXAMPLE
    Invoke-HvCbtEngine -Cmdlet $PSCmdlet -Method vhd.info -Params @{ path = $file } -TargetObject $file
    #>
    [CmdletBinding()]
    param(
        # JSON-RPC method name, e.g. 'vhd.info'.
        [Parameter(Mandatory)]
        [string]$Method,

        # By-name parameters; serialized with ConvertTo-Json -Depth 32.
        [System.Collections.IDictionary]$Params = @{},

        # The cmdlet whose streams and preferences to use; defaults to this function's own.
        [System.Management.Automation.PSCmdlet]$Cmdlet = $PSCmdlet,

        # Write-Progress activity text; defaults to the method name.
        [string]$Activity,

        # The object an error is about (ErrorRecord.TargetObject), usually the path.
        [object]$TargetObject
    )

    $client = Get-HvCbtEngine
    if ($client -is [Exception]) {
        $Cmdlet.WriteError((New-HvCbtErrorRecord -Exception $client -Method $Method -TargetObject $TargetObject))
        return
    }
    $json = ConvertTo-Json -InputObject $Params -Depth 32 -Compress
    $call = $client.Send($Method, $json)
    $final = $null
    $progressId = [int]($call.Id % [int]::MaxValue)
    $progressShown = $false
    if (-not $Activity) { $Activity = "HvCbt $Method" }
    try {
        while (-not $final) {
            $ev = $call.Next(100)
            $logged = $null
            while ($client.Unrouted.TryDequeue([ref]$logged)) { Write-HvCbtEngineLog -Cmdlet $Cmdlet -EngineEvent $logged }
            if (-not $ev) { continue }
            switch ($ev.Kind) {
                'Progress' {
                    $record = [System.Management.Automation.ProgressRecord]::new($progressId, $Activity,
                        $(if ($ev.Message) { $ev.Message } else { "$($ev.Done) of $($ev.Total)" }))
                    $record.PercentComplete = if ($ev.Total -gt 0) {
                        [int][Math]::Min(100, [Math]::Floor($ev.Done * 100 / $ev.Total))
                    } else { -1 }
                    $Cmdlet.WriteProgress($record)
                    $progressShown = $true
                }
                'Log' { Write-HvCbtEngineLog -Cmdlet $Cmdlet -EngineEvent $ev }
                default { $final = $ev }
            }
        }
    } finally {
        if (-not $final) {
            # Stopped (Ctrl+C) or failed while waiting: the engine should not go on working for nobody.
            $client.Cancel($call)
        }
        if ($progressShown) {
            $done = [System.Management.Automation.ProgressRecord]::new($progressId, $Activity, 'Done')
            $done.RecordType = [System.Management.Automation.ProgressRecordType]::Completed
            $Cmdlet.WriteProgress($done)
        }
    }
    if ($final.Kind -eq [HvCbt.EngineEventKind]::Error) {
        $Cmdlet.WriteError((New-HvCbtErrorRecord -Exception $final.Error -Method $Method -TargetObject $TargetObject))
        return
    }
    if ($final.ResultJson -ne 'null') {
        ConvertFrom-Json -InputObject $final.ResultJson -Depth 64
    }
}

function Write-HvCbtEngineLog {
    # `$/log` levels to PowerShell streams: error and warning -> Warning; info and verbose -> Verbose; debug -> Debug.
    [CmdletBinding()]
    param(
        [Parameter(Mandatory)][System.Management.Automation.PSCmdlet]$Cmdlet,
        [Parameter(Mandatory)][HvCbt.EngineEvent]$EngineEvent
    )
    $text = "hvcbt: $($EngineEvent.Message)"
    switch ($EngineEvent.Level) {
        { $_ -in 'error', 'warning' } { $Cmdlet.WriteWarning($text); break }
        'debug' { $Cmdlet.WriteDebug($text); break }
        default { $Cmdlet.WriteVerbose($text) }
    }
}

function New-HvCbtErrorRecord {
    <#
    .SYNOPSIS
    An ErrorRecord for a failed engine call: the category is the engine's (data.category, a PowerShell
    ErrorCategory name), the error id names the method and the JSON-RPC code.
    #>
    [CmdletBinding()]
    [OutputType([System.Management.Automation.ErrorRecord])]
    param(
        [Parameter(Mandatory)][Exception]$Exception,
        [Parameter(Mandatory)][string]$Method,
        [object]$TargetObject
    )
    $category = [System.Management.Automation.ErrorCategory]::NotSpecified
    $errorId = "HvCbt.$Method"
    if ($Exception -is [HvCbt.EngineException]) {
        $parsed = [System.Management.Automation.ErrorCategory]::NotSpecified
        if ([Enum]::TryParse([System.Management.Automation.ErrorCategory], $Exception.Category, $true, [ref]$parsed)) {
            $category = $parsed
        }
        if ($Exception.Code -ne 0) { $errorId = "HvCbt.$Method.$(-$Exception.Code)" } else { $errorId = "HvCbt.EngineUnavailable" }
    } elseif ($Exception -is [System.IO.FileNotFoundException]) {
        $category = [System.Management.Automation.ErrorCategory]::ObjectNotFound
        $errorId = 'HvCbt.EngineNotFound'
    } elseif ($Exception -is [System.NotSupportedException]) {
        $category = [System.Management.Automation.ErrorCategory]::InvalidResult
        $errorId = 'HvCbt.EngineProtocolVersion'
    } elseif ($Exception -is [System.TimeoutException]) {
        $category = [System.Management.Automation.ErrorCategory]::OperationTimeout
        $errorId = 'HvCbt.EngineTimeout'
    } elseif ($Exception -is [System.InvalidOperationException]) {
        $category = [System.Management.Automation.ErrorCategory]::ResourceUnavailable
        $errorId = 'HvCbt.EngineStartFailed'
    }
    [System.Management.Automation.ErrorRecord]::new($Exception, $errorId, $category, $TargetObject)
}
