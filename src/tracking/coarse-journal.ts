/**
 * The write-through coarse journal (the idea behind Hyper-V RCT's .mrt file).
 *
 * The fine bitmap lives in memory and reaches disk only at checkpoints, so a crash would lose the marks made since
 * the last one. The journal closes that gap: before a write to a coarse region is acknowledged, the region's bit is
 * durable in this file. After a crash, fine map = persistent copy OR (every journal region expanded to fine bits):
 * over-reporting by at most the coarse regions touched since the last checkpoint, never under-reporting.
 *
 * Cost model: a region already durable costs one bit test (no I/O). The first write to a region per journal epoch
 * costs one sector write plus one fdatasync; requests arriving while a sync is in flight join the next batch, so N
 * concurrent writers to new regions cost at most two syncs, and writers to a region that is in flight share its sync.
 * Mark-ahead: a write to region r while r-1 is already marked looks sequential, so regions r..r+MARK_AHEAD-1 are
 * marked in the same sync. A sequential stream then pays one sync per MARK_AHEAD regions instead of one per
 * region, at the price of over-reporting up to MARK_AHEAD-1 untouched regions per stream after a crash.
 * Carry-over: a new epoch's journal starts with the regions the previous epoch's writes touched already marked, so
 * periodic checkpoints do not make a steady workload cold again. A crash then over-reports the regions touched in
 * the current and the previous epoch; a region idle for a whole epoch drops out.
 *
 * File layout (little-endian; the whole file is allocated at creation so fdatasync never has to persist a size
 * change):
 *   0   magic        "HVCBTJN1"
 *   8   u32          format version (1)
 *   12  u32          CRC-32 of header bytes 0..511 with this field zero
 *   16  f64          epoch: increases at each checkpoint; recovery ORs every journal file of the generation
 *   24  f64          regionBytes: bytes of virtual disk per journal bit
 *   32  f64          regionCount: number of journal bits
 *   40  char[36]     generation id of the tracking store (so a stale journal of an older generation is ignored)
 *   76  ...          zero up to byte 511
 *   512 bits         region bitmap, bit r at byte 512 + (r >> 3), bit (r & 7) (least significant first), zero-padded
 *                    to a multiple of 512 bytes. Bits are only ever set in place: a torn sector write can only leave
 *                    a superset of the previous bits, so the body carries no checksum.
 */
import fsp from 'node:fs/promises'
import os from 'node:os'
import { crc32 } from 'node:zlib'
import { DenseBitmap } from './bitmap.js'
import { writeFileAtomic } from './atomic-file.js'

const MAGIC = 'HVCBTJN1'
export const JOURNAL_HEADER_BYTES = 512
const SECTOR = 512
/** Regions marked at once when a write looks sequential (see the cost model above). */
export const MARK_AHEAD = 8

if (os.endianness() !== 'LE') throw new Error('the coarse journal maps Uint32 words to bytes and needs a little-endian host')

export interface JournalHeader {
  epoch: number
  regionBytes: number
  regionCount: number
  generation: string
}

export class JournalFormatError extends Error {
  override readonly name = 'JournalFormatError'
}

function encodeHeader(h: JournalHeader): Uint8Array {
  const out = new Uint8Array(JOURNAL_HEADER_BYTES)
  const dv = new DataView(out.buffer)
  out.set(Buffer.from(MAGIC, 'latin1'), 0)
  dv.setUint32(8, 1, true)
  dv.setFloat64(16, h.epoch, true)
  dv.setFloat64(24, h.regionBytes, true)
  dv.setFloat64(32, h.regionCount, true)
  out.set(Buffer.from(h.generation.padEnd(36, ' ').slice(0, 36), 'latin1'), 40)
  dv.setUint32(12, crc32(out), true)
  return out
}

function decodeHeader(data: Uint8Array, file: string): JournalHeader {
  if (data.length < JOURNAL_HEADER_BYTES) throw new JournalFormatError(`${file}: journal shorter than its header`)
  if (Buffer.from(data.subarray(0, 8)).toString('latin1') !== MAGIC) throw new JournalFormatError(`${file}: not a journal (magic)`)
  const copy = Uint8Array.from(data.subarray(0, JOURNAL_HEADER_BYTES))
  const dv = new DataView(copy.buffer)
  const crc = dv.getUint32(12, true)
  dv.setUint32(12, 0, true)
  if (crc32(copy) !== crc) throw new JournalFormatError(`${file}: journal header checksum mismatch`)
  if (dv.getUint32(8, true) !== 1) throw new JournalFormatError(`${file}: journal version ${dv.getUint32(8, true)} not supported`)
  const h: JournalHeader = {
    epoch: dv.getFloat64(16, true),
    regionBytes: dv.getFloat64(24, true),
    regionCount: dv.getFloat64(32, true),
    generation: Buffer.from(copy.subarray(40, 76)).toString('latin1').trimEnd(),
  }
  if (!Number.isSafeInteger(h.regionCount) || h.regionCount < 0 || h.regionCount > 2 ** 32 ||
      !Number.isSafeInteger(h.regionBytes) || h.regionBytes <= 0) {
    throw new JournalFormatError(`${file}: journal header has invalid sizes`)
  }
  return h
}

function bodyBytes(regionCount: number): number {
  return Math.ceil(Math.ceil(regionCount / 8) / SECTOR) * SECTOR
}

/** Read a journal file: its header and the set of marked regions. */
export async function readJournal(file: string): Promise<{ header: JournalHeader; regions: DenseBitmap }> {
  const data = await fsp.readFile(file)
  const header = decodeHeader(data, file)
  const need = JOURNAL_HEADER_BYTES + Math.ceil(header.regionCount / 8)
  // A short body means the file was truncated: the marks in the missing part are lost, so this journal can't be trusted.
  if (data.length < need) throw new JournalFormatError(`${file}: journal body is truncated (${data.length} < ${need} bytes)`)
  const regions = new DenseBitmap(header.regionCount)
  const bytes = new Uint8Array(regions.words.buffer)
  bytes.set(data.subarray(JOURNAL_HEADER_BYTES, JOURNAL_HEADER_BYTES + Math.min(bytes.length, data.length - JOURNAL_HEADER_BYTES)))
  // Clear bits past regionCount (padding) so they cannot leak into the expansion.
  regions.clearRange(header.regionCount, 32)
  return { header, regions }
}

interface Deferred {
  promise: Promise<void>
  resolve(): void
  reject(err: unknown): void
}

function deferred(): Deferred {
  let resolve!: () => void
  let reject!: (err: unknown) => void
  const promise = new Promise<void>((res, rej) => { resolve = res; reject = rej })
  promise.catch(() => {}) // rejection is observed by the writers awaiting it
  return { promise, resolve, reject }
}

/** An open journal file of one epoch, taking marks. */
export class CoarseJournal {
  /** Regions whose bit is durable in the file. */
  private readonly durable: DenseBitmap
  /** In-memory image of the body (what the file will hold once pending writes land). */
  private readonly image: DenseBitmap
  private queued = new Set<number>()
  private flying = new Set<number>()
  private current: Promise<void> | null = null
  private next: Deferred | null = null
  private failure: unknown = null
  /** Regions written to in this epoch (carried into the next journal; see create). */
  readonly touched: DenseBitmap
  /** fdatasync calls made (for tests and benchmarks). */
  syncCount = 0

  private constructor(readonly file: string, readonly header: JournalHeader, private readonly handle: fsp.FileHandle) {
    this.durable = new DenseBitmap(header.regionCount)
    this.image = new DenseBitmap(header.regionCount)
    this.touched = new DenseBitmap(header.regionCount)
  }

  /** Create an empty journal file atomically (fully allocated, synced, directory synced) and open it. */
  /**
   * Create a journal file atomically (fully allocated, synced, directory synced) and open it. `carried`: regions
   * marked from the start (the regions the previous epoch's writes touched), so a steady workload does not pay a
   * sync per region again after every checkpoint; a region idle for a whole epoch drops out.
   */
  static async create(file: string, header: JournalHeader, carried?: DenseBitmap): Promise<CoarseJournal> {
    const data = new Uint8Array(JOURNAL_HEADER_BYTES + bodyBytes(header.regionCount))
    data.set(encodeHeader(header), 0)
    if (carried && carried.bitCount === header.regionCount) {
      data.set(new Uint8Array(carried.words.buffer, carried.words.byteOffset, carried.words.byteLength), JOURNAL_HEADER_BYTES)
    }
    await writeFileAtomic(file, data)
    const handle = await fsp.open(file, 'r+')
    const j = new CoarseJournal(file, header, handle)
    if (carried && carried.bitCount === header.regionCount) {
      j.durable.orWith(carried)
      j.image.orWith(carried)
    }
    return j
  }

  isDurable(region: number): boolean {
    return this.durable.test(region)
  }

  /**
   * Make regions [first, first+count) durable. Returns undefined when they already are (the hot path: no promise,
   * no I/O), else a promise that resolves once every one of them is durable.
   */
  mark(first: number, count: number): Promise<void> | undefined {
    this.touched.setRange(first, count)
    if (this.durable.allSet(first, count)) return undefined
    if (this.failure) return Promise.reject(this.failure)
    let needNext = false
    const end = Math.min(first + count, this.header.regionCount)
    for (let r = first; r < end; r++) {
      if (this.durable.test(r) || this.flying.has(r)) continue
      this.queued.add(r)
      needNext = true
    }
    if (needNext && first > 0 && (this.durable.test(first - 1) || this.flying.has(first - 1) || this.queued.has(first - 1))) {
      // Looks sequential: mark ahead in the same sync (never needed for correctness, only saves syncs).
      for (let r = end; r < Math.min(end + MARK_AHEAD - 1, this.header.regionCount); r++) {
        if (!this.durable.test(r) && !this.flying.has(r)) this.queued.add(r)
      }
    }
    if (!needNext) return this.current ?? undefined
    if (!this.next) {
      this.next = deferred()
      if (!this.current) queueMicrotask(() => this.startFlight())
    }
    return this.next.promise
  }

  private startFlight(): void {
    if (this.current || !this.next) return
    const d = this.next
    const regions = this.queued
    this.next = null
    this.queued = new Set()
    this.flying = regions
    const run = this.writeAndSync(regions).then(() => {
      for (const r of regions) this.durable.setRange(r, 1)
      d.resolve()
    }, err => {
      this.failure = err
      d.reject(err)
    }).finally(() => {
      this.flying = new Set()
      this.current = null
      if (this.next) this.startFlight()
    })
    this.current = d.promise
    void run
  }

  private async writeAndSync(regions: Set<number>): Promise<void> {
    const sectors = new Set<number>()
    for (const r of regions) {
      this.image.setRange(r, 1)
      sectors.add(Math.floor((r >>> 3) / SECTOR))
    }
    const body = new Uint8Array(this.image.words.buffer)
    const sorted = [...sectors].sort((a, b) => a - b)
    for (let i = 0; i < sorted.length;) {
      let j = i
      while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++
      const from = sorted[i]! * SECTOR
      const to = Math.min((sorted[j]! + 1) * SECTOR, body.length)
      const chunk = new Uint8Array(SECTOR * (j - i + 1))
      chunk.set(body.subarray(from, to))
      await this.handle.write(chunk, 0, chunk.length, JOURNAL_HEADER_BYTES + from)
      i = j + 1
    }
    this.syncCount++
    await this.handle.datasync()
  }

  /** Wait for every mark in progress, then close the file. */
  async close(): Promise<void> {
    while (this.current || this.next) {
      await (this.current ?? this.next?.promise)?.catch(() => {})
      if (!this.current && this.next) this.startFlight()
    }
    await this.handle.close()
  }
}
