function Write-VhdData {
    <#
    .SYNOPSIS
    Writes bytes from a file or a byte array into a virtual disk at an offset.

    .DESCRIPTION
    Write-VhdData writes into the virtual disk (method vhd.write) as a virtual machine would: blocks are allocated
    as needed; for a differencing disk only the child is written. The bytes come from -InputPath (a file) or
    -Value (a byte array, at most 64 MiB). -Offset must be a multiple of the disk's logical sector size; a last
    partial sector is merged with the bytes already on the disk. On a disk with change tracking the write is
    tracked like one made through an HvCbt NBD export. Supports -WhatIf and -Confirm. Returns an HvCbt.VhdDataTransfer (Path, Offset, Length written).

    .PARAMETER Path
    The disk file. Accepts pipeline input, and objects with a Path, FullName or PSPath property.

    .PARAMETER Offset
    Where to write: a number (1MB) or a string ('1M').

    .PARAMETER InputPath
    The file whose bytes to write.

    .PARAMETER Value
    The bytes to write.

    .PARAMETER Length
    Write at most this many bytes of the input.

    .EXAMPLE
    Write-VhdData .\disk.vhdx -Offset 1MB -Value ([byte[]]::new(4096) | ForEach-Object { 0xAB })

    Fills 4 KiB at 1 MiB with 0xAB.

    .EXAMPLE
    Get-Item .\disk.vhdx | Write-VhdData -Offset 0 -InputPath .\mbr.bin -WhatIf

    Shows what writing a saved first sector back would do.

    .INPUTS
    System.String, System.IO.FileInfo

    .OUTPUTS
    HvCbt.VhdDataTransfer
    #>
    [CmdletBinding(SupportsShouldProcess, DefaultParameterSetName = 'File')]
    [OutputType('HvCbt.VhdDataTransfer')]
    param(
        [Parameter(Mandatory, Position = 0, ValueFromPipeline, ValueFromPipelineByPropertyName)]
        [Alias('FullName', 'PSPath')]
        [ValidateNotNullOrEmpty()]
        [string]$Path,

        [Parameter(Mandatory)]
        [ValidateNotNull()]
        [object]$Offset,

        [Parameter(Mandatory, ParameterSetName = 'File')]
        [ValidateNotNullOrEmpty()]
        [string]$InputPath,

        [Parameter(Mandatory, ParameterSetName = 'Bytes')]
        [ValidateNotNull()]
        [ValidateCount(1, 67108864)]
        [byte[]]$Value,

        [ValidateNotNull()]
        [object]$Length
    )

    process {
        $files = @(Resolve-HvCbtPath -Path $Path -Cmdlet $PSCmdlet)
        if ($files.Count -ne 1) { return }
        $file = $files[0]
        $params = @{ path = $file; offset = ConvertTo-HvCbtSize $Offset }
        if ($PSBoundParameters.ContainsKey('Length')) { $params.length = ConvertTo-HvCbtSize $Length }
        $size = if ($Value) { $Value.Length } else { $null }
        $what = if ($null -ne $size) { "Write $size bytes at offset $Offset" } else { "Write the bytes of $InputPath at offset $Offset" }
        if (-not $PSCmdlet.ShouldProcess($file, $what)) { return }
        $tmp = $null
        try {
            if ($PSCmdlet.ParameterSetName -eq 'Bytes') {
                $tmp = [System.IO.Path]::GetTempFileName()
                [System.IO.File]::WriteAllBytes($tmp, $Value)
                $params.input = $tmp
            } else {
                $src = @(Resolve-HvCbtPath -Path $InputPath -Cmdlet $PSCmdlet)
                if ($src.Count -ne 1) { return }
                $params.input = $src[0]
            }
            $r = Invoke-HvCbtEngine -Cmdlet $PSCmdlet -Method 'vhd.write' -Params $params -TargetObject $file -Activity "Writing $file"
            if ($null -ne $r) {
                [pscustomobject]@{ PSTypeName = 'HvCbt.VhdDataTransfer'; Path = $r.path; Offset = [long]$r.offset; Length = [long]$r.bytesWritten; File = $params.input }
            }
        } finally {
            if ($tmp) { Remove-Item -LiteralPath $tmp -Force -ErrorAction Ignore }
        }
    }
}
