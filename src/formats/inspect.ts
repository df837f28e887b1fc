/**
 * Format-neutral inspection: probe a file's format by its signatures and hand it to that format's inspector.
 *
 *   "vhdxfile" at offset 0             -> VHDX
 *   "conectix" in the last 512 bytes    -> VHD (any type)
 *   "conectix" at 0 (end damaged/copy)  -> VHD (dynamic/differencing keep a footer copy there)
 *   anything else                       -> raw
 *
 * A missing file propagates Node's ENOENT error (the engine maps it to ObjectNotFound); a directory or other
 * non-file gives a FormatError.
 */
import { open, stat } from 'node:fs/promises'
import { FormatError } from '../engine/errors.js'
import type { DiskFormat, DiskInfo } from './disk-info.js'
import { inspectVhd } from './vhd/vhd-inspect.js'
import { inspectVhdx } from './vhdx/vhdx-inspect.js'

/** Detect the format of the file at `path` from its signatures. */
export async function probeFormat(path: string): Promise<DiskFormat> {
  const st = await stat(path)
  if (st.isDirectory()) throw new FormatError(path, 'file', null, 'is a directory, not a disk image')
  if (!st.isFile() && !st.isBlockDevice()) throw new FormatError(path, 'file', null, 'is not a regular file or block device')
  const fh = await open(path, 'r')
  try {
    const size = st.isFile() ? st.size : (await fh.stat()).size
    const head = Buffer.alloc(8)
    const { bytesRead } = await fh.read(head, 0, 8, 0)
    if (bytesRead === 8 && head.toString('latin1') === 'vhdxfile') return 'vhdx'
    if (size >= 512) {
      const tail = Buffer.alloc(8)
      await fh.read(tail, 0, 8, size - 512)
      if (tail.toString('latin1') === 'conectix') return 'vhd'
    }
    if (bytesRead === 8 && head.toString('latin1') === 'conectix') return 'vhd'
    return 'raw'
  } finally {
    await fh.close()
  }
}

export async function inspectDisk(path: string): Promise<DiskInfo> {
  const format = await probeFormat(path)
  switch (format) {
    case 'vhd':
      return inspectVhd(path)
    case 'vhdx': {
      return inspectVhdx(path)
    }
    case 'raw':
      return inspectRaw(path)
  }
}

async function inspectRaw(path: string): Promise<DiskInfo> {
  const st = await stat(path)
  return {
    path,
    format: 'raw',
    type: 'fixed',
    virtualSizeBytes: st.size,
    blockSizeBytes: 0,
    logicalSectorSizeBytes: 512,
    physicalSectorSizeBytes: 512,
    fileSizeBytes: st.size,
    diskId: null,
    parentPath: null,
  }
}
