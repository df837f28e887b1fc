# PowerShell paths (relative, ~, PSDrives, wildcards, PSPath strings from Get-ChildItem) to the file-system paths
# the engine understands.

function Resolve-HvCbtPath {
    <#
    .SYNOPSIS
    Yields one absolute file-system path per input path (several for a wildcard).

    .DESCRIPTION
    An existing item is used as is (even if its name contains wildcard characters such as '['). A wildcard
    pattern expands to the items it matches; one that matches nothing yields nothing (as with Get-Item), and a
    wildcard under a folder that does not exist is a non-terminating ObjectNotFound error.
    A path that does not exist is still resolved and returned, so the engine reports the missing file (and
    cmdlets that create files can use it). A path on a provider other than the file system is a non-terminating
    InvalidArgument error. Errors go through -Cmdlet so the caller's -ErrorAction applies.
    #>
    [CmdletBinding()]
    [OutputType([string])]
    param(
        [Parameter(Mandatory)][AllowEmptyCollection()][string[]]$Path,
        [System.Management.Automation.PSCmdlet]$Cmdlet = $PSCmdlet
    )

    # Nothing here throws on bad input: a caught exception would still land in the caller's -ErrorVariable.
    $sessionPath = $Cmdlet.SessionState.Path
    foreach ($p in $Path) {
        $provider = $null
        $resolved = @()
        if (Test-Path -LiteralPath $p) {
            $item = Resolve-Path -LiteralPath $p
            $resolved = @($item.ProviderPath)
            $provider = $item.Provider
        } elseif ([System.Management.Automation.WildcardPattern]::ContainsWildcardCharacters($p)) {
            $items = @(Resolve-Path -Path $p -ErrorAction Ignore)
            if ($items.Count -eq 0) {
                $parent = Split-Path -Path $p -Parent
                if ($parent -and -not (Test-Path -Path $parent)) {
                    $Cmdlet.WriteError([System.Management.Automation.ErrorRecord]::new(
                            [System.Management.Automation.ItemNotFoundException]::new(
                                "Cannot find path '$parent' because it does not exist."),
                            'HvCbt.PathNotFound', [System.Management.Automation.ErrorCategory]::ObjectNotFound, $p))
                }
                continue
            }
            $resolved = @($items.ProviderPath)
            $provider = $items[0].Provider
        } else {
            try {
                $drive = $null
                $resolved = @($sessionPath.GetUnresolvedProviderPathFromPSPath($p, [ref]$provider, [ref]$drive))
            } catch {
                # A drive or provider that does not exist.
                $Cmdlet.WriteError([System.Management.Automation.ErrorRecord]::new($_.Exception, 'HvCbt.InvalidPath',
                        [System.Management.Automation.ErrorCategory]::ObjectNotFound, $p))
                continue
            }
        }
        if ($provider -and $provider.Name -ne 'FileSystem') {
            $Cmdlet.WriteError([System.Management.Automation.ErrorRecord]::new(
                    [System.ArgumentException]::new("'$p' is on the $($provider.Name) provider; HvCbt works on files."),
                    'HvCbt.NotAFileSystemPath', [System.Management.Automation.ErrorCategory]::InvalidArgument, $p))
            continue
        }
        $resolved
    }
}
