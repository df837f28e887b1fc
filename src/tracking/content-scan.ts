/**
 * Change source: content scan. Hash every block of the disk, compare with the hash map saved by the previous scan,
 * report the blocks whose hash differs. It reads the whole disk, so it is the fallback when tracking was lost, and
 * the independent check of tracking: every block the scan finds changed must be inside what tracking reports for
 * the same interval (verifyAgainst).
 *
 * Hash: SHA-1 by default. This is change detection between two states of one's own disk, not authentication: a
 * 160-bit digest makes an accidental collision (2^-160 per block pair) irrelevant, and node's SHA-1 ran at about
 * 590 MiB/s vs 165 MiB/s for SHA-256 on the build machine (no SHA extensions), so the scan stays disk-bound.
 * SHA-256 can be chosen where a deliberate collision by someone able to write the disk matters.
 *
 * Hash map file (little-endian), written atomically:
 *   0   magic        "HVCBTHM1"
 *   8   u32          format version (1)
 *   12  u32          digest length in bytes (20 for sha1, 32 for sha256)
 *   16  f64          blockBytes
 *   24  f64          diskSizeBytes
 *   32  f64          scan time (ms since the epoch)
 *   40  char[16]     algorithm name, NUL padded
 *   56  char[40]     reference point id the scan was taken at (optional, NUL padded)
 *   96  u32          CRC-32 of the digest bytes
 *   100 u32          CRC-32 of bytes 0..99
 *   104 digests      one per block, in block order
 */
import { createHash } from 'node:crypto'
import fsp from 'node:fs/promises'
import { crc32 } from 'node:zlib'
import type { VirtualDisk } from '../formats/virtual-disk.js'
import { writeFileAtomic } from './atomic-file.js'
import { subtractRanges, type ByteRange } from './ranges.js'

export type ScanAlgorithm = 'sha1' | 'sha256'
const DIGEST_BYTES: Record<ScanAlgorithm, number> = { sha1: 20, sha256: 32 }
const HEADER_BYTES = 104
const MAGIC = 'HVCBTHM1'
/** A hash map larger than this (2^26 blocks = 4 TiB at 64 KiB) is refused rather than allocated blindly. */
const MAX_BLOCKS = 2 ** 30

export interface HashMap {
  algorithm: ScanAlgorithm
  blockBytes: number
  diskSizeBytes: number
  scannedAt: number
  refPointId: string
  /** blockCount * digestBytes bytes. */
  digests: Uint8Array
}

export class HashMapFormatError extends Error {
  override readonly name = 'HashMapFormatError'
}

export interface ScanOptions {
  algorithm?: ScanAlgorithm
  blockBytes?: number
  refPointId?: string
  signal?: AbortSignal
  progress?(doneBytes: number, totalBytes: number): void
}

/** Hash every block of `disk`. */
export async function scanDisk(disk: Pick<VirtualDisk, 'size' | 'read'>, options: ScanOptions = {}): Promise<HashMap> {
  const algorithm = options.algorithm ?? 'sha1'
  const blockBytes = options.blockBytes ?? 64 * 1024
  if (!(algorithm in DIGEST_BYTES)) throw new RangeError(`unknown hash algorithm ${algorithm}`)
  if (!Number.isSafeInteger(blockBytes) || blockBytes < 512 || (blockBytes & (blockBytes - 1)) !== 0) {
    throw new RangeError(`scan block size ${blockBytes} must be a power of two >= 512`)
  }
  const dl = DIGEST_BYTES[algorithm]
  const blocks = Math.ceil(disk.size / blockBytes)
  if (blocks > MAX_BLOCKS) throw new RangeError(`disk of ${disk.size} bytes needs too many ${blockBytes}-byte blocks`)
  const digests = new Uint8Array(blocks * dl)
  const perRead = Math.max(1, Math.floor((4 * 1024 * 1024) / blockBytes))
  const buf = new Uint8Array(perRead * blockBytes)
  for (let b = 0; b < blocks; b += perRead) {
    options.signal?.throwIfAborted()
    const start = b * blockBytes
    const len = Math.min(buf.length, disk.size - start)
    const piece = buf.subarray(0, len)
    await disk.read(start, piece)
    for (let k = 0; k * blockBytes < len; k++) {
      const block = piece.subarray(k * blockBytes, Math.min(len, (k + 1) * blockBytes))
      digests.set(createHash(algorithm).update(block).digest(), (b + k) * dl)
    }
    options.progress?.(start + len, disk.size)
  }
  return { algorithm, blockBytes, diskSizeBytes: disk.size, scannedAt: Date.now(), refPointId: options.refPointId ?? '', digests }
}

/** Byte ranges of the blocks whose digest differs between two maps of the same disk geometry. */
export function compareHashMaps(before: HashMap, after: HashMap): ByteRange[] {
  if (before.algorithm !== after.algorithm || before.blockBytes !== after.blockBytes || before.diskSizeBytes !== after.diskSizeBytes) {
    throw new RangeError(`hash maps differ in algorithm, block size or disk size ` +
      `(${before.algorithm}/${before.blockBytes}/${before.diskSizeBytes} vs ${after.algorithm}/${after.blockBytes}/${after.diskSizeBytes})`)
  }
  const dl = DIGEST_BYTES[after.algorithm]
  const a = Buffer.from(before.digests.buffer, before.digests.byteOffset, before.digests.length)
  const b = Buffer.from(after.digests.buffer, after.digests.byteOffset, after.digests.length)
  const out: ByteRange[] = []
  const blocks = after.digests.length / dl
  for (let i = 0; i < blocks; i++) {
    if (a.compare(b, i * dl, (i + 1) * dl, i * dl, (i + 1) * dl) === 0) continue
    const offset = i * after.blockBytes
    const length = Math.min(after.blockBytes, after.diskSizeBytes - offset)
    const last = out[out.length - 1]
    if (last && last.offset + last.length === offset) last.length += length
    else out.push({ offset, length })
  }
  return out
}

/** Ranges of `found` (e.g. a content-scan diff) not covered by `reported` (tracking's answer): should be empty. */
export const uncovered = subtractRanges

export async function saveHashMap(file: string, map: HashMap): Promise<void> {
  const out = new Uint8Array(HEADER_BYTES + map.digests.length)
  const dv = new DataView(out.buffer)
  out.set(Buffer.from(MAGIC, 'latin1'), 0)
  dv.setUint32(8, 1, true)
  dv.setUint32(12, DIGEST_BYTES[map.algorithm], true)
  dv.setFloat64(16, map.blockBytes, true)
  dv.setFloat64(24, map.diskSizeBytes, true)
  dv.setFloat64(32, map.scannedAt, true)
  out.set(Buffer.from(map.algorithm, 'latin1').subarray(0, 16), 40)
  out.set(Buffer.from(map.refPointId, 'latin1').subarray(0, 40), 56)
  dv.setUint32(96, crc32(map.digests), true)
  dv.setUint32(100, crc32(out.subarray(0, 100)), true)
  out.set(map.digests, HEADER_BYTES)
  await writeFileAtomic(file, out)
}

export async function loadHashMap(file: string): Promise<HashMap> {
  const data = await fsp.readFile(file)
  const fail = (why: string): never => { throw new HashMapFormatError(`${file}: ${why}`) }
  if (data.length < HEADER_BYTES || data.toString('latin1', 0, 8) !== MAGIC) fail('not a hash map')
  if (data.readUInt32LE(100) !== crc32(data.subarray(0, 100))) fail('header checksum mismatch')
  if (data.readUInt32LE(8) !== 1) fail(`version ${data.readUInt32LE(8)} not supported`)
  const algorithm = data.toString('latin1', 40, 56).replace(/\0+$/, '') as ScanAlgorithm
  if (!(algorithm in DIGEST_BYTES) || DIGEST_BYTES[algorithm] !== data.readUInt32LE(12)) fail(`unknown algorithm ${algorithm}`)
  const blockBytes = data.readDoubleLE(16)
  const diskSizeBytes = data.readDoubleLE(24)
  if (!Number.isSafeInteger(blockBytes) || blockBytes < 512 || !Number.isSafeInteger(diskSizeBytes) || diskSizeBytes < 0) fail('bad geometry')
  const expect = Math.ceil(diskSizeBytes / blockBytes) * DIGEST_BYTES[algorithm]
  if (data.length !== HEADER_BYTES + expect) fail(`size ${data.length} does not match ${HEADER_BYTES + expect}`)
  const digests = new Uint8Array(data.subarray(HEADER_BYTES))
  if (data.readUInt32LE(96) !== crc32(digests)) fail('digest checksum mismatch')
  return {
    algorithm, blockBytes, diskSizeBytes, scannedAt: data.readDoubleLE(32),
    refPointId: data.toString('latin1', 56, 96).replace(/\0+$/, ''), digests,
  }
}
