/**
 * VHD (Virtual Hard Disk Image Format Specification v1.0) on-disk structures, all big-endian.
 *
 *   fixed:        [ data ............................................ ][ footer 512 ]
 *   dynamic/diff: [ footer copy 512 ][ dynamic header 1024 ][ BAT ][ locators ][ block ][ block ]...[ footer 512 ]
 *   block:        [ sector bitmap, 1 bit per 512 B sector, MSB first, padded to 512 ][ BlockSize bytes of data ]
 *
 * This module only decodes and encodes the structures (footer, dynamic header, parent locator entries) and the
 * helpers every VHD module shares (checksum, CHS geometry, GUID text, timestamps). Decoding never throws on
 * content: it returns the fields as found and the validation lives with the callers, which know the file name
 * and can name the structure and offset in a FormatError.
 */

export const SECTOR = 512
export const FOOTER_SIZE = 512
export const DYNAMIC_HEADER_SIZE = 1024
/** BAT entry of a block that is not allocated. */
export const BAT_UNALLOCATED = 0xffffffff
/** Largest disk the VHD specification allows (2040 GiB); we accept files up to the CHS limit's bytes too. */
export const VHD_MAX_SIZE = 2040 * 1024 ** 3
/** Seconds between the Unix epoch and the VHD epoch (2000-01-01T00:00:00Z). */
export const VHD_EPOCH_SECONDS = 946_684_800

export const enum VhdDiskType {
  Fixed = 2,
  Dynamic = 3,
  Differencing = 4,
}

/** Parent locator platform codes (big-endian ASCII). */
export const PlatformCode = {
  None: 0,
  Wi2r: 0x57693272, // deprecated relative path
  Wi2k: 0x5769326b, // deprecated absolute path
  W2ru: 0x57327275, // relative Windows path, UTF-16LE
  W2ku: 0x57326b75, // absolute Windows path, UTF-16LE
  Mac: 0x4d616320, // Mac OS alias blob
  MacX: 0x4d616358, // file:// URL, UTF-8
} as const

/** Hard Disk Footer (512 bytes; the specification calls the first 85 bytes meaningful, the rest reserved). */
export interface VhdFooter {
  cookie: string // 0: "conectix"
  features: number // 8: bit 1 "reserved" must be set; bit 0 "temporary"
  formatVersion: number // 12: 0x00010000
  dataOffset: number // 16: u64, offset of the dynamic header; all ones (NaN here) for fixed disks
  timestamp: number // 24: u32 seconds since 2000-01-01 UTC
  creatorApp: string // 28: 4 ASCII characters, e.g. "win ", "qemu", "vpc "
  creatorVersion: number // 32: u32
  creatorHostOs: string // 36: "Wi2k" or "Mac "
  originalSize: number // 40: u64 size at creation
  currentSize: number // 48: u64 current virtual size in bytes
  cylinders: number // 56: u16
  heads: number // 58: u8
  sectorsPerTrack: number // 59: u8
  diskType: number // 60: u32, 2 fixed, 3 dynamic, 4 differencing
  checksum: number // 64: u32 one's complement of the byte sum with this field zeroed
  uniqueId: Uint8Array // 68: 16 bytes
  savedState: number // 84: u8, 1 while a VM's saved state depends on this disk
}

/** Dynamic Disk Header (1024 bytes at footer.dataOffset). */
export interface VhdDynamicHeader {
  cookie: string // 0: "cxsparse"
  dataOffset: number // 8: u64, unused, all ones (NaN here)
  tableOffset: number // 16: u64 absolute offset of the BAT
  headerVersion: number // 24: 0x00010000
  maxTableEntries: number // 28: u32 number of BAT entries
  blockSize: number // 32: u32 bytes of data per block (2 MiB by default), a power of two
  checksum: number // 36: u32 one's complement of the byte sum with this field zeroed
  parentUniqueId: Uint8Array // 40: 16 bytes, the parent footer's uniqueId (differencing)
  parentTimestamp: number // 56: u32 parent's modification time, VHD epoch
  // 60: u32 reserved
  parentName: string // 64: 512 bytes UTF-16BE, NUL padded
  locators: VhdParentLocator[] // 576: 8 entries of 24 bytes
  // 768: 256 bytes reserved
}

/** Parent Locator Entry (24 bytes). */
export interface VhdParentLocator {
  platformCode: number // 0: u32 PlatformCode
  platformDataSpace: number // 4: u32 space reserved for the locator (sectors per the spec; some writers use bytes)
  platformDataLength: number // 8: u32 bytes of locator data
  // 12: u32 reserved
  platformDataOffset: number // 16: u64 absolute file offset of the locator data
}

/** u64 as a number; NaN when above 2^53 - 1 so that every later range check fails closed. */
function readU64(b: Buffer, off: number): number {
  const hi = b.readUInt32BE(off)
  if (hi >= 0x200000) return NaN
  return hi * 0x1_0000_0000 + b.readUInt32BE(off + 4)
}

function writeU64(b: Buffer, off: number, v: number): void {
  if (Number.isNaN(v)) {
    b.writeUInt32BE(0xffffffff, off)
    b.writeUInt32BE(0xffffffff, off + 4)
    return
  }
  b.writeUInt32BE(Math.floor(v / 0x1_0000_0000), off)
  b.writeUInt32BE(v % 0x1_0000_0000, off + 4)
}

/** One's complement of the sum of all bytes of `b`, skipping the 4 checksum bytes at `checksumOffset`. */
export function vhdChecksum(b: Uint8Array, checksumOffset: number): number {
  let sum = 0
  for (let i = 0; i < b.length; i++) {
    if (i >= checksumOffset && i < checksumOffset + 4) continue
    sum += b[i]!
  }
  return ~sum >>> 0
}

export function decodeFooter(buf: Uint8Array): VhdFooter {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength)
  return {
    cookie: b.toString('latin1', 0, 8),
    features: b.readUInt32BE(8),
    formatVersion: b.readUInt32BE(12),
    dataOffset: readU64(b, 16),
    timestamp: b.readUInt32BE(24),
    creatorApp: b.toString('latin1', 28, 32),
    creatorVersion: b.readUInt32BE(32),
    creatorHostOs: b.toString('latin1', 36, 40),
    originalSize: readU64(b, 40),
    currentSize: readU64(b, 48),
    cylinders: b.readUInt16BE(56),
    heads: b[58]!,
    sectorsPerTrack: b[59]!,
    diskType: b.readUInt32BE(60),
    checksum: b.readUInt32BE(64),
    uniqueId: Uint8Array.from(b.subarray(68, 84)),
    savedState: b[84]!,
  }
}

/** Encode a footer, computing its checksum (the `checksum` field of `f` is ignored). */
export function encodeFooter(f: VhdFooter): Buffer {
  const b = Buffer.alloc(FOOTER_SIZE)
  b.write(f.cookie, 0, 8, 'latin1')
  b.writeUInt32BE(f.features >>> 0, 8)
  b.writeUInt32BE(f.formatVersion >>> 0, 12)
  writeU64(b, 16, f.dataOffset)
  b.writeUInt32BE(f.timestamp >>> 0, 24)
  b.write(f.creatorApp.padEnd(4, ' ').slice(0, 4), 28, 4, 'latin1')
  b.writeUInt32BE(f.creatorVersion >>> 0, 32)
  b.write(f.creatorHostOs.padEnd(4, ' ').slice(0, 4), 36, 4, 'latin1')
  writeU64(b, 40, f.originalSize)
  writeU64(b, 48, f.currentSize)
  b.writeUInt16BE(f.cylinders, 56)
  b[58] = f.heads
  b[59] = f.sectorsPerTrack
  b.writeUInt32BE(f.diskType >>> 0, 60)
  b.set(f.uniqueId.subarray(0, 16), 68)
  b[84] = f.savedState
  b.writeUInt32BE(vhdChecksum(b, 64), 64)
  return b
}

export function decodeDynamicHeader(buf: Uint8Array): VhdDynamicHeader {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength)
  const locators: VhdParentLocator[] = []
  for (let i = 0; i < 8; i++) {
    const o = 576 + i * 24
    locators.push({
      platformCode: b.readUInt32BE(o),
      platformDataSpace: b.readUInt32BE(o + 4),
      platformDataLength: b.readUInt32BE(o + 8),
      platformDataOffset: readU64(b, o + 16),
    })
  }
  return {
    cookie: b.toString('latin1', 0, 8),
    dataOffset: readU64(b, 8),
    tableOffset: readU64(b, 16),
    headerVersion: b.readUInt32BE(24),
    maxTableEntries: b.readUInt32BE(28),
    blockSize: b.readUInt32BE(32),
    checksum: b.readUInt32BE(36),
    parentUniqueId: Uint8Array.from(b.subarray(40, 56)),
    parentTimestamp: b.readUInt32BE(56),
    parentName: decodeUtf16(b.subarray(64, 576), 'be'),
    locators,
  }
}

/** Encode a dynamic header, computing its checksum. */
export function encodeDynamicHeader(h: VhdDynamicHeader): Buffer {
  const b = Buffer.alloc(DYNAMIC_HEADER_SIZE)
  b.write(h.cookie, 0, 8, 'latin1')
  writeU64(b, 8, h.dataOffset)
  writeU64(b, 16, h.tableOffset)
  b.writeUInt32BE(h.headerVersion >>> 0, 24)
  b.writeUInt32BE(h.maxTableEntries >>> 0, 28)
  b.writeUInt32BE(h.blockSize >>> 0, 32)
  b.set(h.parentUniqueId.subarray(0, 16), 40)
  b.writeUInt32BE(h.parentTimestamp >>> 0, 56)
  const name = encodeUtf16(h.parentName, 'be')
  b.set(name.subarray(0, 512), 64)
  h.locators.slice(0, 8).forEach((l, i) => {
    const o = 576 + i * 24
    b.writeUInt32BE(l.platformCode >>> 0, o)
    b.writeUInt32BE(l.platformDataSpace >>> 0, o + 4)
    b.writeUInt32BE(l.platformDataLength >>> 0, o + 8)
    writeU64(b, o + 16, l.platformDataOffset)
  })
  b.writeUInt32BE(vhdChecksum(b, 36), 36)
  return b
}

/** UTF-16 text without the trailing NULs. */
export function decodeUtf16(b: Uint8Array, endian: 'le' | 'be'): string {
  let s = ''
  for (let i = 0; i + 1 < b.length; i += 2) {
    const c = endian === 'be' ? (b[i]! << 8) | b[i + 1]! : b[i]! | (b[i + 1]! << 8)
    if (c === 0) break
    s += String.fromCharCode(c)
  }
  return s
}

export function encodeUtf16(s: string, endian: 'le' | 'be'): Buffer {
  const b = Buffer.alloc(s.length * 2)
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (endian === 'be') b.writeUInt16BE(c, i * 2)
    else b.writeUInt16LE(c, i * 2)
  }
  return b
}

/**
 * CHS geometry for a size (the algorithm in the VHD specification's appendix): the largest cylinders*heads*sectors
 * product that fits, capped at 65535 x 16 x 255 sectors (about 127 GiB). Larger disks keep the cap.
 */
export function chsGeometry(sizeBytes: number): { cylinders: number; heads: number; sectorsPerTrack: number } {
  let totalSectors = Math.floor(sizeBytes / SECTOR)
  if (totalSectors > 65535 * 16 * 255) totalSectors = 65535 * 16 * 255
  let spt: number
  let heads: number
  let cth: number
  if (totalSectors >= 65535 * 16 * 63) {
    spt = 255
    heads = 16
    cth = Math.floor(totalSectors / spt)
  } else {
    spt = 17
    cth = Math.floor(totalSectors / spt)
    heads = Math.max(4, Math.floor((cth + 1023) / 1024))
    if (cth >= heads * 1024 || heads > 16) {
      spt = 31
      heads = 16
      cth = Math.floor(totalSectors / spt)
    }
    if (cth >= heads * 1024) {
      spt = 63
      heads = 16
      cth = Math.floor(totalSectors / spt)
    }
  }
  return { cylinders: Math.floor(cth / heads), heads, sectorsPerTrack: spt }
}

/** Creator applications whose current-size field qemu trusts (it sizes other VHDs from the CHS geometry). */
export const SIZE_TRUSTED_CREATORS = ['win ', 'qem2', 'd2v ', 'CTXS', 'tap\0']

/**
 * The 16 unique-id bytes as GUID text, in stored byte order (the VHD specification stores a UUID as plain bytes;
 * libvhdi and qemu print it this way too).
 */
export function uuidText(b: Uint8Array): string {
  const h = Buffer.from(b.subarray(0, 16)).toString('hex')
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`
}

/** Bytes of sector bitmap in front of each block: one bit per sector, padded to whole sectors. */
export function bitmapBytesFor(blockSize: number): number {
  return Math.ceil(blockSize / SECTOR / 8 / SECTOR) * SECTOR
}

/** Current time as a VHD timestamp (seconds since 2000-01-01 UTC). */
export function vhdNow(): number {
  return Math.max(0, Math.floor(Date.now() / 1000) - VHD_EPOCH_SECONDS)
}
