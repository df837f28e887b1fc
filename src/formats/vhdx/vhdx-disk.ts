/**
 * A VHDX file as a VirtualDisk: reads through the BAT (all payload states, sector bitmaps, the parent), and
 * crash-safe writes.
 *
 * Write protocol (MS-VHDX 2.3 and 2.5): the first change of a session updates both headers with a new
 * FileWriteGuid, DataWriteGuid and LogGuid. A write that needs new blocks extends the file (1 MiB aligned),
 * writes the payload, flushes, and only then logs the BAT / sector-bitmap sectors it changed (VhdxLogWriter:
 * entry, flush, apply in place, flush). So after a crash the BAT never points at data that was not written, and
 * a replayed log restores any half-applied metadata. Writes that change metadata are serialized by one lock
 * (they share allocation state); writes that land entirely in FULLY_PRESENT blocks, and all reads, run
 * concurrently and see the BAT as of their start. `close` records LogGuid = 0.
 *
 * Block states while writing: FULLY_PRESENT blocks are written in place; ZERO / UNMAPPED / UNDEFINED /
 * NOT_PRESENT blocks get space (reusing a recorded FileOffsetMB, zero-filling what the write does not cover)
 * and become FULLY_PRESENT, except NOT_PRESENT blocks of a differencing file, which become PARTIALLY_PRESENT with
 * sector-bitmap bits for the written sectors (FULLY_PRESENT when the write covers the block).
 */
import { EngineError, FormatError } from '../../engine/errors.js'
import type { Extent, ExtentState, VirtualDisk, WriteFlags } from '../virtual-disk.js'
import { Bat } from './vhdx-bat.js'
import type { VhdxIo } from './vhdx-io.js'
import {
  type VhdxHeader, GUID_ZERO, HEADER_OFFSETS, LOG_SECTOR_SIZE, MiB, PAYLOAD_BLOCK_FULLY_PRESENT, PAYLOAD_BLOCK_NOT_PRESENT,
  PAYLOAD_BLOCK_PARTIALLY_PRESENT, PAYLOAD_BLOCK_UNDEFINED, PAYLOAD_BLOCK_UNMAPPED, PAYLOAD_BLOCK_UNMAPPED_V095, PAYLOAD_BLOCK_ZERO,
  SB_BLOCK_PRESENT, SECTOR_BITMAP_BLOCK_SIZE, encodeHeader, newGuid, GUID_PARENT_LOCATOR, METADATA_TABLE_SIZE,
  type MetadataItemSpec, decodeMetadataTable, decodeParentLocator, encodeMetadataRegion, encodeParentLocator,
} from './vhdx-layout.js'
import { VhdxLogWriter } from './vhdx-log.js'
import type { VhdxStructure } from './vhdx-structure.js'

const ZEROS = new Uint8Array(MiB)

export class VhdxDisk implements VirtualDisk {
  readonly size: number
  readonly logicalSectorSize: number
  readonly physicalSectorSize: number
  readonly blockSize: number
  readonly hasParent: boolean
  /** Sector bitmap blocks (1 MiB each) loaded so far, by chunk number. */
  private readonly bitmaps = new Map<number, Uint8Array>()
  private header: VhdxHeader
  private current: 0 | 1
  private sessionStarted = false
  private fileWriteGuidSet = false
  private dataWriteGuidChanged = false
  private log: VhdxLogWriter | null = null
  private lock: Promise<void> = Promise.resolve()
  private closed = false

  constructor(
    readonly path: string,
    private readonly io: VhdxIo,
    readonly structure: VhdxStructure,
    readonly bat: Bat,
    readonly readOnly: boolean,
    /** Parent disk of a differencing file (owned: closed with this disk), or null. */
    readonly parent: VirtualDisk | null,
    private readonly lastLogSequence: bigint,
  ) {
    this.size = structure.virtualSize
    this.logicalSectorSize = structure.logicalSectorSize
    this.physicalSectorSize = structure.physicalSectorSize
    this.blockSize = structure.fileParameters.blockSizeBytes
    this.hasParent = structure.fileParameters.hasParent
    this.header = structure.header
    this.current = structure.current
  }

  /** The current DataWriteGuid: children record it as parent_linkage. */
  get dataWriteGuid(): string {
    return this.header.dataWriteGuid
  }

  get fixed(): boolean {
    return !this.hasParent && this.structure.fileParameters.leaveBlockAllocated
  }

  // ---- reading --------------------------------------------------------------------------------------------

  async read(offset: number, into: Uint8Array): Promise<void> {
    let done = 0
    while (done < into.length) {
      const pos = offset + done
      const block = Math.floor(pos / this.blockSize)
      const inBlock = pos - block * this.blockSize
      let n = Math.min(into.length - done, this.blockSize - inBlock)
      const idx = this.bat.payloadIndex(block)
      const state = this.bat.state(idx)
      const dst = into.subarray(done, done + n)
      if (state === PAYLOAD_BLOCK_FULLY_PRESENT) {
        // Coalesce following blocks that are present and contiguous in the file into one read.
        const fileOff = this.bat.offset(idx) + inBlock
        let b = block + 1
        while (done + n < into.length) {
          const j = this.bat.payloadIndex(b)
          if (this.bat.state(j) !== PAYLOAD_BLOCK_FULLY_PRESENT || this.bat.offset(j) !== fileOff + n) break
          n = Math.min(into.length - done, n + this.blockSize)
          b++
        }
        await this.io.read(into.subarray(done, done + n), fileOff)
      } else if (state === PAYLOAD_BLOCK_PARTIALLY_PRESENT && this.hasParent) {
        await this.readPartial(block, inBlock, pos, dst)
      } else if (state === PAYLOAD_BLOCK_NOT_PRESENT) {
        await this.readParent(pos, dst)
      } else if (state === PAYLOAD_BLOCK_ZERO || state === PAYLOAD_BLOCK_UNMAPPED || state === PAYLOAD_BLOCK_UNDEFINED || state === PAYLOAD_BLOCK_UNMAPPED_V095) {
        dst.fill(0)
      } else {
        throw new FormatError(this.path, 'BAT entry', this.bat.fileOffset + idx * 8, `payload block ${block} has invalid state ${state}`)
      }
      done += n
    }
  }

  private async readParent(pos: number, dst: Uint8Array): Promise<void> {
    if (!this.hasParent) return void dst.fill(0)
    if (!this.parent) throw new EngineError(`${this.path}: differencing disk opened without its parent; cannot read offset ${pos}`, 'InvalidOperation')
    const inParent = Math.max(0, Math.min(dst.length, this.parent.size - pos))
    if (inParent > 0) await this.parent.read(pos, dst.subarray(0, inParent))
    dst.fill(0, inParent)
  }

  /** Runs of sectors [pos, pos+len) that are present here (true) or in the parent (false). */
  private async bitmapRuns(block: number, inBlock: number, length: number): Promise<Array<[number, number, boolean]>> {
    const bits = await this.blockBitmap(block)
    const s = this.logicalSectorSize
    const first = inBlock / s
    const count = length / s
    const runs: Array<[number, number, boolean]> = []
    let k = 0
    while (k < count) {
      const bit = (i: number) => ((bits[(first + i) >>> 3]! >>> ((first + i) & 7)) & 1) === 1
      const v = bit(k)
      let e = k + 1
      // Skip whole bytes of the same value when aligned.
      while (e < count) {
        if (((first + e) & 7) === 0 && e + 8 <= count && bits[(first + e) >>> 3] === (v ? 0xff : 0)) e += 8
        else if (bit(e) === v) e++
        else break
      }
      runs.push([k * s, (e - k) * s, v])
      k = e
    }
    return runs
  }

  private async readPartial(block: number, inBlock: number, pos: number, dst: Uint8Array): Promise<void> {
    const fileOff = this.bat.offset(this.bat.payloadIndex(block)) + inBlock
    for (const [rel, len, here] of await this.bitmapRuns(block, inBlock, dst.length)) {
      const part = dst.subarray(rel, rel + len)
      if (here) await this.io.read(part, fileOff + rel)
      else await this.readParent(pos + rel, part)
    }
  }

  /** The slice of the chunk's sector bitmap that belongs to payload `block` (a view into the cached 1 MiB). */
  private async blockBitmap(block: number): Promise<Uint8Array> {
    const { chunkRatio } = this.bat.geometry
    const chunk = Math.floor(block / chunkRatio)
    let bm = this.bitmaps.get(chunk)
    if (!bm) {
      const idx = this.bat.bitmapIndex(chunk)
      bm = new Uint8Array(SECTOR_BITMAP_BLOCK_SIZE)
      if (this.bat.state(idx) === SB_BLOCK_PRESENT) await this.io.read(bm, this.bat.offset(idx))
      this.bitmaps.set(chunk, bm)
    }
    const per = SECTOR_BITMAP_BLOCK_SIZE / chunkRatio
    const at = (block % chunkRatio) * per
    return bm.subarray(at, at + per)
  }

  async extents(offset: number, length: number): Promise<Extent[]> {
    const out: Extent[] = []
    const push = (o: number, l: number, state: ExtentState) => {
      const last = out[out.length - 1]
      if (last && last.state === state && last.offset + last.length === o) last.length += l
      else out.push({ offset: o, length: l, state })
    }
    let pos = offset
    const end = offset + length
    while (pos < end) {
      const block = Math.floor(pos / this.blockSize)
      const inBlock = pos - block * this.blockSize
      const n = Math.min(end - pos, this.blockSize - inBlock)
      const state = this.bat.state(this.bat.payloadIndex(block))
      if (state === PAYLOAD_BLOCK_FULLY_PRESENT) push(pos, n, 'data')
      else if (state === PAYLOAD_BLOCK_PARTIALLY_PRESENT) {
        for (const [rel, len, here] of await this.bitmapRuns(block, inBlock, n)) push(pos + rel, len, here ? 'data' : 'parent')
      } else if (state === PAYLOAD_BLOCK_NOT_PRESENT) push(pos, n, this.hasParent ? 'parent' : 'unallocated')
      else if (state === PAYLOAD_BLOCK_ZERO || this.hasParent) push(pos, n, 'zero')
      else push(pos, n, 'unallocated')
      pos += n
    }
    return out
  }

  // ---- writing --------------------------------------------------------------------------------------------

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn)
    this.lock = run.then(() => undefined, () => undefined)
    return run
  }

  private assertWritable(): void {
    if (this.readOnly) throw new EngineError(`${this.path}: disk is open read-only`, 'InvalidOperation')
    if (this.closed) throw new EngineError(`${this.path}: disk is closed`, 'InvalidOperation')
  }

  /** Write the header to the non-current slot, flush, and make it current. */
  private async writeHeader(changes: Partial<VhdxHeader>): Promise<void> {
    const next: VhdxHeader = { ...this.header, ...changes, sequenceNumber: this.header.sequenceNumber + 1n }
    const slot: 0 | 1 = this.current === 0 ? 1 : 0
    await this.io.write(encodeHeader(next), HEADER_OFFSETS[slot])
    await this.io.flush()
    this.header = next
    this.current = slot
  }

  /**
   * Choose the DataWriteGuid the first data change of this session will record (a merge announces it to the
   * child, as parent_linkage2, before touching the parent). Only before any write.
   */
  presetDataWriteGuid(guid: string): void {
    if (this.dataWriteGuidChanged) throw new EngineError(`${this.path}: DataWriteGuid can only be chosen before the first write`, 'InvalidOperation')
    this.nextDataWriteGuid = guid
  }

  private nextDataWriteGuid: string | null = null

  /**
   * First change of the session: new FileWriteGuid and LogGuid, and a new DataWriteGuid unless the change is to
   * metadata only (`dataChange` false), in both header slots.
   */
  private async startSession(dataChange = true): Promise<void> {
    if (this.sessionStarted && (!dataChange || this.dataWriteGuidChanged)) return
    const changes: Partial<VhdxHeader> = {}
    if (!this.sessionStarted) changes.logGuid = newGuid()
    if (!this.fileWriteGuidSet) changes.fileWriteGuid = newGuid()
    if (dataChange) changes.dataWriteGuid = this.nextDataWriteGuid ?? newGuid()
    await this.writeHeader(changes)
    await this.writeHeader({})
    this.fileWriteGuidSet = true
    if (dataChange) this.dataWriteGuidChanged = true
    if (!this.log) {
      const h = this.header
      this.log = new VhdxLogWriter(this.io, h.logOffset, h.logLength, h.logGuid, this.lastLogSequence)
    }
    this.sessionStarted = true
  }

  /** After an in-place log replay at open: record the log empty (with this session's FileWriteGuid). */
  async markLogReplayed(): Promise<void> {
    await this.writeHeader({ fileWriteGuid: newGuid(), logGuid: GUID_ZERO })
    await this.writeHeader({})
    this.fileWriteGuidSet = true
  }

  /** Space for one new object of `length` bytes at the 1 MiB-aligned end of the file. */
  private async allocate(length: number): Promise<number> {
    const at = Math.ceil(this.io.fileSize / MiB) * MiB
    await this.io.fh.truncate(at + length)
    this.io.fileSize = at + length
    return at
  }

  async write(offset: number, data: Uint8Array, flags?: WriteFlags): Promise<void> {
    this.assertWritable()
    if (this.dataWriteGuidChanged && this.allFullyPresent(offset, data.length)) {
      // Fast path: no metadata changes, so no lock; writes to allocated blocks run concurrently. (Overlapping
      // in-flight requests have no defined order anyway; a block deallocated meanwhile keeps its space, so the
      // bytes land in space that is either hidden or zero-filled before reuse.)
      for (let done = 0; done < data.length;) {
        const pos = offset + done
        const block = Math.floor(pos / this.blockSize)
        const inBlock = pos - block * this.blockSize
        const n = Math.min(data.length - done, this.blockSize - inBlock)
        await this.io.write(data.subarray(done, done + n), this.bat.offset(this.bat.payloadIndex(block)) + inBlock)
        done += n
      }
      if (flags?.fua) await this.io.flush()
      return
    }
    return this.exclusive(async () => {
      await this.startSession()
      await this.writeLocked(offset, data)
      if (flags?.fua) await this.io.flush()
    })
  }

  private allFullyPresent(offset: number, length: number): boolean {
    const last = Math.floor((offset + length - 1) / this.blockSize)
    for (let b = Math.floor(offset / this.blockSize); b <= last; b++) {
      if (this.bat.state(this.bat.payloadIndex(b)) !== PAYLOAD_BLOCK_FULLY_PRESENT) return false
    }
    return true
  }

  private async writeLocked(offset: number, data: Uint8Array): Promise<void> {
    let metadataChanged = false
    const bitmapSectors = new Map<number, Uint8Array>()
    let done = 0
    while (done < data.length) {
      const pos = offset + done
      const block = Math.floor(pos / this.blockSize)
      const inBlock = pos - block * this.blockSize
      const n = Math.min(data.length - done, this.blockSize - inBlock)
      const src = data.subarray(done, done + n)
      const idx = this.bat.payloadIndex(block)
      const state = this.bat.state(idx)
      const whole = n === this.blockSize
      if (state === PAYLOAD_BLOCK_FULLY_PRESENT) {
        await this.io.write(src, this.bat.offset(idx) + inBlock)
      } else if (state === PAYLOAD_BLOCK_PARTIALLY_PRESENT || (state === PAYLOAD_BLOCK_NOT_PRESENT && this.hasParent && !whole)) {
        let fileOff = this.bat.offset(idx)
        await this.blockBitmap(block)
        if (state === PAYLOAD_BLOCK_NOT_PRESENT) {
          await this.ensureBitmapBlock(block)
          fileOff = await this.allocate(this.blockSize)
          this.bat.set(idx, PAYLOAD_BLOCK_PARTIALLY_PRESENT, fileOff)
          metadataChanged = true
        }
        await this.io.write(src, fileOff + inBlock)
        if (this.setBitmapBits(block, inBlock, n, bitmapSectors)) {
          this.bat.set(idx, PAYLOAD_BLOCK_FULLY_PRESENT, fileOff)
        }
        metadataChanged = true
      } else {
        // NOT_PRESENT, ZERO, UNMAPPED, UNDEFINED: give the block space and make it fully present.
        let fileOff = this.bat.offset(idx)
        const reuse = fileOff !== 0 && state !== PAYLOAD_BLOCK_NOT_PRESENT
        if (!reuse) fileOff = await this.allocate(this.blockSize)
        else {
          await this.writeZeroBytes(fileOff, inBlock)
          await this.writeZeroBytes(fileOff + inBlock + n, this.blockSize - inBlock - n)
        }
        await this.io.write(src, fileOff + inBlock)
        this.bat.set(idx, PAYLOAD_BLOCK_FULLY_PRESENT, fileOff)
        metadataChanged = true
      }
      done += n
    }
    if (metadataChanged) await this.commitMetadata(bitmapSectors)
  }

  private async writeZeroBytes(fileOff: number, length: number): Promise<void> {
    for (let p = 0; p < length; p += ZEROS.length) await this.io.write(ZEROS.subarray(0, Math.min(ZEROS.length, length - p)), fileOff + p)
  }

  /** Payload written and flushed first; then the changed BAT and bitmap sectors through the log. */
  private async commitMetadata(bitmapSectors: Map<number, Uint8Array>): Promise<void> {
    await this.io.flush()
    const sectors = this.bat.takeDirty()
    for (const [k, v] of bitmapSectors) sectors.set(k, v)
    if (sectors.size > 0) await this.log!.commit(sectors)
  }

  /** Make sure the sector bitmap block of `block`'s chunk exists (allocated zeroed, so all sectors say "parent"). */
  private async ensureBitmapBlock(block: number): Promise<void> {
    const chunk = Math.floor(block / this.bat.geometry.chunkRatio)
    const idx = this.bat.bitmapIndex(chunk)
    if (this.bat.state(idx) === SB_BLOCK_PRESENT) return
    await this.blockBitmap(block) // caches an all-zero bitmap for the chunk
    const at = await this.allocate(SECTOR_BITMAP_BLOCK_SIZE)
    this.bat.set(idx, SB_BLOCK_PRESENT, at)
  }

  /**
   * Set the bits of [inBlock, inBlock+n) in the cached bitmap and record the touched 4 KiB bitmap sectors for the
   * log. Returns true when every sector of the block is now present.
   */
  private setBitmapBits(block: number, inBlock: number, n: number, out: Map<number, Uint8Array>): boolean {
    const { chunkRatio } = this.bat.geometry
    const chunk = Math.floor(block / chunkRatio)
    const bm = this.bitmaps.get(chunk)!
    const per = SECTOR_BITMAP_BLOCK_SIZE / chunkRatio
    const base = (block % chunkRatio) * per
    const first = inBlock / this.logicalSectorSize
    const count = n / this.logicalSectorSize
    for (let i = first; i < first + count; i++) bm[base + (i >>> 3)]! |= 1 << (i & 7)
    const bmOff = this.bat.offset(this.bat.bitmapIndex(chunk))
    const s0 = Math.floor((base + (first >>> 3)) / LOG_SECTOR_SIZE)
    const s1 = Math.floor((base + ((first + count - 1) >>> 3)) / LOG_SECTOR_SIZE)
    for (let s = s0; s <= s1; s++) out.set(bmOff + s * LOG_SECTOR_SIZE, bm.slice(s * LOG_SECTOR_SIZE, (s + 1) * LOG_SECTOR_SIZE))
    for (let i = base; i < base + per; i++) if (bm[i] !== 0xff) return false
    return true
  }

  /**
   * Whole blocks become `state` (ZERO or UNMAPPED; the file space stays recorded for reuse); partial blocks get
   * zero bytes written (writeZeroes) or are left alone (trim). A fixed file keeps every block allocated.
   */
  private async deallocate(offset: number, length: number, state: number, partial: 'zero' | 'skip'): Promise<void> {
    let metadataChanged = false
    let pos = offset
    const end = offset + length
    while (pos < end) {
      const block = Math.floor(pos / this.blockSize)
      const inBlock = pos - block * this.blockSize
      const n = Math.min(end - pos, this.blockSize - inBlock)
      const idx = this.bat.payloadIndex(block)
      const cur = this.bat.state(idx)
      const readsZero = cur === PAYLOAD_BLOCK_ZERO || cur === PAYLOAD_BLOCK_UNMAPPED || cur === PAYLOAD_BLOCK_UNDEFINED ||
        cur === PAYLOAD_BLOCK_UNMAPPED_V095 || (cur === PAYLOAD_BLOCK_NOT_PRESENT && !this.hasParent)
      if (n === this.blockSize && !this.fixed) {
        if (cur !== state) {
          const keep = cur === PAYLOAD_BLOCK_FULLY_PRESENT || cur === PAYLOAD_BLOCK_PARTIALLY_PRESENT || cur === PAYLOAD_BLOCK_ZERO || cur === PAYLOAD_BLOCK_UNMAPPED
          this.bat.set(idx, state, keep ? this.bat.offset(idx) : 0)
          metadataChanged = true
        }
      } else if (partial === 'zero' && !readsZero) {
        await this.writeLocked(pos, ZEROS.length >= n ? ZEROS.subarray(0, n) : new Uint8Array(n))
      }
      pos += n
    }
    if (metadataChanged) await this.commitMetadata(new Map())
  }

  async writeZeroes(offset: number, length: number, flags?: WriteFlags): Promise<void> {
    this.assertWritable()
    return this.exclusive(async () => {
      await this.startSession()
      await this.deallocate(offset, length, PAYLOAD_BLOCK_ZERO, 'zero')
      if (flags?.fua) await this.io.flush()
    })
  }

  async trim(offset: number, length: number): Promise<void> {
    this.assertWritable()
    // In a child, UNMAPPED might be read through to the parent by other implementations; ZERO is unambiguous.
    return this.exclusive(async () => {
      await this.startSession()
      await this.deallocate(offset, length, this.hasParent ? PAYLOAD_BLOCK_ZERO : PAYLOAD_BLOCK_UNMAPPED, 'skip')
    })
  }

  /**
   * Replace the parent locator's key/value pairs (differencing files only), atomically through the log: the
   * metadata region is re-encoded and only the 4 KiB sectors that changed are logged and applied. Metadata only:
   * DataWriteGuid does not change.
   */
  async rewriteParentLocator(entries: Array<[string, string]>): Promise<void> {
    this.assertWritable()
    if (!this.hasParent) throw new EngineError(`${this.path}: not a differencing disk`, 'InvalidOperation')
    return this.exclusive(async () => {
      const region = this.structure.metadataRegion
      const length = Math.min(region.length, 64 * MiB)
      const old = await this.io.readNew(region.fileOffset, length)
      const items: MetadataItemSpec[] = this.structure.metadataItems.map(it => ({
        itemId: it.itemId,
        data: it.itemId === GUID_PARENT_LOCATOR && !it.isUser ? encodeParentLocator(entries) : old.slice(it.offset, it.offset + it.length),
        isUser: it.isUser, isVirtualDisk: it.isVirtualDisk, isRequired: it.isRequired,
      }))
      const need = METADATA_TABLE_SIZE + items.reduce((n, it) => n + Math.ceil(it.data.length / 8) * 8, 0)
      if (need > length) throw new EngineError(`${this.path}: the metadata region (${length} bytes) cannot hold the new parent locator`, 'LimitsExceeded')
      const img = encodeMetadataRegion(items, length)
      const sectors = new Map<number, Uint8Array>()
      for (let o = 0; o < length; o += LOG_SECTOR_SIZE) {
        if (!Buffer.from(img.buffer, img.byteOffset + o, LOG_SECTOR_SIZE).equals(Buffer.from(old.buffer, old.byteOffset + o, LOG_SECTOR_SIZE))) {
          sectors.set(region.fileOffset + o, img.slice(o, o + LOG_SECTOR_SIZE))
        }
      }
      await this.startSession(false)
      await this.log!.commit(sectors)
      this.structure.metadataItems = decodeMetadataTable(img)
      this.structure.parentLocator = decodeParentLocator(encodeParentLocator(entries)).locator
    })
  }

  flush(): Promise<void> {
    if (this.readOnly) return Promise.resolve()
    return this.exclusive(() => this.io.flush())
  }

  async close(): Promise<void> {
    if (this.closed) return
    try {
      if (!this.readOnly) {
        await this.exclusive(async () => {
          // Every log entry was applied and flushed as it was written: the log is empty.
          if (this.sessionStarted && this.header.logGuid !== GUID_ZERO) {
            await this.writeHeader({ logGuid: GUID_ZERO })
            await this.writeHeader({})
          }
          await this.io.flush()
        })
      }
    } finally {
      this.closed = true
      await this.io.fh.close()
      if (this.parent) await this.parent.close()
    }
  }
}
