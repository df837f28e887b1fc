function Start-VhdExport {
    <#
    .SYNOPSIS
    Exports a virtual disk over NBD, so qemu-img, qemu-io, nbdcopy, nbdinfo or the Linux nbd driver can use it.

    .DESCRIPTION
    Start-VhdExport serves a disk file (VHDX, VHD, raw, differencing chains) over the Network Block Device protocol
    from the module's engine process (method nbd.serve) and returns an HvCbt.VhdExport: Id, Uri (nbd://...), Listen,
    Name, Path, SizeBytes, ReadOnly, Connections. If the disk has change tracking (Enable-VhdChangeTracking), every
    write through the export is tracked and each reference point is offered as a qemu:dirty-bitmap context.

    The export lives in this PowerShell session's engine: it runs until Stop-VhdExport, Remove-Module HvCbt or the
    end of the session. It listens on loopback (127.0.0.1:10809 by default; port 0 picks a free port) unless
    -AllowRemote is given: NBD has no authentication and no encryption. Supports -WhatIf and -Confirm.

    .PARAMETER Path
    The disk file to export. Accepts pipeline input, and objects with a Path, FullName or PSPath property.

    .PARAMETER Listen
    host:port to listen on (default 127.0.0.1:10809; 127.0.0.1:0 picks a free port).

    .PARAMETER Name
    Export name (default: the file name without its extension).

    .PARAMETER ReadOnly
    Refuse writes.

    .PARAMETER AllowRemote
    Allow a listen address other than loopback (anyone who can reach it can read and write the disk).

    .EXAMPLE
    $e = Start-VhdExport .\disk.vhdx -Listen 127.0.0.1:0; qemu-img info $e.Uri; $e | Stop-VhdExport

    Exports a disk on a free port, inspects it with qemu-img, and stops the export.

    .EXAMPLE
    Get-Item .\disk.vhdx | Start-VhdExport -ReadOnly | Format-List

    A read-only export on the default port.

    .INPUTS
    System.String, System.IO.FileInfo

    .OUTPUTS
    HvCbt.VhdExport
    #>
    [CmdletBinding(SupportsShouldProcess)]
    [OutputType('HvCbt.VhdExport')]
    param(
        [Parameter(Mandatory, Position = 0, ValueFromPipeline, ValueFromPipelineByPropertyName)]
        [Alias('FullName', 'PSPath')]
        [ValidateNotNullOrEmpty()]
        [string[]]$Path,

        [ValidateNotNullOrEmpty()]
        [string]$Listen,

        [ValidateNotNullOrEmpty()]
        [string]$Name,

        [switch]$ReadOnly,

        [switch]$AllowRemote
    )

    process {
        foreach ($file in Resolve-HvCbtPath -Path $Path -Cmdlet $PSCmdlet) {
            $where = if ($Listen) { $Listen } else { '127.0.0.1:10809' }
            if (-not $PSCmdlet.ShouldProcess($file, "Export over NBD on $where")) { continue }
            $params = @{ disk = $file }
            if ($Listen) { $params.listen = $Listen }
            if ($Name) { $params.name = $Name }
            if ($ReadOnly) { $params.readOnly = $true }
            if ($AllowRemote) { $params.allowRemote = $true }
            $r = Invoke-HvCbtEngine -Cmdlet $PSCmdlet -Method 'nbd.serve' -Params $params -TargetObject $file
            if ($null -eq $r) { continue }
            ConvertTo-HvCbtVhdExport -Export $r
        }
    }
}
