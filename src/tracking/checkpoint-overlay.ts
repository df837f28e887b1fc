/**
 * A consistent point in time while writes continue: copy-before-write.
 *
 * CheckpointOverlay is a VirtualDisk filter over the live disk. While a checkpoint is open, the first write (or
 * zero/trim) to a granule first copies the granule's current content into a side file; the checkpoint view reads
 * a granule from the side file when it was copied, else from the live disk. So the view shows exactly the content
 * at the moment the checkpoint opened, however the live disk changes afterwards.
 *
 * Atomicity: openCheckpoint closes a WriteGate (new writes wait, writes in flight finish), runs the caller's freeze
 * step (e.g. TrackingStore.createRefPoint, whose freeze is synchronous), activates copy-before-write, and reopens
 * the gate. No write is half before and half after the moment.
 *
 * Races handled:
 * - two writes to one granule: the second waits for the first one's copy (one copy per granule);
 * - a checkpoint read of a granule not yet copied reads the live disk; if a copy started meanwhile (a write is about
 *   to change it), the read is repeated from the side file, which holds the pre-write content.
 * Writes that bypass this filter are not seen: every writer of the live disk must go through it.
 */
import fsp from 'node:fs/promises'
import type { Extent, VirtualDisk, WriteFlags } from '../formats/virtual-disk.js'
import { EngineError } from '../engine/errors.js'
import { WriteGate } from './write-gate.js'

export const DEFAULT_COW_GRANULE_BYTES = 64 * 1024

class CowState {
  /** Granule index -> byte offset of its saved copy in the side file. */
  readonly copied = new Map<number, number>()
  readonly copying = new Map<number, Promise<void>>()
  private nextSideOffset = 0
  closed = false

  constructor(readonly side: fsp.FileHandle, readonly sidePath: string, readonly granuleBytes: number,
    private readonly inner: VirtualDisk) {}

  /** Save every granule of [offset, offset+length) not saved yet. */
  async copyBefore(offset: number, length: number): Promise<void> {
    const g = this.granuleBytes
    const first = Math.floor(offset / g)
    const last = Math.floor((offset + length - 1) / g)
    const waits: Promise<void>[] = []
    for (let i = first; i <= last; i++) {
      if (this.copied.has(i)) continue
      let p = this.copying.get(i)
      if (!p) {
        p = this.copyGranule(i).finally(() => this.copying.delete(i))
        this.copying.set(i, p)
      }
      waits.push(p)
    }
    if (waits.length) await Promise.all(waits)
  }

  private async copyGranule(i: number): Promise<void> {
    const start = i * this.granuleBytes
    const len = Math.min(this.granuleBytes, this.inner.size - start)
    const buf = new Uint8Array(len)
    await this.inner.read(start, buf)
    const at = this.nextSideOffset
    this.nextSideOffset += this.granuleBytes
    await this.side.write(buf, 0, len, at)
    this.copied.set(i, at)
  }

  /** Read checkpoint content of [offset, offset+into.length). */
  async read(offset: number, into: Uint8Array): Promise<void> {
    const g = this.granuleBytes
    let pos = 0
    while (pos < into.length) {
      const abs = offset + pos
      const i = Math.floor(abs / g)
      const inGranule = abs - i * g
      // Extend over following granules in the same state (copied or not) to batch reads.
      const copiedNow = this.copied.has(i) || this.copying.has(i)
      let end = Math.min(into.length, pos + (g - inGranule))
      if (!copiedNow) {
        while (end < into.length) {
          const j = Math.floor((offset + end) / g)
          if (this.copied.has(j) || this.copying.has(j)) break
          end = Math.min(into.length, end + g)
        }
        const piece = into.subarray(pos, end)
        await this.inner.read(abs, piece)
        // Any granule whose copy started during our read may have changed under it: take the saved copy.
        for (let p = pos; p < end;) {
          const a = offset + p
          const j = Math.floor(a / g)
          const stop = Math.min(end, (j + 1) * g - offset)
          if (this.copied.has(j) || this.copying.has(j)) await this.readSaved(j, a - j * g, into.subarray(p, stop))
          p = stop
        }
      } else {
        await this.readSaved(i, inGranule, into.subarray(pos, end))
      }
      pos = end
    }
  }

  private async readSaved(i: number, within: number, into: Uint8Array): Promise<void> {
    const pending = this.copying.get(i)
    if (pending) await pending
    const at = this.copied.get(i)
    if (at === undefined) throw new Error(`checkpoint granule ${i} is neither copied nor live`)
    let done = 0
    while (done < into.length) {
      const { bytesRead } = await this.side.read(into, done, into.length - done, at + within + done)
      if (bytesRead === 0) throw new Error(`checkpoint side file ${this.sidePath} is short at granule ${i}`)
      done += bytesRead
    }
  }
}

/** Read-only view of the disk at the moment the checkpoint opened. */
export class CheckpointView implements VirtualDisk {
  readonly readOnly = true
  constructor(private readonly state: CowState, private readonly inner: VirtualDisk, readonly id: string) {}
  get size(): number { return this.inner.size }
  get logicalSectorSize(): number { return this.inner.logicalSectorSize }
  get physicalSectorSize(): number { return this.inner.physicalSectorSize }
  /** Granules saved so far (a measure of how much the live disk diverged). */
  get copiedGranules(): number { return this.state.copied.size }

  read(offset: number, into: Uint8Array): Promise<void> {
    if (this.state.closed) return Promise.reject(new EngineError(`checkpoint ${this.id} is closed`, 'InvalidOperation'))
    return this.state.read(offset, into)
  }
  private refuse(): Promise<never> {
    return Promise.reject(new EngineError(`checkpoint ${this.id} is read-only`, 'PermissionDenied'))
  }
  write(): Promise<void> { return this.refuse() }
  writeZeroes(): Promise<void> { return this.refuse() }
  trim(): Promise<void> { return this.refuse() }
  /** The live disk's map is not the checkpoint's: report everything as data (never wrong, only less precise). */
  async extents(offset: number, length: number): Promise<Extent[]> {
    return [{ offset, length, state: 'data' }]
  }
  async flush(): Promise<void> {}
  async close(): Promise<void> {}
}

export class CheckpointOverlay implements VirtualDisk {
  private readonly gate = new WriteGate()
  private active: CowState | null = null

  constructor(readonly inner: VirtualDisk, private readonly granuleBytes = DEFAULT_COW_GRANULE_BYTES) {
    if (granuleBytes < inner.logicalSectorSize || (granuleBytes & (granuleBytes - 1)) !== 0) {
      throw new RangeError(`copy-before-write granule ${granuleBytes} must be a power of two >= the sector size`)
    }
  }

  get size(): number { return this.inner.size }
  get logicalSectorSize(): number { return this.inner.logicalSectorSize }
  get physicalSectorSize(): number { return this.inner.physicalSectorSize }
  get readOnly(): boolean { return this.inner.readOnly }
  get checkpointOpen(): boolean { return this.active !== null }

  /**
   * Open a checkpoint at a moment with no write in flight; `freeze` runs at that moment (its synchronous part before
   * any write can start). The side file is created at `sidePath` and deleted when the checkpoint closes.
   */
  async openCheckpoint<T>(sidePath: string, id: string, freeze: () => Promise<T> | T): Promise<{ view: CheckpointView; result: T }> {
    if (this.active) throw new EngineError(`a checkpoint is already open on this disk`, 'ResourceBusy')
    const side = await fsp.open(sidePath, 'wx+')
    await this.gate.close()
    let state: CowState
    let pending: Promise<T> | T
    try {
      pending = freeze()
      state = new CowState(side, sidePath, this.granuleBytes, this.inner)
      this.active = state
    } catch (err) {
      this.gate.open()
      await side.close()
      await fsp.rm(sidePath, { force: true })
      throw err
    }
    this.gate.open()
    try {
      const result = await pending
      return { view: new CheckpointView(state, this.inner, id), result }
    } catch (err) {
      await this.closeCheckpoint()
      throw err
    }
  }

  /** Stop copying, wait for copies in flight, delete the side file. The view fails afterwards. */
  async closeCheckpoint(): Promise<void> {
    const st = this.active
    if (!st) return
    await this.gate.close()
    this.active = null
    this.gate.open()
    await Promise.allSettled([...st.copying.values()])
    st.closed = true
    await st.side.close()
    await fsp.rm(st.sidePath, { force: true })
  }

  read(offset: number, into: Uint8Array): Promise<void> {
    return this.inner.read(offset, into)
  }

  write(offset: number, data: Uint8Array, flags?: WriteFlags): Promise<void> {
    return this.guarded(offset, data.length, () => this.inner.write(offset, data, flags))
  }

  writeZeroes(offset: number, length: number, flags?: WriteFlags): Promise<void> {
    return this.guarded(offset, length, () => this.inner.writeZeroes(offset, length, flags))
  }

  trim(offset: number, length: number): Promise<void> {
    return this.guarded(offset, length, () => this.inner.trim(offset, length))
  }

  extents(offset: number, length: number): Promise<Extent[]> {
    return this.inner.extents(offset, length)
  }

  flush(): Promise<void> {
    return this.inner.flush()
  }

  async close(): Promise<void> {
    await this.closeCheckpoint()
    await this.inner.close()
  }

  private async guarded(offset: number, length: number, op: () => Promise<void>): Promise<void> {
    await this.gate.enter()
    try {
      const st = this.active
      if (st && length > 0) await st.copyBefore(offset, length)
      await op()
    } finally {
      this.gate.leave()
    }
  }
}
