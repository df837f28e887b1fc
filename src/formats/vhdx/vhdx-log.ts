/**
 * The VHDX metadata log: replay on open, and the writer that makes BAT / sector-bitmap updates atomic.
 *
 * Replay (MS-VHDX 2.3.3): scan every 4 KiB position of the circular log for valid entries (signature, CRC-32C over
 * the whole entry, LogGuid equal to the header's, descriptors and data sectors carrying the entry's sequence
 * number); take the valid entry with the highest sequence number whose chain from its Tail back to itself is
 * complete and consecutive; apply those entries oldest first. A header whose LogGuid is set but whose log holds no
 * valid entry is a crash between setting the GUID and writing the first entry: nothing to replay.
 *
 * Writer policy: every entry is applied in place and flushed before the next is written, so each entry is its own
 * tail (Tail = its own offset) and a sequence is always one entry long; entries are laid out one after another
 * round the ring and start again at 0 when the next one does not fit before the end. Replaying an entry that was
 * already applied rewrites the same bytes, so a crash at any point is safe.
 */
import { FormatError } from '../../engine/errors.js'
import { crc32c, crc32cWithZeroedField } from '../crc32c.js'
import { hasSignature, readU32, readU64, readU64Big, writeAscii, writeU32, writeU64, writeU64Big } from './byte-cursor.js'
import type { VhdxIo } from './vhdx-io.js'
import {
  type LogDescriptor, type LogEntryHeader, GUID_ZERO, LOG_DESCRIPTOR_SIZE, LOG_ENTRY_HEADER_SIZE, LOG_SECTOR_SIZE,
  MAX_VIRTUAL_DISK_SIZE, decodeLogEntryHeader, descriptorSectors, writeGuid,
} from './vhdx-layout.js'
import type { VhdxHeaders } from './vhdx-structure.js'

/** Largest log this reader loads into memory (Hyper-V and qemu use 1 MiB; the field allows 4 GiB). */
export const MAX_LOG_LENGTH = 256 * 1024 * 1024
/** Cap on sectors a replay may touch (4 GiB worth), so a hostile zero descriptor cannot exhaust memory or time. */
const MAX_OVERLAY_SECTORS = 1 << 20

interface ParsedEntry {
  position: number
  header: LogEntryHeader
  descriptors: LogDescriptor[]
  /** Data sector payloads in descriptor order (4 KiB each, already reassembled). */
  sectors: Uint8Array[]
}

export class LogBudgetError extends Error {
  constructor() {
    super('overlapping candidate log entries exceed the checksum budget (8x the log length)')
  }
}

export interface ReplayResult {
  /** Entries applied (0 when the log was empty). */
  entries: number
  /** Highest sequence number seen, for a writer continuing the log. */
  lastSequence: bigint
}

/** Bytes [pos, pos+len) of the ring, wrapping at its end. */
function ringSlice(log: Uint8Array, pos: number, len: number): Uint8Array {
  if (pos + len <= log.length) return log.subarray(pos, pos + len)
  const out = new Uint8Array(len)
  const first = log.length - pos
  out.set(log.subarray(pos), 0)
  out.set(log.subarray(0, len - first), first)
  return out
}

/**
 * Parse and validate one entry at `pos`; null if it is not a valid entry of this log. `budget.bytes` is charged
 * for every byte checksummed, so that a hostile log with a candidate header at every 4 KiB, each claiming the whole
 * log, costs linear rather than quadratic time (the caller refuses the log when the budget runs out).
 */
export function parseLogEntry(log: Uint8Array, pos: number, logGuid: string, budget = { bytes: Infinity }): ParsedEntry | null {
  const h = decodeLogEntryHeader(log, pos)
  if (!h) return null
  if (h.entryLength < LOG_SECTOR_SIZE || h.entryLength % LOG_SECTOR_SIZE !== 0 || h.entryLength > log.length) return null
  if (h.tail % LOG_SECTOR_SIZE !== 0 || h.tail >= log.length || h.logGuid !== logGuid || h.sequenceNumber === 0n) return null
  if (!(h.flushedFileOffset <= MAX_VIRTUAL_DISK_SIZE * 2) || !(h.lastFileOffset <= MAX_VIRTUAL_DISK_SIZE * 2)) return null
  const descSectors = descriptorSectors(h.descriptorCount)
  if (descSectors * LOG_SECTOR_SIZE > h.entryLength) return null
  budget.bytes -= h.entryLength
  if (budget.bytes < 0) return null
  const entry = ringSlice(log, pos, h.entryLength)
  if (crc32cWithZeroedField(entry, 4) !== h.checksum) return null
  const descriptors: LogDescriptor[] = []
  const sectors: Uint8Array[] = []
  let dataIndex = descSectors
  for (let i = 0; i < h.descriptorCount; i++) {
    const o = LOG_ENTRY_HEADER_SIZE + i * LOG_DESCRIPTOR_SIZE
    const seq = readU64Big(entry, o + 24)
    const fileOffset = readU64(entry, o + 16)
    // Every descriptor targets space inside the file as the entry leaves it (LastFileOffset), past the header.
    if (seq !== h.sequenceNumber || !(fileOffset % LOG_SECTOR_SIZE === 0) || !(fileOffset >= 64 * 1024)) return null
    if (hasSignature(entry, o, 'zero')) {
      const zeroLength = readU64(entry, o + 8)
      if (!(zeroLength % LOG_SECTOR_SIZE === 0) || !(fileOffset + zeroLength <= h.lastFileOffset)) return null
      descriptors.push({ kind: 'zero', fileOffset, zeroLength, sequenceNumber: seq })
    } else if (hasSignature(entry, o, 'desc')) {
      if ((dataIndex + 1) * LOG_SECTOR_SIZE > h.entryLength || !(fileOffset + LOG_SECTOR_SIZE <= h.lastFileOffset)) return null
      const d = entry.subarray(dataIndex * LOG_SECTOR_SIZE, (dataIndex + 1) * LOG_SECTOR_SIZE)
      dataIndex++
      const seqHigh = BigInt(readU32(d, 4))
      const seqLow = BigInt(readU32(d, 4092))
      if (!hasSignature(d, 0, 'data') || ((seqHigh << 32n) | seqLow) !== h.sequenceNumber) return null
      const sector = new Uint8Array(LOG_SECTOR_SIZE)
      sector.set(entry.subarray(o + 8, o + 16), 0)
      sector.set(d.subarray(8, 4092), 8)
      sector.set(entry.subarray(o + 4, o + 8), 4092)
      const leading = sector.slice(0, 8)
      const trailing = sector.slice(4092)
      descriptors.push({ kind: 'data', fileOffset, leading, trailing, sequenceNumber: seq })
      sectors.push(sector)
    } else return null
  }
  return { position: pos, header: h, descriptors, sectors }
}

/**
 * Find the active sequence (oldest first), or [] if the log holds none. Throws a plain Error (mapped to a
 * FormatError by the caller) when candidate entries overlap so much that checksumming them would exceed eight
 * times the log's length: entries of a real log do not overlap.
 */
export function findActiveSequence(log: Uint8Array, logGuid: string): ParsedEntry[] {
  const valid = new Map<number, ParsedEntry>()
  const budget = { bytes: 8 * log.length }
  for (let pos = 0; pos < log.length; pos += LOG_SECTOR_SIZE) {
    const e = parseLogEntry(log, pos, logGuid, budget)
    if (budget.bytes < 0) throw new LogBudgetError()
    if (e) valid.set(pos, e)
  }
  const heads = [...valid.values()].sort((a, b) => (a.header.sequenceNumber < b.header.sequenceNumber ? 1 : -1))
  for (const head of heads) {
    const seq: ParsedEntry[] = []
    let e = valid.get(head.header.tail)
    while (e && seq.length <= valid.size) {
      const prev = seq[seq.length - 1]
      if (prev && e.header.sequenceNumber !== prev.header.sequenceNumber + 1n) break
      seq.push(e)
      if (e === head) return seq
      e = valid.get((e.position + e.header.entryLength) % log.length)
    }
  }
  return []
}

/**
 * Replay a non-empty log. `inMemory` puts the result in the io overlay (read-only opens); otherwise it is written
 * to the file and flushed. The caller then records LogGuid = 0 in the header (read-write) or leaves the file alone.
 */
export async function replayLog(io: VhdxIo, hdr: VhdxHeaders, opts: { inMemory: boolean }): Promise<ReplayResult> {
  const h = hdr.header
  if (h.logGuid === GUID_ZERO) return { entries: 0, lastSequence: 0n }
  const where = `header ${hdr.current + 1}`
  if (h.logLength > MAX_LOG_LENGTH) throw new FormatError(io.path, where, h.logOffset, `LogLength ${h.logLength} exceeds the ${MAX_LOG_LENGTH}-byte limit of this reader`)
  const log = await io.readNew(h.logOffset, h.logLength)
  let entries: ParsedEntry[]
  try {
    entries = findActiveSequence(log, h.logGuid)
  } catch (e) {
    if (e instanceof LogBudgetError) throw new FormatError(io.path, 'log', h.logOffset, e.message)
    throw e
  }
  if (entries.length === 0) return { entries: 0, lastSequence: 0n }
  const head = entries[entries.length - 1]!
  if (io.fileSize < head.header.flushedFileOffset) {
    throw new FormatError(io.path, 'log entry', h.logOffset + head.position, `file is ${io.fileSize} bytes, shorter than FlushedFileOffset ${head.header.flushedFileOffset}: data the log depends on is missing`)
  }
  try {
    await applyEntries(io, h.logOffset, entries, opts.inMemory)
  } catch (e) {
    // A valid-looking entry that points where this file system cannot write (EFBIG, EINVAL): the file is bad.
    const code = (e as NodeJS.ErrnoException).code
    if (code === 'EFBIG' || code === 'EINVAL') throw new FormatError(io.path, 'log entry', h.logOffset + head.position, `replay cannot write where the log says (${code})`)
    throw e
  }
  return { entries: entries.length, lastSequence: head.header.sequenceNumber }
}

/** Apply the sequence oldest first, to the file or (read-only) to the overlay. Zero descriptors are capped. */
async function applyEntries(io: VhdxIo, logOffset: number, entries: ParsedEntry[], inMemory: boolean): Promise<void> {
  const zero = new Uint8Array(LOG_SECTOR_SIZE)
  let sectors = 0
  const charge = (e: ParsedEntry, n: number) => {
    sectors += n
    if (sectors > MAX_OVERLAY_SECTORS) throw new FormatError(io.path, 'log entry', logOffset + e.position, 'descriptors cover more than the 4 GiB replay limit')
  }
  for (const e of entries) {
    let k = 0
    for (const d of e.descriptors) {
      if (d.kind === 'data') {
        const sector = e.sectors[k++]!
        charge(e, 1)
        if (inMemory) io.overlay.set(d.fileOffset, sector)
        else await io.write(sector, d.fileOffset)
      } else {
        charge(e, d.zeroLength / LOG_SECTOR_SIZE)
        if (inMemory) {
          for (let p = d.fileOffset; p < d.fileOffset + d.zeroLength; p += LOG_SECTOR_SIZE) io.overlay.set(p, zero)
        } else {
          const chunk = new Uint8Array(Math.min(d.zeroLength, 1024 * 1024))
          for (let p = d.fileOffset; p < d.fileOffset + d.zeroLength; p += chunk.length) {
            await io.write(chunk.subarray(0, Math.min(chunk.length, d.fileOffset + d.zeroLength - p)), p)
          }
        }
      }
    }
  }
  const last = entries[entries.length - 1]!.header.lastFileOffset
  if (last > io.fileSize) {
    if (!inMemory) await io.fh.truncate(last)
    io.fileSize = last
  }
  if (!inMemory) await io.flush()
}

/** Writes log entries into the ring; see the module note for the policy. */
export class VhdxLogWriter {
  private position = 0
  private sequence: bigint

  constructor(private readonly io: VhdxIo, readonly logOffset: number, readonly logLength: number, readonly logGuid: string, lastSequence = 0n) {
    this.sequence = lastSequence
  }

  /** Most data sectors one entry can carry. */
  get capacity(): number {
    // n descriptors + n data sectors must fit: descriptorSectors(n) + n <= logLength / 4 KiB.
    let n = this.logLength / LOG_SECTOR_SIZE - 1
    while (n > 0 && descriptorSectors(n) + n > this.logLength / LOG_SECTOR_SIZE) n--
    return n
  }

  /**
   * Log `sectors` (4 KiB-aligned file offset -> new 4 KiB contents) as one entry, flush it, write the sectors in
   * place and flush again. Callers flushed the payload data the entry refers to before calling.
   */
  async commit(sectors: Map<number, Uint8Array>): Promise<void> {
    const all = [...sectors.entries()].sort((a, b) => a[0] - b[0])
    const cap = this.capacity
    for (let i = 0; i < all.length; i += cap) {
      const part = all.slice(i, i + cap)
      await this.writeEntry(part)
      await this.io.flush()
      for (const [off, data] of part) await this.io.write(data, off)
      await this.io.flush()
    }
  }

  private async writeEntry(part: Array<[number, Uint8Array]>): Promise<void> {
    const n = part.length
    const descSectors = descriptorSectors(n)
    const entryLength = (descSectors + n) * LOG_SECTOR_SIZE
    if (this.position + entryLength > this.logLength) this.position = 0
    const seq = ++this.sequence
    const e = new Uint8Array(entryLength)
    writeAscii(e, 0, 'loge')
    writeU32(e, 8, entryLength)
    writeU32(e, 12, this.position)
    writeU64Big(e, 16, seq)
    writeU32(e, 24, n)
    writeGuid(e, 32, this.logGuid)
    writeU64(e, 48, this.io.fileSize)
    writeU64(e, 56, this.io.fileSize)
    part.forEach(([off, data], i) => {
      const o = LOG_ENTRY_HEADER_SIZE + i * LOG_DESCRIPTOR_SIZE
      writeAscii(e, o, 'desc')
      e.set(data.subarray(4092, 4096), o + 4)
      e.set(data.subarray(0, 8), o + 8)
      writeU64(e, o + 16, off)
      writeU64Big(e, o + 24, seq)
      const d = (descSectors + i) * LOG_SECTOR_SIZE
      writeAscii(e, d, 'data')
      writeU32(e, d + 4, Number(seq >> 32n))
      e.set(data.subarray(8, 4092), d + 8)
      writeU32(e, d + 4092, Number(seq & 0xffffffffn))
    })
    writeU32(e, 4, crc32c(e))
    await this.io.write(e, this.logOffset + this.position)
    this.position += entryLength
    if (this.position >= this.logLength) this.position = 0
  }
}
