/**
 * Load and validate the fixed-position structures of a VHD: footer (at the end, or its copy at offset 0 when the
 * end is damaged), dynamic header, and parent locators. Every later VHD module (inspect, open, check) starts here,
 * so the rules for hostile input live in one place: every offset and length read from the file is checked against
 * the file size before it is used, table sizes are bounded by the file (never by a field alone), and each failure
 * is a FormatError naming the structure and its offset.
 */
import type { FileHandle } from 'node:fs/promises'
import { FormatError } from '../../engine/errors.js'
import {
  DYNAMIC_HEADER_SIZE,
  FOOTER_SIZE,
  PlatformCode,
  SECTOR,
  VhdDiskType,
  decodeDynamicHeader,
  decodeFooter,
  decodeUtf16,
  vhdChecksum,
  type VhdDynamicHeader,
  type VhdFooter,
} from './vhd-layout.js'

/** Largest virtual size accepted when reading (the VirtualDisk contract's 64 TiB; creation stops at 2040 GiB). */
export const VHD_READ_MAX_SIZE = 64 * 1024 ** 4
/** Largest parent locator we read (a Windows path is at most 32767 UTF-16 units). */
const MAX_LOCATOR_BYTES = 65536

export interface VhdMetadata {
  path: string
  fileSize: number
  footer: VhdFooter
  /** Where the footer in use was found: the end of the file, or the copy at offset 0 (end damaged). */
  footerSource: 'end' | 'copy'
  /** Offset of the footer at the end of the file, or null when the end holds no valid footer. */
  endFooterOffset: number | null
  /** Dynamic and differencing disks only. */
  dynamicHeader: VhdDynamicHeader | null
  /** Offset just past the last byte of data a block may use (the end footer's offset, or the file size). */
  dataEnd: number
  /** Parent references recorded in the file, in the order to try them (differencing only). */
  parentRefs: VhdParentRef[]
}

export interface VhdParentRef {
  kind: 'W2ru' | 'W2ku' | 'Wi2r' | 'Wi2k' | 'MacX' | 'parentName'
  path: string
}

/** Read exactly `length` bytes at `position`, or throw a FormatError naming `structure`. */
export async function readExact(fh: FileHandle, file: string, position: number, length: number, structure: string): Promise<Buffer> {
  const buf = Buffer.alloc(length)
  let done = 0
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, position + done)
    if (bytesRead === 0) {
      throw new FormatError(file, structure, position, `file ends after ${done} of ${length} bytes`)
    }
    done += bytesRead
  }
  return buf
}

/** Problems in a footer, as text (empty when valid). */
export function footerProblems(f: VhdFooter, raw: Uint8Array): string[] {
  const out: string[] = []
  if (f.cookie !== 'conectix') out.push(`cookie is ${JSON.stringify(f.cookie)}, expected "conectix"`)
  const sum = vhdChecksum(raw, 64)
  if (sum !== f.checksum) out.push(`checksum is 0x${hex(f.checksum)}, computed 0x${hex(sum)}`)
  if (f.diskType !== VhdDiskType.Fixed && f.diskType !== VhdDiskType.Dynamic && f.diskType !== VhdDiskType.Differencing) {
    out.push(`disk type ${f.diskType} is not 2 (fixed), 3 (dynamic) or 4 (differencing)`)
  }
  if (f.formatVersion >>> 16 !== 1) out.push(`format version 0x${hex(f.formatVersion)} is not 1.x`)
  if (!(f.currentSize >= 0 && f.currentSize <= VHD_READ_MAX_SIZE)) out.push(`current size ${f.currentSize} is out of range`)
  else if (f.currentSize % SECTOR !== 0) out.push(`current size ${f.currentSize} is not a multiple of ${SECTOR}`)
  return out
}

/**
 * Read the footer and dynamic header of an open VHD file. Throws FormatError when the file is not a usable VHD.
 * `allowCopy` lets a damaged end footer fall back to the copy at offset 0 (dynamic/differencing disks keep one).
 */
export async function loadVhdMetadata(fh: FileHandle, path: string): Promise<VhdMetadata> {
  const fileSize = (await fh.stat()).size
  if (fileSize < FOOTER_SIZE) {
    throw new FormatError(path, 'VHD footer', 0, `file is ${fileSize} bytes, shorter than the ${FOOTER_SIZE}-byte footer`)
  }
  const endOffset = fileSize - FOOTER_SIZE
  const endRaw = await readExact(fh, path, endOffset, FOOTER_SIZE, 'VHD footer')
  const endFooter = decodeFooter(endRaw)
  const endProblems = footerProblems(endFooter, endRaw)
  let footer = endFooter
  let footerSource: 'end' | 'copy' = 'end'
  if (endProblems.length > 0) {
    // A crash while a block was being appended can leave data where the footer belongs: the copy at 0 is
    // authoritative then (only dynamic and differencing disks have one).
    const copyRaw = await readExact(fh, path, 0, FOOTER_SIZE, 'VHD footer copy')
    const copy = decodeFooter(copyRaw)
    const copyProblems = footerProblems(copy, copyRaw)
    if (copyProblems.length > 0 || copy.diskType === VhdDiskType.Fixed) {
      throw new FormatError(path, 'VHD footer', endOffset, endProblems.join('; '))
    }
    footer = copy
    footerSource = 'copy'
  }
  const endFooterOffset = footerSource === 'end' ? endOffset : null
  const dataEnd = endFooterOffset ?? fileSize
  if (footer.diskType === VhdDiskType.Fixed) {
    if (footer.currentSize > dataEnd) {
      throw new FormatError(path, 'VHD footer', endOffset, `fixed disk of ${footer.currentSize} bytes but the file holds only ${dataEnd} bytes of data`)
    }
    return { path, fileSize, footer, footerSource, endFooterOffset, dynamicHeader: null, dataEnd, parentRefs: [] }
  }
  const footerAt = footerSource === 'end' ? endOffset : 0
  const dhOffset = footer.dataOffset
  if (!(dhOffset >= FOOTER_SIZE && dhOffset + DYNAMIC_HEADER_SIZE <= fileSize)) {
    throw new FormatError(path, 'VHD footer', footerAt + 16, `dynamic header offset ${dhOffset} lies outside the file (${fileSize} bytes)`)
  }
  const dhRaw = await readExact(fh, path, dhOffset, DYNAMIC_HEADER_SIZE, 'VHD dynamic header')
  const dh = decodeDynamicHeader(dhRaw)
  const dhProblems = dynamicHeaderProblems(dh, dhRaw, footer, fileSize)
  if (dhProblems.length > 0) throw new FormatError(path, 'VHD dynamic header', dhOffset, dhProblems.join('; '))
  const parentRefs = footer.diskType === VhdDiskType.Differencing ? await readParentRefs(fh, path, dh, dhOffset, fileSize) : []
  return { path, fileSize, footer, footerSource, endFooterOffset, dynamicHeader: dh, dataEnd, parentRefs }
}

/** Problems in a dynamic header, as text (empty when valid). */
export function dynamicHeaderProblems(dh: VhdDynamicHeader, raw: Uint8Array, footer: VhdFooter, fileSize: number): string[] {
  const out: string[] = []
  if (dh.cookie !== 'cxsparse') return [`cookie is ${JSON.stringify(dh.cookie)}, expected "cxsparse"`]
  const sum = vhdChecksum(raw, 36)
  if (sum !== dh.checksum) out.push(`checksum is 0x${hex(dh.checksum)}, computed 0x${hex(sum)}`)
  if (dh.headerVersion >>> 16 !== 1) out.push(`header version 0x${hex(dh.headerVersion)} is not 1.x`)
  const bs = dh.blockSize
  if (!(bs >= SECTOR && bs <= 256 * 1024 * 1024 && (bs & (bs - 1)) === 0)) {
    out.push(`block size ${bs} is not a power of two between 512 bytes and 256 MiB`)
    return out
  }
  const needed = Math.ceil(footer.currentSize / bs)
  if (dh.maxTableEntries < needed) {
    out.push(`BAT has ${dh.maxTableEntries} entries but ${needed} blocks of ${bs} bytes are needed for ${footer.currentSize} bytes`)
  }
  if (!(dh.tableOffset >= FOOTER_SIZE && dh.tableOffset + needed * 4 <= fileSize)) {
    out.push(`BAT at offset ${dh.tableOffset} with ${needed} entries lies outside the file (${fileSize} bytes)`)
  }
  return out
}

const refKinds: [number, VhdParentRef['kind']][] = [
  [PlatformCode.W2ru, 'W2ru'],
  [PlatformCode.W2ku, 'W2ku'],
  [PlatformCode.Wi2r, 'Wi2r'],
  [PlatformCode.Wi2k, 'Wi2k'],
  [PlatformCode.MacX, 'MacX'],
]

/** Parent references in lookup order: W2ru (relative), W2ku (absolute), then the deprecated codes, then the name. */
async function readParentRefs(fh: FileHandle, path: string, dh: VhdDynamicHeader, dhOffset: number, fileSize: number): Promise<VhdParentRef[]> {
  const refs: VhdParentRef[] = []
  for (const [code, kind] of refKinds) {
    for (let i = 0; i < 8; i++) {
      const l = dh.locators[i]!
      if (l.platformCode !== code || l.platformDataLength === 0) continue
      const entryOffset = dhOffset + 576 + i * 24
      if (l.platformDataLength > MAX_LOCATOR_BYTES) {
        throw new FormatError(path, `VHD parent locator ${i} (${kind})`, entryOffset, `data length ${l.platformDataLength} exceeds ${MAX_LOCATOR_BYTES} bytes`)
      }
      if (!(l.platformDataOffset >= FOOTER_SIZE && l.platformDataOffset + l.platformDataLength <= fileSize)) {
        throw new FormatError(path, `VHD parent locator ${i} (${kind})`, entryOffset, `data at offset ${l.platformDataOffset} (+${l.platformDataLength}) lies outside the file (${fileSize} bytes)`)
      }
      const data = await readExact(fh, path, l.platformDataOffset, l.platformDataLength, `VHD parent locator ${i} data`)
      const text = kind === 'MacX' ? decodeMacUrl(data) : kind === 'W2ru' || kind === 'W2ku' ? decodeUtf16(data, 'le') : data.toString('latin1').replace(/\0.*$/s, '')
      if (text.length > 0) refs.push({ kind, path: text })
    }
  }
  if (dh.parentName.length > 0) refs.push({ kind: 'parentName', path: dh.parentName })
  return refs
}

function decodeMacUrl(data: Buffer): string {
  const s = data.toString('utf8').replace(/\0.*$/s, '')
  if (!s.startsWith('file://')) return s
  try {
    return decodeURIComponent(s.slice('file://'.length).replace(/^localhost/, ''))
  } catch {
    return s
  }
}

function hex(n: number): string {
  return (n >>> 0).toString(16).padStart(8, '0')
}
