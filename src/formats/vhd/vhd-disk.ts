/**
 * A VHD (fixed, dynamic or differencing) as a VirtualDisk.
 *
 * Design:
 * - Fixed: byte i of the disk is byte i of the file; the footer sits after the data and never moves. Holes in a
 *   sparse fixed file are reported as 'zero' extents (lseek SEEK_HOLE via the platform layer).
 * - Dynamic/differencing: the BAT is held in memory (4 bytes per block, bounded by the file size at open). A block
 *   is allocated at the current end-footer position: its sector bitmap, then its data, then the footer rewritten
 *   at the new end; the BAT entry goes to the file only at the next flush, after an fdatasync that made the block,
 *   bitmap and footer durable (the crash-tolerant order: data, bitmap, footer at new end, then BAT entry). A crash
 *   in between leaves either an orphaned block (space lost, nothing wrong) or a file whose end is not a footer;
 *   then the copy at offset 0 is used, and a read-write open puts a footer back after the last block.
 * - Sector-bitmap changes to existing blocks (differencing only) are kept in memory and written with the BAT at
 *   flush, after the data they describe is durable. So a flush costs two fdatasyncs when metadata changed, one
 *   otherwise; FUA writes flush.
 * - Differencing: a clear bitmap bit or an unallocated block reads the parent (the VirtualDisk given at open);
 *   writing zeros must allocate and set bits (unallocated would fall through to the parent). Trim keeps the data.
 * - Dynamic: writeZeroes/trim of whole blocks deallocate them (BAT entry back to 0xFFFFFFFF; the space is not
 *   reclaimed, VHD has no free list); partial ranges are zeroed in place.
 * - Mutations are serialized by one lock; reads run concurrently and see a new block only once it is complete.
 * - close() flushes and closes the parent too: a disk opened with a parent owns it.
 */
import fs from 'node:fs'
import fsp, { type FileHandle } from 'node:fs/promises'
import { AppErrorCode, EngineError, FormatError } from '../../engine/errors.js'
import { extents as sparseExtents, punchHoleAsync, zeroRangeAsync } from '../../platform/sparse.js'
import type { Extent, ExtentState, OpenOptions, VirtualDisk, WriteFlags } from '../virtual-disk.js'
import { allSet, runLength, setBits } from './vhd-bitmap.js'
import { BAT_UNALLOCATED, DYNAMIC_HEADER_SIZE, FOOTER_SIZE, SECTOR, VhdDiskType, bitmapBytesFor, encodeFooter, type VhdDynamicHeader, type VhdFooter } from './vhd-layout.js'
import { loadVhdMetadata, readExact, type VhdMetadata } from './vhd-metadata.js'

/** Bitmaps kept in memory beyond this count are dropped (clean ones only) to bound memory on huge disks. */
const BITMAP_CACHE_LIMIT = 65536

export class VhdDisk implements VirtualDisk {
  readonly logicalSectorSize = SECTOR
  readonly physicalSectorSize = SECTOR
  readonly size: number
  readonly type: 'fixed' | 'dynamic' | 'differencing'
  private readonly fd: number
  private footer: VhdFooter
  private readonly dh: VhdDynamicHeader | null
  private readonly bat: Uint32Array
  private readonly blockSize: number
  private readonly bitmapBytes: number
  /** Where the footer at the end of the file is; new blocks go here. */
  private footerOffset: number
  private readonly bitmaps = new Map<number, Uint8Array>()
  private readonly dirtyBitmaps = new Set<number>()
  private readonly dirtyBatSectors = new Set<number>()
  private lock: Promise<void> = Promise.resolve()
  private closed = false

  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
    readonly readOnly: boolean,
    meta: VhdMetadata,
    bat: Uint32Array,
    /** The disk this one's unallocated ranges read from (differencing only). */
    readonly parent: VirtualDisk | null,
  ) {
    this.fd = handle.fd
    this.footer = meta.footer
    this.dh = meta.dynamicHeader
    this.size = meta.footer.currentSize
    this.type = meta.footer.diskType === VhdDiskType.Fixed ? 'fixed' : meta.footer.diskType === VhdDiskType.Dynamic ? 'dynamic' : 'differencing'
    this.bat = bat
    this.blockSize = this.dh?.blockSize ?? 0
    this.bitmapBytes = this.dh ? bitmapBytesFor(this.dh.blockSize) : 0
    this.footerOffset = meta.endFooterOffset ?? meta.fileSize
  }

  /** The footer's unique id (a differencing child records it as its parent's id). */
  get uniqueId(): Uint8Array {
    return this.footer.uniqueId
  }

  /** The parent id recorded in a differencing disk's dynamic header. */
  get parentUniqueId(): Uint8Array | null {
    return this.type === 'differencing' ? this.dh!.parentUniqueId : null
  }

  /**
   * Open a VHD. A differencing disk needs `parent` to read ranges it does not hold (without one, such reads throw;
   * extents() still works); the parent should be opened read-only and is closed with this disk.
   */
  static async open(path: string, options: OpenOptions = {}, parent: VirtualDisk | null = null): Promise<VhdDisk> {
    const readOnly = options.readOnly ?? false
    const handle = await fsp.open(path, readOnly ? 'r' : 'r+')
    try {
      const meta = await loadVhdMetadata(handle, path)
      const bat = meta.dynamicHeader ? await loadBat(handle, meta) : new Uint32Array(0)
      if (parent && meta.footer.diskType === VhdDiskType.Differencing && parent.logicalSectorSize !== SECTOR) {
        throw new FormatError(path, 'VHD parent', null, `parent has ${parent.logicalSectorSize}-byte sectors; a VHD child needs 512`)
      }
      const disk = new VhdDisk(path, handle, readOnly, meta, bat, meta.footer.diskType === VhdDiskType.Differencing ? parent : null)
      if (!readOnly && meta.footerSource === 'copy') await disk.restoreEndFooter(meta)
      return disk
    } catch (err) {
      await handle.close()
      throw err
    }
  }

  async read(offset: number, into: Uint8Array): Promise<void> {
    this.checkOpen()
    if (this.type === 'fixed') return preadFull(this.fd, into, offset)
    await this.forEachBlock(offset, into.length, async (block, inBlock, at, n) => {
      const part = into.subarray(at - offset, at - offset + n)
      const entry = this.bat[block]!
      if (entry === BAT_UNALLOCATED) {
        if (this.type === 'differencing') await this.readParent(at, part)
        else part.fill(0)
        return
      }
      const dataStart = entry * SECTOR + this.bitmapBytes
      if (this.type === 'dynamic') return preadFull(this.fd, part, dataStart + inBlock)
      const bitmap = await this.getBitmap(block)
      const first = inBlock / SECTOR
      const end = first + n / SECTOR
      for (let s = first; s < end; ) {
        const own = runLength(bitmap, s, end, true)
        const run = own > 0 ? own : runLength(bitmap, s, end, false)
        const sub = part.subarray((s - first) * SECTOR, (s - first + run) * SECTOR)
        if (own > 0) await preadFull(this.fd, sub, dataStart + s * SECTOR)
        else await this.readParent(at + (s - first) * SECTOR, sub)
        s += run
      }
    })
  }

  async write(offset: number, data: Uint8Array, flags?: WriteFlags): Promise<void> {
    await this.mutate(async () => {
      if (this.type === 'fixed') return pwriteFull(this.fd, data, offset)
      await this.forEachBlock(offset, data.length, async (block, inBlock, at, n) => {
        await this.writeInBlock(block, inBlock, data.subarray(at - offset, at - offset + n))
      })
    })
    if (flags?.fua) await this.flush()
  }

  async writeZeroes(offset: number, length: number, flags?: WriteFlags): Promise<void> {
    await this.mutate(async () => {
      if (this.type === 'fixed') {
        await zeroRangeAsync(this.handle, offset, length)
        return
      }
      await this.forEachBlock(offset, length, async (block, inBlock, _at, n) => {
        const entry = this.bat[block]!
        if (this.type === 'dynamic') {
          if (entry === BAT_UNALLOCATED) return // already reads as zeros
          if (n === this.blockSize && !flags?.noHole) return this.deallocate(block)
          await punchOrZero(this.handle, entry * SECTOR + this.bitmapBytes + inBlock, n, flags?.noHole)
          return
        }
        // Differencing: zeros must be recorded in this file, or the parent would show through.
        if (entry === BAT_UNALLOCATED) return this.allocate(block, inBlock, null, n)
        await punchOrZero(this.handle, entry * SECTOR + this.bitmapBytes + inBlock, n, flags?.noHole)
        await this.markPresent(block, inBlock, n)
      })
    })
    if (flags?.fua) await this.flush()
  }

  async trim(offset: number, length: number): Promise<void> {
    if (this.type !== 'dynamic') {
      this.checkWritable()
      return // fixed: nothing to give back; differencing: deallocating would expose the parent's data
    }
    await this.mutate(async () => {
      await this.forEachBlock(offset, length, async (block, _inBlock, _at, n) => {
        if (n === this.blockSize && this.bat[block] !== BAT_UNALLOCATED) this.deallocate(block)
      })
    })
  }

  async extents(offset: number, length: number): Promise<Extent[]> {
    this.checkOpen()
    const out: Extent[] = []
    const push = (o: number, l: number, state: ExtentState): void => {
      const last = out[out.length - 1]
      if (last && last.state === state && last.offset + last.length === o) last.length += l
      else out.push({ offset: o, length: l, state })
    }
    if (this.type === 'fixed') {
      // Holes in the file (a sparse fixed VHD) read as zeros; the kernel's map says where they are.
      for (let at = offset; at < offset + length; ) {
        const runs = sparseExtents(this.fd, at, offset + length - at, 4096)
        if (runs.length === 0) break
        for (const [o, l, isData] of runs) push(o, l, isData ? 'data' : 'zero')
        const last = runs[runs.length - 1]!
        at = last[0] + last[1]
      }
      const covered = out.length ? out[out.length - 1]!.offset + out[out.length - 1]!.length : offset
      if (covered < offset + length) push(covered, offset + length - covered, 'data')
      return out
    }
    const missing: ExtentState = this.type === 'differencing' ? 'parent' : 'unallocated'
    await this.forEachBlock(offset, length, async (block, inBlock, at, n) => {
      if (this.bat[block] === BAT_UNALLOCATED) return push(at, n, missing)
      if (this.type === 'dynamic') return push(at, n, 'data')
      const bitmap = await this.getBitmap(block)
      const first = inBlock / SECTOR
      const end = first + n / SECTOR
      for (let s = first; s < end; ) {
        const own = runLength(bitmap, s, end, true)
        const run = own > 0 ? own : runLength(bitmap, s, end, false)
        push(at + (s - first) * SECTOR, run * SECTOR, own > 0 ? 'data' : 'parent')
        s += run
      }
    })
    return out
  }

  async flush(): Promise<void> {
    this.checkOpen()
    if (this.readOnly) return
    await this.mutate(() => this.flushLocked())
  }

  async close(): Promise<void> {
    if (this.closed) return
    try {
      if (!this.readOnly) await this.flush()
    } finally {
      this.closed = true
      await this.handle.close()
      await this.parent?.close()
    }
  }

  /** BAT entries as stored (sector numbers, 0xFFFFFFFF unallocated); for check and tests. */
  batEntries(): Uint32Array {
    return this.bat.slice()
  }

  // ---- internals ----

  private async flushLocked(): Promise<void> {
    await this.handle.datasync() // data, new blocks' bitmaps and the moved footer first
    if (this.dirtyBitmaps.size === 0 && this.dirtyBatSectors.size === 0) return
    for (const block of [...this.dirtyBitmaps].sort((a, b) => a - b)) {
      const entry = this.bat[block]!
      if (entry !== BAT_UNALLOCATED) await pwriteFull(this.fd, this.bitmaps.get(block)!, entry * SECTOR)
    }
    this.dirtyBitmaps.clear()
    const tableOffset = this.dh!.tableOffset
    const perSector = SECTOR / 4
    for (const sector of [...this.dirtyBatSectors].sort((a, b) => a - b)) {
      const first = sector * perSector
      const count = Math.min(perSector, this.bat.length - first)
      const buf = Buffer.alloc(count * 4)
      for (let i = 0; i < count; i++) buf.writeUInt32BE(this.bat[first + i]!, i * 4)
      await pwriteFull(this.fd, buf, tableOffset + first * 4)
    }
    this.dirtyBatSectors.clear()
    await this.handle.datasync()
  }

  private async writeInBlock(block: number, inBlock: number, data: Uint8Array): Promise<void> {
    const entry = this.bat[block]!
    if (entry === BAT_UNALLOCATED) return this.allocate(block, inBlock, data, data.length)
    await pwriteFull(this.fd, data, entry * SECTOR + this.bitmapBytes + inBlock)
    if (this.type === 'differencing') await this.markPresent(block, inBlock, data.length)
  }

  /**
   * Append a block at the footer's place: bitmap, data (null: the range stays a hole, i.e. zeros), then the footer
   * at the new end. The BAT entry is recorded in memory and reaches the file at the next flush.
   */
  private async allocate(block: number, inBlock: number, data: Uint8Array | null, length: number): Promise<void> {
    const start = Math.ceil(this.footerOffset / SECTOR) * SECTOR
    const sectorNumber = start / SECTOR
    if (sectorNumber >= BAT_UNALLOCATED) {
      throw new EngineError(`${this.path}: VHD file would exceed the 2 TiB a 32-bit BAT can address`, 'LimitsExceeded', AppErrorCode.Io)
    }
    const bitmap = new Uint8Array(this.bitmapBytes)
    if (this.type === 'dynamic') bitmap.fill(0xff)
    else setBits(bitmap, inBlock / SECTOR, length / SECTOR)
    const newEnd = start + this.bitmapBytes + this.blockSize
    await pwriteFull(this.fd, bitmap, start)
    if (data) await pwriteFull(this.fd, data, start + this.bitmapBytes + inBlock)
    await pwriteFull(this.fd, encodeFooter(this.footer), newEnd)
    this.footerOffset = newEnd
    this.cacheBitmap(block, bitmap)
    this.setBat(block, sectorNumber)
  }

  private deallocate(block: number): void {
    this.setBat(block, BAT_UNALLOCATED)
    this.bitmaps.delete(block)
    this.dirtyBitmaps.delete(block)
  }

  private setBat(block: number, value: number): void {
    this.bat[block] = value
    this.dirtyBatSectors.add(Math.floor(block / (SECTOR / 4)))
  }

  private async markPresent(block: number, inBlock: number, length: number): Promise<void> {
    const bitmap = await this.getBitmap(block)
    if (allSet(bitmap, inBlock / SECTOR, length / SECTOR)) return
    setBits(bitmap, inBlock / SECTOR, length / SECTOR)
    this.dirtyBitmaps.add(block)
  }

  private async getBitmap(block: number): Promise<Uint8Array> {
    const cached = this.bitmaps.get(block)
    if (cached) return cached
    const bitmap = new Uint8Array(this.bitmapBytes)
    await preadFull(this.fd, bitmap, this.bat[block]! * SECTOR)
    const again = this.bitmaps.get(block) // a concurrent reader may have loaded it meanwhile
    if (again) return again
    this.cacheBitmap(block, bitmap)
    return bitmap
  }

  private cacheBitmap(block: number, bitmap: Uint8Array): void {
    if (this.bitmaps.size >= BITMAP_CACHE_LIMIT) {
      for (const key of this.bitmaps.keys()) if (!this.dirtyBitmaps.has(key)) this.bitmaps.delete(key)
    }
    this.bitmaps.set(block, bitmap)
  }

  private async readParent(at: number, into: Uint8Array): Promise<void> {
    if (!this.parent) {
      throw new EngineError(`${this.path}: differencing VHD opened without its parent cannot read offset ${at}`, 'InvalidOperation')
    }
    const inside = Math.max(0, Math.min(into.length, this.parent.size - at))
    if (inside > 0) await this.parent.read(at, into.subarray(0, inside))
    into.fill(0, inside)
  }

  /** Calls fn for each block-sized piece of [offset, offset+length), in order. */
  private async forEachBlock(offset: number, length: number, fn: (block: number, inBlock: number, at: number, n: number) => Promise<void> | void): Promise<void> {
    const end = offset + length
    for (let at = offset; at < end; ) {
      const block = Math.floor(at / this.blockSize)
      const inBlock = at - block * this.blockSize
      const n = Math.min(this.blockSize - inBlock, end - at)
      await fn(block, inBlock, at, n)
      at += n
    }
  }

  /** After a crash the end of the file may not be a footer: put one back after the last used byte. */
  private async restoreEndFooter(meta: VhdMetadata): Promise<void> {
    let end = Math.max(this.dh ? meta.footer.dataOffset + DYNAMIC_HEADER_SIZE : 0, this.dh ? this.dh.tableOffset + Math.ceil(this.bat.length * 4 / SECTOR) * SECTOR : 0)
    for (const l of this.dh?.locators ?? []) {
      const locatorEnd = l.platformDataOffset + l.platformDataLength
      if (l.platformCode !== 0 && l.platformDataOffset >= FOOTER_SIZE && locatorEnd <= meta.fileSize) end = Math.max(end, locatorEnd)
    }
    for (const e of this.bat) if (e !== BAT_UNALLOCATED) end = Math.max(end, e * SECTOR + this.bitmapBytes + this.blockSize)
    end = Math.ceil(end / SECTOR) * SECTOR
    await pwriteFull(this.fd, encodeFooter(this.footer), end)
    await this.handle.truncate(end + FOOTER_SIZE)
    await this.handle.datasync()
    this.footerOffset = end
  }

  private async mutate(fn: () => Promise<void>): Promise<void> {
    this.checkWritable()
    const run = this.lock.then(fn)
    this.lock = run.catch(() => undefined)
    return run
  }

  private checkOpen(): void {
    if (this.closed) throw new Error(`${this.path}: VHD is closed`)
  }

  private checkWritable(): void {
    this.checkOpen()
    if (this.readOnly) throw Object.assign(new Error(`${this.path}: VHD is open read-only`), { code: 'EROFS' })
  }
}

export function openVhd(path: string, options: OpenOptions = {}, parent: VirtualDisk | null = null): Promise<VhdDisk> {
  return VhdDisk.open(path, options, parent)
}

/** Read the BAT entries that cover the virtual size and check each allocated block lies inside the file. */
async function loadBat(handle: FileHandle, meta: VhdMetadata): Promise<Uint32Array> {
  const dh = meta.dynamicHeader!
  const count = Math.ceil(meta.footer.currentSize / dh.blockSize)
  const raw = await readExact(handle, meta.path, dh.tableOffset, count * 4, 'VHD BAT')
  const bat = new Uint32Array(count)
  const blockBytes = bitmapBytesFor(dh.blockSize) + dh.blockSize
  const firstDataByte = FOOTER_SIZE // nothing may overlap the footer copy
  for (let i = 0; i < count; i++) {
    const e = raw.readUInt32BE(i * 4)
    if (e !== BAT_UNALLOCATED) {
      const start = e * SECTOR
      if (start < firstDataByte || start + blockBytes > meta.dataEnd) {
        throw new FormatError(meta.path, `VHD BAT entry ${i}`, dh.tableOffset + i * 4, `block at offset ${start} (+${blockBytes}) lies outside the data area [${firstDataByte}, ${meta.dataEnd})`)
      }
    }
    bat[i] = e
  }
  return bat
}

async function punchOrZero(handle: FileHandle, offset: number, length: number, keepAllocated?: boolean): Promise<void> {
  if (keepAllocated) await zeroRangeAsync(handle, offset, length)
  else await punchHoleAsync(handle, offset, length)
}

export function preadFull(fd: number, into: Uint8Array, position: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let done = 0
    const step = (): void => {
      fs.read(fd, into, done, into.length - done, position + done, (err, n) => {
        if (err) return reject(err)
        if (n === 0) {
          into.fill(0, done) // past the end of the file: zeros
          return resolve()
        }
        done += n
        if (done < into.length) step()
        else resolve()
      })
    }
    if (into.length === 0) resolve()
    else step()
  })
}

export function pwriteFull(fd: number, data: Uint8Array, position: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let done = 0
    const step = (): void => {
      fs.write(fd, data, done, data.length - done, position + done, (err, n) => {
        if (err) return reject(err)
        done += n
        if (done < data.length) step()
        else resolve()
      })
    }
    if (data.length === 0) resolve()
    else step()
  })
}
