/**
 * Creating a VHDX file: fixed, dynamic or differencing.
 *
 * Layout (the one qemu-img and Hyper-V produce, give or take the order of BAT and metadata):
 *   0 file identifier | 64 KiB header 1 | 128 KiB header 2 | 192/256 KiB region tables |
 *   1 MiB log (1 MiB) | 2 MiB metadata region (1 MiB) | 3 MiB BAT (rounded up to 1 MiB) | payload blocks.
 * A fixed file has every payload block FULLY_PRESENT, laid out in order after the BAT (the file is extended
 * sparse, so the blocks read as zeros). The new file is written to a temporary name, flushed and renamed, so a
 * crash never leaves a half-made disk under the requested name; an existing file is never overwritten.
 */
import { link, open, unlink } from 'node:fs/promises'
import { EngineError } from '../../engine/errors.js'
import { writeAscii } from './byte-cursor.js'
import {
  GUID_BAT_REGION, GUID_FILE_PARAMETERS, GUID_LOGICAL_SECTOR_SIZE, GUID_METADATA_REGION, GUID_PARENT_LOCATOR,
  GUID_PHYSICAL_SECTOR_SIZE, GUID_VIRTUAL_DISK_ID, GUID_VIRTUAL_DISK_SIZE, GUID_ZERO, HEADER_OFFSETS, MAX_BLOCK_SIZE,
  MAX_VIRTUAL_DISK_SIZE, MIN_BLOCK_SIZE, MiB, type MetadataItemSpec, PAYLOAD_BLOCK_FULLY_PRESENT, REGION_TABLE_OFFSETS,
  batEncode, batGeometry, encodeFileParameters, encodeHeader, encodeMetadataRegion, encodeParentLocator, encodeRegionTable,
  guidItem, newGuid, normalizeGuid, payloadBatIndex, u32Item, u64Item,
} from './vhdx-layout.js'

export interface CreateVhdxParent {
  /** Where the parent is (informational; the locator keys below are what is recorded). */
  path: string
  /** The parent's current DataWriteGuid, recorded as parent_linkage. */
  dataWriteGuid: string
  logicalSectorSize: number
  /** Parent path relative to the child's folder (Windows separators recommended), recorded as relative_path. */
  relativePath?: string
  /** e.g. C:\VMs\base.vhdx, recorded as absolute_win32_path. */
  absoluteWin32Path?: string
  /** e.g. \\?\Volume{...}\VMs\base.vhdx, recorded as volume_path. */
  volumePath?: string
}

export interface CreateVhdxOptions {
  sizeBytes: number
  type: 'fixed' | 'dynamic' | 'differencing'
  /** Default 32 MiB (Hyper-V's default); fixed disks default to 32 MiB too. */
  blockSizeBytes?: number
  logicalSectorSize?: 512 | 4096
  physicalSectorSize?: 512 | 4096
  parent?: CreateVhdxParent
  /** Virtual Disk ID; random by default. */
  diskId?: string
}

const LOG_OFFSET = MiB
const LOG_LENGTH = MiB
const METADATA_OFFSET = 2 * MiB
const METADATA_LENGTH = MiB
const BAT_OFFSET = 3 * MiB

function invalid(msg: string): never {
  throw new EngineError(msg, 'InvalidArgument')
}

export async function createVhdx(path: string, o: CreateVhdxOptions): Promise<void> {
  const lss = o.logicalSectorSize ?? (o.parent?.logicalSectorSize as 512 | 4096 | undefined) ?? 512
  const pss = o.physicalSectorSize ?? 4096
  const bs = o.blockSizeBytes ?? 32 * MiB
  if (lss !== 512 && lss !== 4096) invalid(`logical sector size ${lss} is neither 512 nor 4096`)
  if (pss !== 512 && pss !== 4096) invalid(`physical sector size ${pss} is neither 512 nor 4096`)
  if (!Number.isSafeInteger(bs) || bs < MIN_BLOCK_SIZE || bs > MAX_BLOCK_SIZE || (bs & (bs - 1)) !== 0) invalid(`block size ${bs} is not a power of two between 1 MiB and 256 MiB`)
  if (!Number.isSafeInteger(o.sizeBytes) || o.sizeBytes <= 0 || o.sizeBytes > MAX_VIRTUAL_DISK_SIZE || o.sizeBytes % lss !== 0) {
    invalid(`size ${o.sizeBytes} is not a multiple of ${lss} between ${lss} bytes and 64 TiB`)
  }
  const diff = o.type === 'differencing'
  if (diff !== !!o.parent) invalid(diff ? 'a differencing disk needs a parent' : `a ${o.type} disk takes no parent`)
  if (o.parent) {
    if (o.parent.logicalSectorSize !== lss) invalid(`logical sector size ${lss} differs from the parent's ${o.parent.logicalSectorSize}`)
    if (!normalizeGuid(o.parent.dataWriteGuid)) invalid(`parent DataWriteGuid ${o.parent.dataWriteGuid} is not a GUID`)
  }

  const g = batGeometry(o.sizeBytes, bs, lss, diff)
  const batLength = Math.ceil((g.totalBatEntries * 8) / MiB) * MiB
  const payloadStart = BAT_OFFSET + batLength
  const bat = new Uint8Array(batLength)
  const dv = new DataView(bat.buffer)
  if (o.type === 'fixed') {
    for (let b = 0; b < g.payloadBlocks; b++) {
      const [lo, hi] = batEncode(PAYLOAD_BLOCK_FULLY_PRESENT, (payloadStart + b * bs) / MiB)
      const i = payloadBatIndex(b, g.chunkRatio)
      dv.setUint32(i * 8, lo, true)
      dv.setUint32(i * 8 + 4, hi, true)
    }
  }
  const items: MetadataItemSpec[] = [
    { itemId: GUID_FILE_PARAMETERS, data: encodeFileParameters({ blockSizeBytes: bs, leaveBlockAllocated: o.type === 'fixed', hasParent: diff }), isRequired: true },
    { itemId: GUID_VIRTUAL_DISK_SIZE, data: u64Item(o.sizeBytes), isVirtualDisk: true, isRequired: true },
    { itemId: GUID_VIRTUAL_DISK_ID, data: guidItem(o.diskId ?? newGuid()), isVirtualDisk: true, isRequired: true },
    { itemId: GUID_LOGICAL_SECTOR_SIZE, data: u32Item(lss), isVirtualDisk: true, isRequired: true },
    { itemId: GUID_PHYSICAL_SECTOR_SIZE, data: u32Item(pss), isVirtualDisk: true, isRequired: true },
  ]
  if (o.parent) {
    const p = o.parent
    const kv: Array<[string, string]> = [['parent_linkage', `{${normalizeGuid(p.dataWriteGuid)}}`]]
    if (p.relativePath) kv.push(['relative_path', p.relativePath])
    if (p.volumePath) kv.push(['volume_path', p.volumePath])
    if (p.absoluteWin32Path) kv.push(['absolute_win32_path', p.absoluteWin32Path])
    if (kv.length === 1) invalid('a differencing disk needs at least one of relativePath, volumePath, absoluteWin32Path')
    items.push({ itemId: GUID_PARENT_LOCATOR, data: encodeParentLocator(kv), isRequired: true })
  }

  const fileId = new Uint8Array(64 * 1024)
  writeAscii(fileId, 0, 'vhdxfile')
  fileId.set(Buffer.from('HvCbt', 'utf16le'), 8)
  const guids = { fileWriteGuid: newGuid(), dataWriteGuid: newGuid(), logGuid: GUID_ZERO, logVersion: 0, version: 1, logLength: LOG_LENGTH, logOffset: LOG_OFFSET }
  const regions = encodeRegionTable([
    { guid: GUID_BAT_REGION, fileOffset: BAT_OFFSET, length: batLength, required: true },
    { guid: GUID_METADATA_REGION, fileOffset: METADATA_OFFSET, length: METADATA_LENGTH, required: true },
  ])
  const fileSize = o.type === 'fixed' ? payloadStart + g.payloadBlocks * bs : payloadStart

  const tmp = `${path}.${process.pid}.${Date.now()}.tmp`
  const fh = await open(tmp, 'wx')
  try {
    const put = async (data: Uint8Array, at: number) => {
      for (let d = 0; d < data.length;) d += (await fh.write(data, d, data.length - d, at + d)).bytesWritten
    }
    await fh.truncate(fileSize)
    await put(fileId, 0)
    await put(encodeHeader({ ...guids, sequenceNumber: 1n }), HEADER_OFFSETS[0])
    await put(encodeHeader({ ...guids, sequenceNumber: 2n }), HEADER_OFFSETS[1])
    await put(regions, REGION_TABLE_OFFSETS[0])
    await put(regions, REGION_TABLE_OFFSETS[1])
    await put(encodeMetadataRegion(items, METADATA_LENGTH), METADATA_OFFSET)
    await put(bat, BAT_OFFSET)
    await fh.datasync()
  } catch (e) {
    await fh.close()
    await unlink(tmp).catch(() => undefined)
    throw e
  }
  await fh.close()
  // link() fails with EEXIST instead of replacing, so an existing disk is never clobbered.
  try {
    await link(tmp, path)
  } finally {
    await unlink(tmp).catch(() => undefined)
  }
}
