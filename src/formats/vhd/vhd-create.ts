/**
 * Create a VHD: fixed, dynamic or differencing.
 *
 * Layout of a dynamic/differencing file we write (block data is appended later, at the footer's place):
 *   0: footer copy | 512: dynamic header | 1536: BAT (all 0xFFFFFFFF, padded to 512) | parent locators | footer
 *
 * Choices:
 * - Creator application "win " (version 10.0, host "Wi2k"): qemu trusts the footer's current size only for a few
 *   creator applications and sizes the rest from the CHS geometry, which would make the same file a different
 *   size in qemu than in Hyper-V and here. The CHS geometry is still computed (the specification's algorithm).
 * - The current size is exactly the requested size (a multiple of 512), not rounded to the CHS geometry.
 * - Differencing: the parent must be a VHD; the child takes its size, records its unique id and modification
 *   time, its absolute path as the parent name, and two locators: W2ru (relative, ".\\name" style with
 *   backslashes) and W2ku (the absolute path with backslashes: on Linux "\\tmp\\a.vhd", which the chain resolver maps
 *   back and libvhdi reduces to a file name next to the child). Platform data space is given in sectors, as the
 *   specification says (readers rely on the data length).
 * - Fixed files are made sparse (ftruncate); they read as zeros and have the fixed layout.
 * - The file is created exclusively: an existing file is never overwritten. On failure the partial file is removed.
 */
import { randomBytes } from 'node:crypto'
import { open, stat, unlink } from 'node:fs/promises'
import { basename, dirname, relative, resolve } from 'node:path'
import { AppErrorCode, EngineError } from '../../engine/errors.js'
import {
  DYNAMIC_HEADER_SIZE,
  FOOTER_SIZE,
  PlatformCode,
  SECTOR,
  VHD_EPOCH_SECONDS,
  VHD_MAX_SIZE,
  VhdDiskType,
  chsGeometry,
  encodeDynamicHeader,
  encodeFooter,
  encodeUtf16,
  vhdNow,
  type VhdFooter,
  type VhdParentLocator,
} from './vhd-layout.js'
import { loadVhdMetadata } from './vhd-metadata.js'

export const VHD_DEFAULT_BLOCK_SIZE = 2 * 1024 * 1024

export interface CreateVhdOptions {
  /** Virtual size; differencing disks take the parent's (if given it must match). */
  sizeBytes?: number
  type: 'fixed' | 'dynamic' | 'differencing'
  /** Dynamic/differencing block size, a power of two from 4 KiB to 256 MiB (default 2 MiB, or the parent's). */
  blockSizeBytes?: number
  /** Parent VHD (differencing only). */
  parentPath?: string
}

export async function createVhd(path: string, options: CreateVhdOptions): Promise<void> {
  const { type } = options
  let size = options.sizeBytes
  let blockSize = options.blockSizeBytes
  let parent: { uniqueId: Uint8Array; timestamp: number; absolutePath: string } | null = null
  if (type === 'differencing') {
    if (!options.parentPath) throw invalid('a differencing VHD needs a parent (--parent)')
    const p = await readParent(options.parentPath)
    if (size !== undefined && size !== p.size) throw invalid(`size ${size} differs from the parent's ${p.size} bytes; omit --size for a differencing disk`)
    size = p.size
    blockSize ??= p.blockSize || VHD_DEFAULT_BLOCK_SIZE
    parent = p
  } else if (options.parentPath) {
    throw invalid(`--parent is only valid for a differencing disk (type is ${type})`)
  }
  if (size === undefined) throw invalid('a size is needed (--size)')
  if (!Number.isSafeInteger(size) || size <= 0 || size % SECTOR !== 0) throw invalid(`size ${size} must be a positive multiple of ${SECTOR} bytes`)
  if (size > VHD_MAX_SIZE) throw invalid(`size ${size} exceeds the VHD maximum of 2040 GiB (${VHD_MAX_SIZE} bytes); use VHDX`)
  blockSize ??= VHD_DEFAULT_BLOCK_SIZE
  if (type !== 'fixed' && !(blockSize >= 4096 && blockSize <= 256 * 1024 * 1024 && (blockSize & (blockSize - 1)) === 0)) {
    throw invalid(`block size ${blockSize} must be a power of two from 4 KiB to 256 MiB`)
  }

  const chs = chsGeometry(size)
  const footer: VhdFooter = {
    cookie: 'conectix',
    features: 2,
    formatVersion: 0x00010000,
    dataOffset: type === 'fixed' ? NaN : FOOTER_SIZE, // NaN encodes as all ones
    timestamp: vhdNow(),
    creatorApp: 'win ',
    creatorVersion: 0x000a0000,
    creatorHostOs: 'Wi2k',
    originalSize: size,
    currentSize: size,
    cylinders: chs.cylinders,
    heads: chs.heads,
    sectorsPerTrack: chs.sectorsPerTrack,
    diskType: type === 'fixed' ? VhdDiskType.Fixed : type === 'dynamic' ? VhdDiskType.Dynamic : VhdDiskType.Differencing,
    checksum: 0,
    uniqueId: randomBytes(16),
    savedState: 0,
  }

  const fh = await open(path, 'wx')
  try {
    if (type === 'fixed') {
      await fh.truncate(size + FOOTER_SIZE)
      await fh.write(encodeFooter(footer), 0, FOOTER_SIZE, size)
    } else {
      const entries = Math.ceil(size / blockSize)
      const tableOffset = FOOTER_SIZE + DYNAMIC_HEADER_SIZE
      const batBytes = Math.ceil((entries * 4) / SECTOR) * SECTOR
      const bat = Buffer.alloc(batBytes, 0xff) // every entry 0xFFFFFFFF: unallocated
      let next = tableOffset + batBytes
      const locators: VhdParentLocator[] = []
      const locatorData: [number, Buffer][] = []
      if (parent) {
        for (const [code, text] of [[PlatformCode.W2ru, windowsRelative(path, parent.absolutePath)], [PlatformCode.W2ku, windowsStyle(parent.absolutePath)]] as const) {
          const data = encodeUtf16(text, 'le')
          const space = Math.max(1, Math.ceil(data.length / SECTOR))
          locators.push({ platformCode: code, platformDataSpace: space, platformDataLength: data.length, platformDataOffset: next })
          locatorData.push([next, data])
          next += space * SECTOR
        }
      }
      while (locators.length < 8) locators.push({ platformCode: 0, platformDataSpace: 0, platformDataLength: 0, platformDataOffset: 0 })
      const header = encodeDynamicHeader({
        cookie: 'cxsparse',
        dataOffset: NaN,
        tableOffset,
        headerVersion: 0x00010000,
        maxTableEntries: entries,
        blockSize,
        checksum: 0,
        parentUniqueId: parent?.uniqueId ?? new Uint8Array(16),
        parentTimestamp: parent?.timestamp ?? 0,
        parentName: parent ? windowsStyle(parent.absolutePath).slice(0, 255) : '',
        locators,
      })
      const encodedFooter = encodeFooter(footer)
      await fh.write(encodedFooter, 0, FOOTER_SIZE, 0)
      await fh.write(header, 0, DYNAMIC_HEADER_SIZE, FOOTER_SIZE)
      await fh.write(bat, 0, batBytes, tableOffset)
      for (const [at, data] of locatorData) {
        const padded = Buffer.alloc(Math.ceil(data.length / SECTOR) * SECTOR || SECTOR)
        data.copy(padded)
        await fh.write(padded, 0, padded.length, at)
      }
      await fh.write(encodedFooter, 0, FOOTER_SIZE, next)
    }
    await fh.sync()
    await fh.close()
  } catch (err) {
    await fh.close().catch(() => undefined)
    await unlink(path).catch(() => undefined)
    throw err
  }
}

/** Facts about the parent a differencing child records. */
async function readParent(parentPath: string): Promise<{ uniqueId: Uint8Array; timestamp: number; absolutePath: string; size: number; blockSize: number }> {
  const absolutePath = resolve(parentPath)
  const fh = await open(absolutePath, 'r')
  try {
    const head = Buffer.alloc(8)
    await fh.read(head, 0, 8, 0)
    if (head.toString('latin1') === 'vhdxfile') throw invalid(`parent ${parentPath} is a VHDX; a VHD child needs a VHD parent`)
    const meta = await loadVhdMetadata(fh, absolutePath)
    const mtime = (await stat(absolutePath)).mtimeMs / 1000
    return {
      uniqueId: meta.footer.uniqueId,
      timestamp: Math.max(0, Math.floor(mtime) - VHD_EPOCH_SECONDS),
      absolutePath,
      size: meta.footer.currentSize,
      blockSize: meta.dynamicHeader?.blockSize ?? 0,
    }
  } finally {
    await fh.close()
  }
}

/** Path of `target` relative to the folder of `from`, Windows style: ".\\parent.vhd", "..\\base\\parent.vhd". */
export function windowsRelative(from: string, target: string): string {
  const rel = relative(dirname(resolve(from)), target) || basename(target)
  const win = rel.split('/').join('\\')
  return win.startsWith('..') ? win : `.\\${win}`
}

/** A host path with Windows separators (what Hyper-V and libvhdi expect in W2ku and the parent name). */
export function windowsStyle(p: string): string {
  return p.split('/').join('\\')
}

function invalid(detail: string): EngineError {
  return new EngineError(`cannot create VHD: ${detail}`, 'InvalidArgument', AppErrorCode.Generic)
}
