/**
 * Format-neutral creation (`hvcbt vhd create`): a raw image, a VHD or a VHDX, fixed, dynamic or differencing.
 *
 * The format comes from `format`, else from the extension (.vhd -> VHD, .vhdx/.avhdx -> VHDX, .img/.raw -> raw),
 * else VHDX. A differencing child takes its size from the parent; the parent is opened read-only, only to read
 * its identity (VHDX DataWriteGuid, VHD unique id) and record it with its paths: relative to the child (Windows
 * separators) and absolute (on Linux the host path with backslashes; chain.ts maps both back).
 */
import { open } from 'node:fs/promises'
import { extname, resolve } from 'node:path'
import { AppErrorCode, EngineError } from '../engine/errors.js'
import type { DiskFormat, DiskType } from './disk-info.js'
import { probeFormat } from './inspect.js'
import { createVhd, windowsRelative, windowsStyle } from './vhd/vhd-create.js'
import { createVhdx, openVhdx } from './vhdx/index.js'

export interface CreateDiskOptions {
  format?: DiskFormat
  type?: DiskType
  sizeBytes?: number
  blockSizeBytes?: number
  logicalSectorSize?: 512 | 4096
  parentPath?: string
}

/** The format a new file gets when none is asked for. */
export function formatForPath(path: string): DiskFormat {
  const ext = extname(path).toLowerCase()
  if (ext === '.vhd') return 'vhd'
  if (ext === '.img' || ext === '.raw') return 'raw'
  return 'vhdx'
}

export async function createDisk(path: string, o: CreateDiskOptions): Promise<{ format: DiskFormat; type: DiskType }> {
  const format = o.format ?? formatForPath(path)
  const type: DiskType = o.type ?? (o.parentPath ? 'differencing' : 'dynamic')
  if (type !== 'differencing' && o.parentPath) throw invalid(`--parent needs --type differencing (type is ${type})`)
  if (o.logicalSectorSize !== undefined && format !== 'vhdx' && o.logicalSectorSize !== 512) {
    throw invalid(`a ${format.toUpperCase()} has 512-byte logical sectors; ${o.logicalSectorSize} needs VHDX`)
  }
  switch (format) {
    case 'raw': {
      if (type !== 'fixed' && type !== 'dynamic') throw invalid('a raw image cannot be differencing')
      if (o.sizeBytes === undefined || !Number.isSafeInteger(o.sizeBytes) || o.sizeBytes <= 0 || o.sizeBytes % 512 !== 0) {
        throw invalid(`size ${o.sizeBytes} must be a positive multiple of 512 bytes`)
      }
      const fh = await open(path, 'wx')
      try {
        await fh.truncate(o.sizeBytes) // sparse: reads as zeros
      } finally {
        await fh.close()
      }
      return { format, type: 'fixed' }
    }
    case 'vhd':
      await createVhd(path, { type, sizeBytes: o.sizeBytes, blockSizeBytes: o.blockSizeBytes, parentPath: o.parentPath })
      return { format, type }
    case 'vhdx': {
      if (type !== 'differencing') {
        if (o.sizeBytes === undefined) throw invalid('a size is needed (--size)')
        await createVhdx(path, { type, sizeBytes: o.sizeBytes, blockSizeBytes: o.blockSizeBytes, logicalSectorSize: o.logicalSectorSize })
        return { format, type }
      }
      if (!o.parentPath) throw invalid('a differencing disk needs a parent (--parent)')
      const parentPath = resolve(o.parentPath)
      const parentFormat = await probeFormat(parentPath)
      if (parentFormat !== 'vhdx') throw invalid(`parent ${o.parentPath} is ${parentFormat === 'raw' ? 'not a VHD or VHDX' : 'a VHD'}; a VHDX child needs a VHDX parent`)
      const parent = await openVhdx(parentPath, { readOnly: true, withoutParent: true })
      try {
        if (o.sizeBytes !== undefined && o.sizeBytes !== parent.size) {
          throw invalid(`size ${o.sizeBytes} differs from the parent's ${parent.size} bytes; omit --size for a differencing disk`)
        }
        await createVhdx(path, {
          type,
          sizeBytes: parent.size,
          blockSizeBytes: o.blockSizeBytes ?? parent.blockSize,
          logicalSectorSize: parent.logicalSectorSize as 512 | 4096,
          physicalSectorSize: parent.physicalSectorSize as 512 | 4096,
          parent: {
            path: parentPath,
            dataWriteGuid: parent.dataWriteGuid,
            logicalSectorSize: parent.logicalSectorSize,
            relativePath: windowsRelative(path, parentPath),
            absoluteWin32Path: windowsStyle(parentPath),
          },
        })
      } finally {
        await parent.close()
      }
      return { format, type }
    }
  }
}

function invalid(detail: string): EngineError {
  return new EngineError(`cannot create disk: ${detail}`, 'InvalidArgument', AppErrorCode.Generic)
}
