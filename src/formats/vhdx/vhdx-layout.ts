/**
 * MS-VHDX (v8.0) on-disk structures: one place that names every field, its offset and its meaning.
 *
 *   0        64 KiB    128 KiB   192 KiB        256 KiB        1 MiB
 *   | file id | header 1 | header 2 | region tbl 1 | region tbl 2 | reserved |  log, BAT, metadata, blocks ...
 *
 * Everything after the first MiB (log, BAT, metadata region, payload and sector-bitmap blocks) lives where the
 * region table and headers say, each object 1 MiB aligned. All integers are little-endian; GUIDs are stored
 * Microsoft-style (Data1 u32 LE, Data2 u16 LE, Data3 u16 LE, Data4 8 bytes as-is).
 *
 * Decoders here never throw: they return the fields, and `validate*` functions return the list of problems, so
 * the reader can stop at the first one and the checker can report them all.
 */
import { crc32cWithZeroedField } from '../crc32c.js'
import { readGuid, writeGuid } from './vhdx-guid.js'
import { hasSignature, readU16, readU32, readU64, readU64Big, writeAscii, writeU16, writeU32, writeU64, writeU64Big } from './byte-cursor.js'

export const KiB = 1024
export const MiB = 1024 * 1024

// ---- fixed file offsets -------------------------------------------------------------------------------------
export const FILE_IDENTIFIER_OFFSET = 0
export const HEADER_OFFSETS = [64 * KiB, 128 * KiB] as const
export const REGION_TABLE_OFFSETS = [192 * KiB, 256 * KiB] as const
/** Each header is 4 KiB (inside a 64 KiB slot); each region table 64 KiB. */
export const HEADER_SIZE = 4 * KiB
export const REGION_TABLE_SIZE = 64 * KiB
/** Objects placed by the region table and BAT are aligned to (and sized in multiples of) 1 MiB. */
export const OBJECT_ALIGNMENT = MiB

// ---- limits -------------------------------------------------------------------------------------------------
export const MAX_REGION_ENTRIES = 2047
export const MAX_METADATA_ENTRIES = 2047
export const MIN_BLOCK_SIZE = MiB
export const MAX_BLOCK_SIZE = 256 * MiB
export const MAX_VIRTUAL_DISK_SIZE = 64 * 1024 * 1024 * MiB // 64 TiB
/** Sector bitmap blocks are 1 MiB and map 2^23 logical sectors. */
export const SECTOR_BITMAP_BLOCK_SIZE = MiB
export const SECTORS_PER_BITMAP_BLOCK = 2 ** 23
export const LOG_SECTOR_SIZE = 4 * KiB
/** A metadata table is 64 KiB at the start of the metadata region; item data lies after it. */
export const METADATA_TABLE_SIZE = 64 * KiB

// ---- GUIDs --------------------------------------------------------------------------------------------------
export const GUID_BAT_REGION = '2dc27766-f623-4200-9d64-115e9bfd4a08'
export const GUID_METADATA_REGION = '8b7ca206-4790-4b9a-b8fe-575f050f886e'
export const GUID_FILE_PARAMETERS = 'caa16737-fa36-4d43-b3b6-33f0aa44e76b'
export const GUID_VIRTUAL_DISK_SIZE = '2fa54224-cd1b-4876-b211-5dbed83bf4b8'
export const GUID_VIRTUAL_DISK_ID = 'beca12ab-b2e6-4523-93ef-c309e000c746'
export const GUID_LOGICAL_SECTOR_SIZE = '8141bf1d-a96f-4709-ba47-f233a8faab5f'
export const GUID_PHYSICAL_SECTOR_SIZE = 'cda348c7-445d-4471-9cc9-e9885251c556'
export const GUID_PARENT_LOCATOR = 'a8d35f2d-b30b-454d-abf7-d3d84834ab0c'
/** LocatorType of the VHDX parent locator (the only one the spec defines). */
export const GUID_VHDX_PARENT_LOCATOR_TYPE = 'b04aefb7-d19e-4a81-b789-25b8e9445913'
export const GUID_ZERO = '00000000-0000-0000-0000-000000000000'

export { newGuid, normalizeGuid, readGuid, writeGuid } from './vhdx-guid.js'

// ---- file type identifier (offset 0, 64 KiB) -----------------------------------------------------------------
export const FILE_IDENTIFIER_SIGNATURE = 'vhdxfile'
/** Creator: UTF-16LE, up to 256 characters, at offset 8 of the identifier. Informational only. */
export function readCreator(b: Uint8Array): string {
  const raw = Buffer.from(b.buffer, b.byteOffset + 8, 512).toString('utf16le')
  const nul = raw.indexOf('\0')
  return nul < 0 ? raw : raw.slice(0, nul)
}

// ---- header (4 KiB, two copies) ------------------------------------------------------------------------------
export interface VhdxHeader {
  /** 0: "head". */
  signature: 'head'
  /** 4: CRC-32C over the 4 KiB header with this field zero. */
  checksum: number
  /** 8: u64; the valid header with the larger value is current. */
  sequenceNumber: bigint
  /** 16: changes (once) in every session that opens the file for writing. */
  fileWriteGuid: string
  /** 32: changes before the first user-visible data change of a session; children link to it. */
  dataWriteGuid: string
  /** 48: identifies the active log; all-zero means the log is empty. */
  logGuid: string
  /** 64: u16, must be 0. */
  logVersion: number
  /** 66: u16, must be 1. */
  version: number
  /** 68: u32, log size in bytes, multiple of 1 MiB. */
  logLength: number
  /** 72: u64, log file offset, multiple of 1 MiB. */
  logOffset: number
  // 80..4095: reserved, must be zero.
}

export function decodeHeader(b: Uint8Array): VhdxHeader {
  return {
    signature: 'head',
    checksum: readU32(b, 4),
    sequenceNumber: readU64Big(b, 8),
    fileWriteGuid: readGuid(b, 16),
    dataWriteGuid: readGuid(b, 32),
    logGuid: readGuid(b, 48),
    logVersion: readU16(b, 64),
    version: readU16(b, 66),
    logLength: readU32(b, 68),
    logOffset: readU64(b, 72),
  }
}

/** Problems with a 4 KiB header image (empty list = valid). */
export function validateHeader(b: Uint8Array): string[] {
  if (!hasSignature(b, 0, 'head')) return ['signature is not "head"']
  const want = crc32cWithZeroedField(b, 4)
  const got = readU32(b, 4)
  if (want !== got) return [`CRC-32C mismatch (stored 0x${hex32(got)}, computed 0x${hex32(want)})`]
  const h = decodeHeader(b)
  const out: string[] = []
  if (h.version !== 1) out.push(`Version ${h.version}, expected 1`)
  if (h.logVersion !== 0) out.push(`LogVersion ${h.logVersion}, expected 0`)
  if (h.logLength === 0 || h.logLength % MiB !== 0) out.push(`LogLength ${h.logLength} is not a non-zero multiple of 1 MiB`)
  if (!(h.logOffset >= MiB) || h.logOffset % MiB !== 0) out.push(`LogOffset ${h.logOffset} is not a multiple of 1 MiB past the header section`)
  return out
}

export function encodeHeader(h: Omit<VhdxHeader, 'signature' | 'checksum'>): Uint8Array {
  const b = new Uint8Array(HEADER_SIZE)
  writeAscii(b, 0, 'head')
  writeU64Big(b, 8, h.sequenceNumber)
  writeGuid(b, 16, h.fileWriteGuid)
  writeGuid(b, 32, h.dataWriteGuid)
  writeGuid(b, 48, h.logGuid)
  writeU16(b, 64, h.logVersion)
  writeU16(b, 66, h.version)
  writeU32(b, 68, h.logLength)
  writeU64(b, 72, h.logOffset)
  writeU32(b, 4, crc32cWithZeroedField(b, 4))
  return b
}

// ---- region table (64 KiB, two identical copies) -------------------------------------------------------------
export interface RegionTableEntry {
  /** 0: region GUID (BAT, metadata, or unknown). */
  guid: string
  /** 16: u64, 1 MiB aligned, >= 1 MiB. */
  fileOffset: number
  /** 24: u32, multiple of 1 MiB. */
  length: number
  /** 28: bit 0 Required: an implementation that does not know the region must refuse the file. */
  required: boolean
  /** The raw u32 at 28, to report reserved bits. */
  rawFlags: number
}

export interface RegionTable {
  // 0: "regi"; 4: CRC-32C over the 64 KiB with the field zero; 8: EntryCount u32; 12: reserved u32.
  entryCount: number
  entries: RegionTableEntry[]
}

export function validateRegionTable(b: Uint8Array): string[] {
  if (!hasSignature(b, 0, 'regi')) return ['signature is not "regi"']
  const want = crc32cWithZeroedField(b, 4)
  const got = readU32(b, 4)
  if (want !== got) return [`CRC-32C mismatch (stored 0x${hex32(got)}, computed 0x${hex32(want)})`]
  const n = readU32(b, 8)
  if (n > MAX_REGION_ENTRIES) return [`EntryCount ${n} exceeds ${MAX_REGION_ENTRIES}`]
  const out: string[] = []
  const seen = new Set<string>()
  for (const e of decodeRegionTable(b).entries) {
    if (seen.has(e.guid)) out.push(`region ${e.guid} appears twice`)
    seen.add(e.guid)
    if (!(e.fileOffset >= MiB) || e.fileOffset % MiB !== 0) out.push(`region ${e.guid}: FileOffset ${e.fileOffset} is not 1 MiB aligned past the header section`)
    if (e.length === 0 || e.length % MiB !== 0) out.push(`region ${e.guid}: Length ${e.length} is not a non-zero multiple of 1 MiB`)
    if (e.rawFlags & ~1) out.push(`region ${e.guid}: reserved flag bits 0x${hex32(e.rawFlags & ~1)} set`)
  }
  return out
}

export function decodeRegionTable(b: Uint8Array): RegionTable {
  const entryCount = Math.min(readU32(b, 8), MAX_REGION_ENTRIES)
  const entries: RegionTableEntry[] = []
  for (let i = 0; i < entryCount; i++) {
    const o = 16 + i * 32
    const rawFlags = readU32(b, o + 28)
    entries.push({ guid: readGuid(b, o), fileOffset: readU64(b, o + 16), length: readU32(b, o + 24), required: (rawFlags & 1) === 1, rawFlags })
  }
  return { entryCount, entries }
}

export function encodeRegionTable(entries: Array<Omit<RegionTableEntry, 'rawFlags'>>): Uint8Array {
  const b = new Uint8Array(REGION_TABLE_SIZE)
  writeAscii(b, 0, 'regi')
  writeU32(b, 8, entries.length)
  entries.forEach((e, i) => {
    const o = 16 + i * 32
    writeGuid(b, o, e.guid)
    writeU64(b, o + 16, e.fileOffset)
    writeU32(b, o + 24, e.length)
    writeU32(b, o + 28, e.required ? 1 : 0)
  })
  writeU32(b, 4, crc32cWithZeroedField(b, 4))
  return b
}

// ---- metadata table (first 64 KiB of the metadata region) ---------------------------------------------------
export interface MetadataTableEntry {
  /** 0: item GUID. */
  itemId: string
  /** 16: u32, offset of the item data from the start of the region; >= 64 KiB (0 only if Length is 0). */
  offset: number
  /** 20: u32, item length (<= 1 MiB). */
  length: number
  /** 24 bit 0: IsUser (user metadata, not a system item). */
  isUser: boolean
  /** 24 bit 1: IsVirtualDisk (describes the virtual disk, copied when converting). */
  isVirtualDisk: boolean
  /** 24 bit 2: IsRequired (must be understood to open the file). */
  isRequired: boolean
  /** The raw flags u32 at 24 (bits 3..31 reserved); 28: reserved u32. */
  rawFlags: number
}

// Table header: 0 "metadata" (8 bytes), 8 reserved u16, 10 EntryCount u16, 12..31 reserved; entries from 32.
export function decodeMetadataTable(b: Uint8Array): MetadataTableEntry[] {
  const n = Math.min(readU16(b, 10), MAX_METADATA_ENTRIES)
  const out: MetadataTableEntry[] = []
  for (let i = 0; i < n; i++) {
    const o = 32 + i * 32
    const f = readU32(b, o + 24)
    out.push({ itemId: readGuid(b, o), offset: readU32(b, o + 16), length: readU32(b, o + 20), isUser: (f & 1) !== 0, isVirtualDisk: (f & 2) !== 0, isRequired: (f & 4) !== 0, rawFlags: f })
  }
  return out
}

export function validateMetadataTable(b: Uint8Array, regionLength: number): string[] {
  if (!hasSignature(b, 0, 'metadata')) return ['signature is not "metadata"']
  const n = readU16(b, 10)
  if (n > MAX_METADATA_ENTRIES) return [`EntryCount ${n} exceeds ${MAX_METADATA_ENTRIES}`]
  const out: string[] = []
  const seen = new Set<string>()
  const spans: Array<[number, number, string]> = []
  for (const e of decodeMetadataTable(b)) {
    const key = `${e.itemId}/${e.isUser}`
    if (seen.has(key)) out.push(`item ${e.itemId} appears twice`)
    seen.add(key)
    if (e.rawFlags & ~7) out.push(`item ${e.itemId}: reserved flag bits 0x${hex32(e.rawFlags & ~7)} set`)
    if (e.length === 0) continue
    if (e.offset < METADATA_TABLE_SIZE) out.push(`item ${e.itemId}: Offset ${e.offset} lies inside the 64 KiB table`)
    if (e.length > MiB) out.push(`item ${e.itemId}: Length ${e.length} exceeds 1 MiB`)
    if (e.offset + e.length > regionLength) out.push(`item ${e.itemId}: Offset ${e.offset} + Length ${e.length} exceeds the ${regionLength}-byte region`)
    for (const [s, l, id] of spans) if (e.offset < s + l && s < e.offset + e.length) out.push(`item ${e.itemId} overlaps item ${id}`)
    spans.push([e.offset, e.length, e.itemId])
  }
  return out
}

export interface MetadataItemSpec {
  itemId: string
  data: Uint8Array
  isUser?: boolean
  isVirtualDisk?: boolean
  isRequired?: boolean
}

/** Metadata region image: table then items at 64 KiB, each item 8-byte aligned (the spec asks no more). */
export function encodeMetadataRegion(items: MetadataItemSpec[], regionLength: number): Uint8Array {
  const b = new Uint8Array(regionLength)
  writeAscii(b, 0, 'metadata')
  writeU16(b, 10, items.length)
  let dataOff = METADATA_TABLE_SIZE
  items.forEach((it, i) => {
    const o = 32 + i * 32
    writeGuid(b, o, it.itemId)
    writeU32(b, o + 16, dataOff)
    writeU32(b, o + 20, it.data.length)
    writeU32(b, o + 24, (it.isUser ? 1 : 0) | (it.isVirtualDisk ? 2 : 0) | (it.isRequired ? 4 : 0))
    b.set(it.data, dataOff)
    dataOff += Math.ceil(it.data.length / 8) * 8
  })
  return b
}

// ---- metadata items ------------------------------------------------------------------------------------------
/** File Parameters: 0 BlockSize u32; 4 bit 0 LeaveBlockAllocated, bit 1 HasParent, bits 2..31 reserved. */
export interface FileParameters {
  blockSizeBytes: number
  leaveBlockAllocated: boolean
  hasParent: boolean
  rawFlags: number
}

export function decodeFileParameters(b: Uint8Array): FileParameters {
  const f = readU32(b, 4)
  return { blockSizeBytes: readU32(b, 0), leaveBlockAllocated: (f & 1) !== 0, hasParent: (f & 2) !== 0, rawFlags: f }
}

export function encodeFileParameters(p: Omit<FileParameters, 'rawFlags'>): Uint8Array {
  const b = new Uint8Array(8)
  writeU32(b, 0, p.blockSizeBytes)
  writeU32(b, 4, (p.leaveBlockAllocated ? 1 : 0) | (p.hasParent ? 2 : 0))
  return b
}

export function u32Item(v: number): Uint8Array {
  const b = new Uint8Array(4)
  writeU32(b, 0, v)
  return b
}

export function u64Item(v: number): Uint8Array {
  const b = new Uint8Array(8)
  writeU64(b, 0, v)
  return b
}

export function guidItem(g: string): Uint8Array {
  const b = new Uint8Array(16)
  writeGuid(b, 0, g)
  return b
}

/**
 * Parent Locator: 0 LocatorType GUID, 16 reserved u16, 18 KeyValueCount u16, then entries of 12 bytes from 20:
 * KeyOffset u32, ValueOffset u32 (from the start of the item), KeyLength u16, ValueLength u16 (bytes, UTF-16LE,
 * no terminating NUL).
 */
export interface ParentLocator {
  locatorType: string
  entries: Map<string, string>
}

export function decodeParentLocator(b: Uint8Array): { locator: ParentLocator; problems: string[] } {
  const problems: string[] = []
  const entries = new Map<string, string>()
  if (b.length < 20) return { locator: { locatorType: GUID_ZERO, entries }, problems: [`item is ${b.length} bytes, shorter than its 20-byte header`] }
  const locatorType = readGuid(b, 0)
  if (locatorType !== GUID_VHDX_PARENT_LOCATOR_TYPE) problems.push(`LocatorType ${locatorType} is not the VHDX parent locator ${GUID_VHDX_PARENT_LOCATOR_TYPE}`)
  const n = readU16(b, 18)
  if (20 + n * 12 > b.length) {
    problems.push(`KeyValueCount ${n} entries do not fit in the ${b.length}-byte item`)
    return { locator: { locatorType, entries }, problems }
  }
  const utf16 = (off: number, len: number): string | null => {
    if (len === 0 || len % 2 !== 0 || off < 20 + n * 12 || off + len > b.length) return null
    return Buffer.from(b.buffer, b.byteOffset + off, len).toString('utf16le')
  }
  for (let i = 0; i < n; i++) {
    const o = 20 + i * 12
    const key = utf16(readU32(b, o), readU16(b, o + 8))
    const value = utf16(readU32(b, o + 4), readU16(b, o + 10))
    if (key === null || value === null) {
      problems.push(`entry ${i} has a key or value outside the item or of odd/zero length`)
      continue
    }
    if (entries.has(key)) problems.push(`key "${key}" appears twice`)
    entries.set(key, value)
  }
  return { locator: { locatorType, entries }, problems }
}

export function encodeParentLocator(entries: Array<[string, string]>): Uint8Array {
  const strings = entries.map(([k, v]) => [Buffer.from(k, 'utf16le'), Buffer.from(v, 'utf16le')] as const)
  const total = 20 + entries.length * 12 + strings.reduce((s, [k, v]) => s + k.length + v.length, 0)
  const b = new Uint8Array(total)
  writeGuid(b, 0, GUID_VHDX_PARENT_LOCATOR_TYPE)
  writeU16(b, 18, entries.length)
  let off = 20 + entries.length * 12
  strings.forEach(([k, v], i) => {
    const o = 20 + i * 12
    writeU32(b, o, off)
    writeU16(b, o + 8, k.length)
    b.set(k, off)
    off += k.length
    writeU32(b, o + 4, off)
    writeU16(b, o + 10, v.length)
    b.set(v, off)
    off += v.length
  })
  return b
}

// ---- BAT ----------------------------------------------------------------------------------------------------
/** Payload block states (BAT entry bits 0-2). */
export const PAYLOAD_BLOCK_NOT_PRESENT = 0
export const PAYLOAD_BLOCK_UNDEFINED = 1
export const PAYLOAD_BLOCK_ZERO = 2
export const PAYLOAD_BLOCK_UNMAPPED = 3
/** Draft (v0.95) value of UNMAPPED, still found in old files; read as zeros. */
export const PAYLOAD_BLOCK_UNMAPPED_V095 = 5
export const PAYLOAD_BLOCK_FULLY_PRESENT = 6
export const PAYLOAD_BLOCK_PARTIALLY_PRESENT = 7
/** Sector bitmap block states. */
export const SB_BLOCK_NOT_PRESENT = 0
export const SB_BLOCK_PRESENT = 6

/** BAT entry (u64): bits 0-2 State, 3-19 reserved (zero), 20-63 FileOffsetMB. Split into u32 halves lo/hi. */
export function batState(lo: number): number {
  return lo & 7
}
export function batReserved(lo: number): number {
  return (lo >>> 3) & 0x1ffff
}
/** FileOffsetMB in MiB from the two halves. */
export function batFileOffsetMB(lo: number, hi: number): number {
  return (lo >>> 20) + hi * 4096
}
export function batEncode(state: number, fileOffsetMB: number): [lo: number, hi: number] {
  return [(((fileOffsetMB & 0xfff) << 20) | state) >>> 0, Math.floor(fileOffsetMB / 4096) >>> 0]
}

/**
 * Geometry derived from the metadata: chunk ratio, BAT size and the payload/sector-bitmap interleave
 * (payload block i at BAT index i + floor(i / chunkRatio); bitmap of chunk k at k * (chunkRatio + 1) + chunkRatio).
 */
export interface BatGeometry {
  chunkRatio: number
  payloadBlocks: number
  sectorBitmapBlocks: number
  totalBatEntries: number
}

export function batGeometry(virtualSize: number, blockSize: number, logicalSectorSize: number, hasParent: boolean): BatGeometry {
  const chunkRatio = (SECTORS_PER_BITMAP_BLOCK * logicalSectorSize) / blockSize
  const payloadBlocks = Math.ceil(virtualSize / blockSize)
  const sectorBitmapBlocks = Math.ceil(payloadBlocks / chunkRatio)
  const totalBatEntries = hasParent
    ? sectorBitmapBlocks * (chunkRatio + 1)
    : payloadBlocks + Math.floor(Math.max(payloadBlocks - 1, 0) / chunkRatio)
  return { chunkRatio, payloadBlocks, sectorBitmapBlocks, totalBatEntries }
}

export function payloadBatIndex(block: number, chunkRatio: number): number {
  return block + Math.floor(block / chunkRatio)
}

export function bitmapBatIndex(chunk: number, chunkRatio: number): number {
  return chunk * (chunkRatio + 1) + chunkRatio
}

// ---- log ----------------------------------------------------------------------------------------------------
/**
 * Log entry header (64 bytes, at the start of an entry's first 4 KiB sector):
 * 0 "loge"; 4 Checksum (CRC-32C over EntryLength bytes with this field zero); 8 EntryLength u32 (multiple of
 * 4 KiB); 12 Tail u32 (log offset of the oldest entry still needed); 16 SequenceNumber u64 (> 0, +1 per entry);
 * 24 DescriptorCount u32; 28 reserved u32; 32 LogGuid; 48 FlushedFileOffset u64 (file size that must exist);
 * 56 LastFileOffset u64 (file size after the entry is applied). Descriptors (32 bytes each) follow at 64, the
 * header + descriptors padded to 4 KiB; then one 4 KiB data sector per data descriptor.
 */
export interface LogEntryHeader {
  checksum: number
  entryLength: number
  tail: number
  sequenceNumber: bigint
  descriptorCount: number
  logGuid: string
  flushedFileOffset: number
  lastFileOffset: number
}

export const LOG_ENTRY_HEADER_SIZE = 64
export const LOG_DESCRIPTOR_SIZE = 32

export function decodeLogEntryHeader(b: Uint8Array, off: number): LogEntryHeader | null {
  if (!hasSignature(b, off, 'loge')) return null
  return {
    checksum: readU32(b, off + 4),
    entryLength: readU32(b, off + 8),
    tail: readU32(b, off + 12),
    sequenceNumber: readU64Big(b, off + 16),
    descriptorCount: readU32(b, off + 24),
    logGuid: readGuid(b, off + 32),
    flushedFileOffset: readU64(b, off + 48),
    lastFileOffset: readU64(b, off + 56),
  }
}

/** Number of 4 KiB sectors the header and `n` descriptors occupy. */
export function descriptorSectors(n: number): number {
  return Math.ceil((LOG_ENTRY_HEADER_SIZE + n * LOG_DESCRIPTOR_SIZE) / LOG_SECTOR_SIZE)
}

/**
 * Descriptors: zero descriptor 0 "zero", 4 reserved, 8 ZeroLength u64, 16 FileOffset u64, 24 SequenceNumber u64;
 * data descriptor 0 "desc", 4 TrailingBytes (last 4 bytes of the sector), 8 LeadingBytes (first 8 bytes),
 * 16 FileOffset u64 (4 KiB aligned), 24 SequenceNumber u64. Data sector: 0 "data", 4 SequenceHigh u32,
 * 8..4091 the sector's bytes 8..4091, 4092 SequenceLow u32.
 */
export type LogDescriptor =
  | { kind: 'zero'; fileOffset: number; zeroLength: number; sequenceNumber: bigint }
  | { kind: 'data'; fileOffset: number; leading: Uint8Array; trailing: Uint8Array; sequenceNumber: bigint }

export function hex32(v: number): string {
  return (v >>> 0).toString(16).padStart(8, '0')
}
