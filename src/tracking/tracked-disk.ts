/**
 * TrackedDisk: a VirtualDisk filter (nbdkit's filter shape) that records every write, zero and trim in a tracking
 * store before passing it to the disk below. Order per request: mark the fine bitmap, wait until the coarse journal
 * holds the region durably (no wait when it already does), then write; the request counts as in flight until the
 * disk below finishes, so a reference point created meanwhile counts it on both sides.
 *
 * The NBD server can wrap its disk in this, or keep its disk and use the store's WriteObserver shape
 * (TrackingStore.beforeWrite / afterWrite). Reads, extents and flush pass straight through.
 */
import type { Extent, VirtualDisk, WriteFlags } from '../formats/virtual-disk.js'
import { probeDiskIdentity } from './disk-identity.js'
import { TrackingStore, type RefPointInfo } from './store.js'

export interface TrackedDiskOptions {
  /** Path of the disk file: its identity is recorded at clean close (detects later writes outside tracking). */
  diskPath?: string
  /** Close the store when the disk is closed (default true). */
  closeStore?: boolean
  /** Checkpoint the store after this many ms without writes following a write (0 = never; default 0). */
  idleCheckpointMs?: number
}

export class TrackedDisk implements VirtualDisk {
  private idleTimer: NodeJS.Timeout | null = null

  constructor(readonly inner: VirtualDisk, readonly store: TrackingStore, private readonly options: TrackedDiskOptions = {}) {}

  /** Open the store of `diskPath` for writing (checking the disk's identity) and wrap `inner`, already opened. */
  static async attach(diskPath: string, inner: VirtualDisk, options: Omit<TrackedDiskOptions, 'diskPath'> = {}): Promise<TrackedDisk> {
    const identity = await probeDiskIdentity(diskPath)
    const store = await TrackingStore.open(diskPath, { identity, diskSizeBytes: inner.size })
    return new TrackedDisk(inner, store, { ...options, diskPath })
  }

  get size(): number { return this.inner.size }
  get logicalSectorSize(): number { return this.inner.logicalSectorSize }
  get physicalSectorSize(): number { return this.inner.physicalSectorSize }
  get readOnly(): boolean { return this.inner.readOnly }

  read(offset: number, into: Uint8Array): Promise<void> {
    return this.inner.read(offset, into)
  }

  write(offset: number, data: Uint8Array, flags?: WriteFlags): Promise<void> {
    return this.tracked(offset, data.length, () => this.inner.write(offset, data, flags))
  }

  writeZeroes(offset: number, length: number, flags?: WriteFlags): Promise<void> {
    return this.tracked(offset, length, () => this.inner.writeZeroes(offset, length, flags))
  }

  trim(offset: number, length: number): Promise<void> {
    return this.tracked(offset, length, () => this.inner.trim(offset, length))
  }

  extents(offset: number, length: number): Promise<Extent[]> {
    return this.inner.extents(offset, length)
  }

  flush(): Promise<void> {
    return this.inner.flush()
  }

  createRefPoint(): Promise<RefPointInfo> {
    return this.store.createRefPoint()
  }

  async close(): Promise<void> {
    if (this.idleTimer) clearTimeout(this.idleTimer)
    await this.inner.close()
    if (this.options.closeStore ?? true) {
      const identity = this.options.diskPath ? await probeDiskIdentity(this.options.diskPath) : undefined
      await this.store.close(identity)
    }
  }

  private async tracked(offset: number, length: number, op: () => Promise<void>): Promise<void> {
    const { token, durable } = this.store.beginWrite(offset, length)
    try {
      if (durable) await durable
      await op()
    } finally {
      this.store.endWrite(token)
    }
    if (this.options.idleCheckpointMs) this.scheduleIdleCheckpoint(this.options.idleCheckpointMs)
  }

  private scheduleIdleCheckpoint(ms: number): void {
    if (this.idleTimer) clearTimeout(this.idleTimer)
    this.idleTimer = setTimeout(() => {
      this.idleTimer = null
      // Idle: nothing is hot, so start the new journal epoch empty (no carry-over). Readers in other processes
      // (persistent copy OR journal) then get exact answers until the next write.
      this.store.checkpoint({ carryOver: false }).catch(() => {}) // a failed checkpoint loses nothing: the journal stays
    }, ms)
    this.idleTimer.unref()
  }
}
