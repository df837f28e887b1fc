/**
 * The tracking store: the policy over the bitmap mechanism (bitmap.ts). One store per disk, in `<disk>.hvcbt/`:
 *
 *   state.json            commit point (store-state.ts): generation, sequence, reference points, file names
 *   live-<n>.bm           persistent copy of the live fine bitmap (changes since the newest reference point)
 *   seg-<seq>-<n>.bm      frozen segment: changes from reference point <seq> up to the next point
 *   journal-<epoch>.mrt   write-through coarse journal (coarse-journal.ts)
 *
 * Segments follow QEMU's "successor" pattern: creating a reference point freezes the live bitmap as the segment of
 * the previous point and starts an empty live bitmap for the new one, in one synchronous step (no write can fall
 * between). Changes since point P = OR of the segments from P on + live; between P and Q = OR of segments [P, Q).
 * Removing a point merges its segment into the previous point's, so no change is ever dropped from a query that
 * remains possible.
 *
 * Durability: every write marks the fine bitmap in memory and, before it is acknowledged, its coarse region in the
 * journal (skipped when already durable this epoch). A checkpoint (refpoint create/remove, flush, clean close, or
 * `checkpoint()`) first switches to a fresh journal epoch, then writes the bitmaps under new names, then commits
 * state.json, then deletes the old journal and unreferenced bitmaps. After a crash (state.clean false), the live
 * bitmap = its persistent copy OR every journal of this generation: over-report allowed, under-report never.
 *
 * Trust: a store is untrusted (status says why; queries throw EngineError) when its files are missing or corrupt,
 * or when the disk changed outside tracking since the last clean close (disk-identity.ts), or the size changed.
 * `reset` starts a new generation and is the way back to a trusted store.
 */
import fsp from 'node:fs/promises'
import path from 'node:path'
import { AppErrorCode, EngineError } from '../engine/errors.js'
import { DenseBitmap } from './bitmap.js'
import { cleanTemporaries, fsyncDir, writeFileAtomic } from './atomic-file.js'
import { CoarseJournal } from './coarse-journal.js'
import { identityMismatch, type DiskIdentity } from './disk-identity.js'
import { bitmapToRangeList, granulesOf, type ByteRange, type RangeList } from './ranges.js'
import { acquireStoreLock } from './store-lock.js'
import { readState, writeState, StateFormatError, type RefPointRecord, type StoreState } from './store-state.js'

import {
  checkBitmapSize, checkPow2, describeLoadFailure, exists, freshState, IN_FLIGHT_EXPIRY_MS, loadBitmap, orJournals, sidecarPathOf,
  UNION_CACHE_ENTRIES, untrustedError, DEFAULT_COARSE_REGION_BYTES, DEFAULT_GRANULARITY_BYTES,
  type EnableOptions, type OpenStoreOptions, type RefPointInfo, type TrackingStatus,
} from './store-support.js'

export {
  DEFAULT_COARSE_REGION_BYTES, DEFAULT_GRANULARITY_BYTES, IN_FLIGHT_EXPIRY_MS, sidecarPathOf,
  type EnableOptions, type OpenStoreOptions, type RefPointInfo, type TrackingStatus,
}

export class TrackingStore {
  private live: DenseBitmap
  /** Segments changed in memory and not yet persisted, by reference point id. */
  private dirtySegments = new Map<string, DenseBitmap>()
  private journal: CoarseJournal | null = null
  private mutex: Promise<unknown> = Promise.resolve()
  private closed = false
  private recovered: string | null = null
  private openElsewhere = false
  private readonly sidecar: string

  private constructor(
    readonly diskPath: string,
    private state: StoreState,
    live: DenseBitmap,
    readonly readOnly: boolean,
    private untrusted: string | null,
  ) {
    this.live = live
    this.sidecar = sidecarPathOf(diskPath)
  }

  get granularityBytes(): number { return this.state.granularityBytes }
  get diskSizeBytes(): number { return this.state.diskSizeBytes }
  get generation(): string { return this.state.generation }
  get trusted(): boolean { return this.untrusted === null }

  // ---------------------------------------------------------------- enable / open / disable

  /** Start tracking `diskPath` (creates the sidecar). Fails with ResourceExists if tracking is already enabled. */
  static async enable(diskPath: string, diskSizeBytes: number, identity: DiskIdentity | null,
    options: EnableOptions = {}): Promise<TrackingStatus> {
    const granularityBytes = options.granularityBytes ?? DEFAULT_GRANULARITY_BYTES
    const coarseRegionBytes = options.coarseRegionBytes ?? Math.max(DEFAULT_COARSE_REGION_BYTES, granularityBytes)
    checkPow2('granularityBytes', granularityBytes, 4096, 64 * 2 ** 20)
    checkPow2('coarseRegionBytes', coarseRegionBytes, 2 ** 20, 64 * 2 ** 20)
    checkBitmapSize(diskSizeBytes, granularityBytes)
    const dir = sidecarPathOf(diskPath)
    // The directory may already hold content-scan hash maps (scan works without tracking); state.json decides.
    await fsp.mkdir(dir, { recursive: true })
    if (await exists(path.join(dir, 'state.json'))) {
      throw new EngineError(`change tracking is already enabled for ${diskPath} (${dir}/state.json exists)`,
        'ResourceExists', AppErrorCode.Generic, { diskPath })
    }
    await fsyncDir(path.dirname(dir))
    const state = freshState(diskSizeBytes, granularityBytes, coarseRegionBytes, identity)
    const live = new DenseBitmap(Math.ceil(diskSizeBytes / granularityBytes))
    await writeFileAtomic(path.join(dir, state.liveFile), live.serialize())
    await writeState(path.join(dir, 'state.json'), state)
    const store = new TrackingStore(diskPath, state, live, true, null)
    return store.status()
  }

  /** Stop tracking: delete the tracking files (content-scan maps stay). Must not be open for writing anywhere. */
  static async disable(diskPath: string): Promise<boolean> {
    const dir = sidecarPathOf(diskPath)
    const names = await fsp.readdir(dir).catch(() => null)
    if (!names) return false
    const ours = names.filter(n => /^(state\.json|live-\d+\.bm|seg-\d+-\d+\.bm|journal-\d+\.mrt)$|\.tmp$/.test(n))
    if (!ours.includes('state.json') && !ours.some(n => n.startsWith('live-'))) return false
    const release = await acquireStoreLock(dir, diskPath)
    // state.json first; a crash part-way leaves bitmaps without a state file, which open reports as untrusted.
    await fsp.rm(path.join(dir, 'state.json'), { force: true })
    await fsyncDir(dir)
    for (const n of ours) await fsp.rm(path.join(dir, n), { force: true })
    await release()
    if (names.length === ours.length || (names.length === ours.length + 1 && names.includes('lock'))) {
      await fsp.rm(dir, { recursive: true, force: true })
    }
    await fsyncDir(path.dirname(dir))
    return true
  }

  /**
   * Open the store. Never throws for a damaged store (status must be able to report it): a missing or corrupt file
   * makes the store untrusted with the reason. Throws ObjectNotFound when tracking is not enabled at all.
   * A read-write open of a store that was not closed cleanly recovers (persistent copy OR journals) and checkpoints.
   */
  static async open(diskPath: string, options: OpenStoreOptions = {}): Promise<TrackingStore> {
    // A read-only reader can race a writer's checkpoint deleting the files the old state named: read again.
    for (let attempt = 0; ; attempt++) {
      const store = await TrackingStore.openOnce(diskPath, options)
      if (!options.readOnly || store.trusted || attempt >= 4 || !/missing/.test(store.untrusted ?? '')) return store
      await new Promise(res => setTimeout(res, 25))
    }
  }

  private static async openOnce(diskPath: string, options: OpenStoreOptions): Promise<TrackingStore> {
    const dir = sidecarPathOf(diskPath)
    const readOnly = options.readOnly ?? false
    let state: StoreState
    try {
      state = await readState(path.join(dir, 'state.json'))
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      const names = await fsp.readdir(dir).catch(() => null)
      if (!names || (code === 'ENOENT' && !names.some(n => /^(live-\d+\.bm|seg-|journal-)/.test(n)))) {
        throw new EngineError(`change tracking is not enabled for ${diskPath} (no ${dir})`, 'ObjectNotFound',
          AppErrorCode.NotFound, { diskPath })
      }
      const reason = code === 'ENOENT' ? `the state file ${path.join(dir, 'state.json')} is missing`
        : err instanceof StateFormatError ? `the state file is corrupt: ${err.message}` : String(err)
      // A placeholder state so status can report; reset replaces it.
      const placeholder = freshState(options.diskSizeBytes ?? 0, DEFAULT_GRANULARITY_BYTES, DEFAULT_COARSE_REGION_BYTES, null)
      placeholder.generation = '00000000-0000-0000-0000-000000000000'
      const store = new TrackingStore(diskPath, placeholder, new DenseBitmap(0), readOnly, reason)
      if (!readOnly) store.unlock = await acquireStoreLock(dir, diskPath, options.takeOverOwnLock)
      return store
    }
    const bits = Math.ceil(state.diskSizeBytes / state.granularityBytes)
    let untrusted: string | null = state.untrustedReason
    let live = new DenseBitmap(bits)
    try {
      live = await loadBitmap(path.join(dir, state.liveFile), bits)
    } catch (err) {
      untrusted ??= describeLoadFailure('live bitmap', state.liveFile, err)
    }
    for (const rp of state.refPoints) {
      if (untrusted) break
      if (rp.segmentFile === null) continue
      try {
        await fsp.access(path.join(dir, rp.segmentFile))
      } catch (err) {
        untrusted = describeLoadFailure(`segment of ${rp.id}`, rp.segmentFile, err)
      }
    }
    if (!untrusted && options.diskSizeBytes !== undefined && options.diskSizeBytes !== state.diskSizeBytes) {
      untrusted = `the disk size changed outside tracking (${state.diskSizeBytes} -> ${options.diskSizeBytes} bytes)`
    }
    if (!untrusted && state.clean && state.identity && options.identity) {
      untrusted = identityMismatch(state.identity, options.identity)
    }
    let recovered: string | null = null
    if (!untrusted && !state.clean) {
      // Not closed cleanly: OR in every journal of this generation.
      try {
        const n = await orJournals(dir, state, live)
        recovered = `the store was not closed cleanly (crash, kill or still open elsewhere); the live bitmap was ` +
          `rebuilt from its persistent copy OR ${n.files} coarse journal file(s) (${n.regions} region(s) of ` +
          `${state.coarseRegionBytes} bytes; may over-report, never under-reports)`
      } catch (err) {
        untrusted = `a coarse journal is unreadable: ${(err as Error).message}`
      }
    }
    const store = new TrackingStore(diskPath, state, live, readOnly, untrusted)
    if (readOnly) {
      store.openElsewhere = !state.clean
      store.recovered = recovered
      return store
    }
    store.unlock = await acquireStoreLock(dir, diskPath, options.takeOverOwnLock)
    await cleanTemporaries(dir)
    // Side files of checkpoints left by a crash: the process that read them is gone.
    for (const n of await fsp.readdir(dir)) if (/^checkpoint-\d+-\d+\.cow$/.test(n)) await fsp.rm(path.join(dir, n), { force: true })
    if (untrusted && !state.untrustedReason) {
      // Remember the verdict: a later clean close must not make the store look trusted again.
      state.untrustedReason = untrusted
    }
    if (recovered) {
      store.recovered = recovered
      state.lastRecovery = { at: new Date().toISOString(), reason: recovered }
    }
    state.clean = false
    try {
      await store.runExclusive(() => store.checkpointLocked(false))
    } catch (err) {
      await store.unlock?.()
      throw err
    }
    return store
  }

  // ---------------------------------------------------------------- write path

  /**
   * Mark [offset, offset+length) changed. The fine bits are set at once; the returned promise (undefined when the
   * coarse regions are already durable) resolves when the journal makes the mark crash-proof. Callers must not
   * acknowledge the write before then. An untrusted store marks nothing (its history is void until reset).
   */
  markWrite(offset: number, length: number): Promise<void> | undefined {
    if (this.readOnly || this.closed || this.closing) {
      throw new EngineError(`tracking store of ${this.diskPath} is ${this.readOnly ? 'open read-only' : 'closed'}`,
        'InvalidOperation')
    }
    if (length <= 0 || this.untrusted) return undefined
    const [first, count] = granulesOf(offset, length, this.state.granularityBytes)
    this.live.setRange(first, count)
    if (!this.journal) return this.journalReady.then(() => this.markWrite(offset, length))
    const [r0, rn] = granulesOf(offset, length, this.state.coarseRegionBytes)
    return this.journal.mark(r0, rn)
  }

  /**
   * Start of a write: registers it as in flight (see createRefPoint) and marks it. Pass the token to endWrite when
   * the write has reached the disk (or failed).
   */
  beginWrite(offset: number, length: number): { token: number; durable: Promise<void> | undefined } {
    const token = ++this.inFlightSeq
    this.inFlight.set(token, { offset, length, at: Date.now() })
    try {
      return { token, durable: this.markWrite(offset, length) }
    } catch (err) {
      this.inFlight.delete(token)
      throw err
    }
  }

  /**
   * Record changes found by another source (a differencing child's present sectors, a content-scan diff) as changes
   * after the newest reference point, durably (journal, then a checkpoint). Fails on an untrusted store: imported
   * ranges cannot repair a history that is already incomplete.
   */
  async importChanges(ranges: ByteRange[]): Promise<void> {
    this.checkWritable()
    this.checkTrusted()
    const marks: Promise<void>[] = []
    for (const r of ranges) {
      const p = this.markWrite(r.offset, r.length)
      if (p) marks.push(p)
    }
    await Promise.all(marks)
    await this.checkpoint()
  }

  endWrite(token: number): void {
    this.inFlight.delete(token)
  }

  /**
   * WriteObserver shape (src/nbd/providers.ts): awaited before a write is acknowledged. The write counts as in
   * flight until afterWrite(offset, length) is called; a caller that never calls it makes its writes count as in
   * flight for IN_FLIGHT_EXPIRY_MS (over-reporting them into a reference point created meanwhile, never missing).
   */
  async beforeWrite(offset: number, length: number, _kind?: string): Promise<void> {
    const { token, durable } = this.beginWrite(offset, length)
    const key = `${offset}:${length}`
    const list = this.observerTokens.get(key)
    if (list) list.push(token)
    else this.observerTokens.set(key, [token])
    await durable
  }

  afterWrite(offset: number, length: number): void {
    const key = `${offset}:${length}`
    const list = this.observerTokens.get(key)
    const token = list?.shift()
    if (token !== undefined) this.endWrite(token)
    if (list && list.length === 0) this.observerTokens.delete(key)
  }

  private inFlightSeq = 0
  private inFlight = new Map<number, { offset: number; length: number; at: number }>()
  private observerTokens = new Map<string, number[]>()
  private closing = false
  private unlock: (() => Promise<void>) | null = null
  private journalReady: Promise<void> = Promise.resolve()

  // ---------------------------------------------------------------- reference points

  /**
   * Create a reference point. The freeze is synchronous: every mark made before this call belongs to the previous
   * point, every later mark to the new one; writes in flight at this moment (begun, not ended: their data may land
   * on either side of the freeze) are marked in the new live bitmap too.
   */
  async createRefPoint(): Promise<RefPointInfo> {
    this.checkWritable()
    this.checkTrusted()
    const sequence = ++this.state.sequence
    const rec: RefPointRecord = {
      id: `rp-${this.state.generation.slice(0, 8)}-${sequence}`,
      sequence,
      createdAt: new Date().toISOString(),
      segmentFile: null,
    }
    const frozen = this.live
    this.live = new DenseBitmap(frozen.bitCount)
    const now = Date.now()
    for (const [token, w] of this.inFlight) {
      if (now - w.at > IN_FLIGHT_EXPIRY_MS) { this.inFlight.delete(token); continue }
      const [f, c] = granulesOf(w.offset, w.length, this.state.granularityBytes)
      this.live.setRange(f, c)
    }
    const prev = this.state.refPoints[this.state.refPoints.length - 1]
    if (prev) this.dirtySegments.set(prev.id, frozen)
    this.state.refPoints.push(rec)
    this.layoutVersion++
    await this.runExclusive(() => this.checkpointLocked(false))
    return { id: rec.id, sequence: rec.sequence, createdAt: rec.createdAt }
  }

  listRefPoints(): RefPointInfo[] {
    return this.state.refPoints.map(r => ({ id: r.id, sequence: r.sequence, createdAt: r.createdAt }))
  }

  /** Remove a reference point, merging its segment into the previous point's (or the live bitmap). */
  async removeRefPoint(id: string): Promise<void> {
    this.checkWritable()
    await this.runExclusive(async () => {
      const k = this.indexOf(id)
      const rps = this.state.refPoints
      const rec = rps[k]!
      const prev = k > 0 ? rps[k - 1]! : null
      const isLast = k === rps.length - 1
      if (prev && !this.untrusted) {
        const prevSeg = await this.segment(prev)
        if (isLast) {
          // prev becomes the newest point: its segment and this point's changes (live) form the new live bitmap.
          this.live.orWith(prevSeg)
          this.dirtySegments.delete(prev.id)
          prev.segmentFile = null
        } else {
          prevSeg.orWith(await this.segment(rec))
          this.dirtySegments.set(prev.id, prevSeg)
        }
      }
      this.dirtySegments.delete(rec.id)
      rps.splice(k, 1)
      this.layoutVersion++
      await this.checkpointLocked(false)
    })
  }

  /** Bitmap of granules changed since `sinceId` (up to `untilId`, else up to now). */
  async changedBitmap(sinceId: string, untilId?: string): Promise<DenseBitmap> {
    this.checkTrusted()
    return this.runExclusive(async () => {
      const rps = this.state.refPoints
      const a = this.indexOf(sinceId)
      const b = untilId === undefined ? rps.length : this.indexOf(untilId)
      if (b < a) {
        throw new EngineError(`reference point ${untilId} is older than ${sinceId}`, 'InvalidArgument',
          AppErrorCode.Generic, { sinceId, untilId })
      }
      const frozen = await this.frozenUnion(a, Math.min(b, rps.length - 1))
      const out = frozen ? frozen.clone() : new DenseBitmap(this.live.bitCount)
      if (untilId === undefined) out.orWith(this.live)
      return out
    })
  }

  /**
   * OR of the frozen segments from `sinceId` up to the newest point (the live bitmap excluded), with the layout
   * version it was computed at: callers (the NBD dirty-bitmap context) cache it and add the live bitmap per query.
   * The returned bitmap is shared: callers must not modify it.
   */
  async frozenChangesSince(sinceId: string): Promise<{ bitmap: DenseBitmap; layoutVersion: number }> {
    this.checkTrusted()
    return this.runExclusive(async () => {
      const rps = this.state.refPoints
      const a = this.indexOf(sinceId)
      const bitmap = (await this.frozenUnion(a, rps.length - 1)) ?? new DenseBitmap(this.live.bitCount)
      return { bitmap, layoutVersion: this.layoutVersion }
    })
  }

  /**
   * OR of the frozen segments of points [a, b), null when empty. Frozen segments never change until the layout
   * does (create/remove/reset bump layoutVersion), so unions are cached per (a, b, layoutVersion): a repeated
   * query costs one bitmap copy and a run scan instead of reading and OR-ing segment files again.
   */
  private async frozenUnion(a: number, b: number): Promise<DenseBitmap | null> {
    if (b <= a) return null
    const key = `${this.state.refPoints[a]!.id}..${this.state.refPoints[b]?.id ?? 'live'}`
    const hit = this.unionCache.get(key)
    if (hit && hit.layoutVersion === this.layoutVersion) return hit.bitmap
    const out = new DenseBitmap(this.live.bitCount)
    for (let i = a; i < b; i++) out.orWith(await this.segment(this.state.refPoints[i]!))
    if (this.unionCache.size >= UNION_CACHE_ENTRIES) this.unionCache.delete(this.unionCache.keys().next().value!)
    this.unionCache.set(key, { bitmap: out, layoutVersion: this.layoutVersion })
    return out
  }

  private unionCache = new Map<string, { bitmap: DenseBitmap; layoutVersion: number }>()

  /** The live bitmap (changes since the newest point). Read only; replaced by createRefPoint and reset. */
  get liveBitmap(): DenseBitmap { return this.live }

  /** Incremented whenever reference points or segments change (create, remove, reset). */
  layoutVersion = 0

  /** Throws the untrusted-store error if the store can't be trusted. */
  assertTrusted(): void { this.checkTrusted() }

  /** Changed byte ranges since `sinceId` (up to `untilId` or now), merged and rounded to the granularity. */
  async changedRanges(sinceId: string, untilId?: string): Promise<ByteRange[]> {
    return (await this.changedRangeList(sinceId, untilId)).toArray()
  }

  /** The same answer packed in typed arrays (no per-range allocation: the form for large answers). */
  async changedRangeList(sinceId: string, untilId?: string): Promise<RangeList> {
    this.checkTrusted()
    if (untilId === undefined) {
      // Since the newest point: the live bitmap itself, scanned in place (no copy). Checked under the mutex, and
      // synchronously with the scan, so a point created meanwhile can't make us miss a frozen segment.
      const fast = await this.runExclusive(async () => {
        const rps = this.state.refPoints
        return rps[rps.length - 1]?.id === sinceId
          ? bitmapToRangeList(this.live, this.state.granularityBytes, this.state.diskSizeBytes) : null
      })
      if (fast) return fast
    }
    const bm = await this.changedBitmap(sinceId, untilId)
    return bitmapToRangeList(bm, this.state.granularityBytes, this.state.diskSizeBytes)
  }

  // ---------------------------------------------------------------- persistence

  /**
   * Persist the bitmaps now and start a fresh journal epoch (bounds the over-report after a crash). carryOver
   * (default true) pre-marks the regions the closing epoch touched; false (an idle disk) starts the journal empty.
   */
  async checkpoint(options: { carryOver?: boolean } = {}): Promise<void> {
    this.checkWritable()
    await this.runExclusive(() => this.checkpointLocked(false, options.carryOver ?? true))
  }

  /** Clean close: final checkpoint recording the disk identity, journal removed, state marked clean. */
  async close(identity?: DiskIdentity | null): Promise<void> {
    if (this.closed) return
    if (this.readOnly) { this.closed = true; return }
    this.closing = true
    await this.runExclusive(async () => {
      if (identity !== undefined) this.state.identity = identity
      await this.checkpointLocked(true)
    })
    this.closed = true
    await this.unlock?.()
  }

  /** Forget all history: new generation, no reference points, empty bitmaps, trusted again. */
  async reset(identity: DiskIdentity | null, diskSizeBytes: number, options: EnableOptions = {}): Promise<void> {
    this.checkWritable()
    await this.runExclusive(async () => {
      const g = options.granularityBytes ?? this.state.granularityBytes
      const c = options.coarseRegionBytes ?? Math.max(this.state.coarseRegionBytes, g)
      checkPow2('granularityBytes', g, 4096, 64 * 2 ** 20)
      checkPow2('coarseRegionBytes', c, 2 ** 20, 64 * 2 ** 20)
      checkBitmapSize(diskSizeBytes, g)
      const old = this.state
      this.state = freshState(diskSizeBytes, g, c, identity)
      this.state.checkpointSeq = old.checkpointSeq + 1
      this.state.journalEpoch = old.journalEpoch
      this.state.clean = false
      this.live = new DenseBitmap(Math.ceil(diskSizeBytes / g))
      this.dirtySegments.clear()
      this.untrusted = null
      this.recovered = null
      this.layoutVersion++
      await this.checkpointLocked(false)
    })
  }

  status(): TrackingStatus {
    return {
      diskPath: this.diskPath,
      sidecarPath: this.sidecar,
      generation: this.state.generation,
      sequence: this.state.sequence,
      granularityBytes: this.state.granularityBytes,
      coarseRegionBytes: this.state.coarseRegionBytes,
      diskSizeBytes: this.state.diskSizeBytes,
      trusted: this.untrusted === null,
      untrustedReason: this.untrusted,
      recoveredAfterCrash: this.recovered !== null,
      recoveryReason: this.recovered,
      openElsewhereOrCrashed: this.openElsewhere,
      refPoints: this.listRefPoints(),
      liveChangedBytes: Math.min(this.live.count() * this.state.granularityBytes, this.state.diskSizeBytes),
    }
  }

  /** Journal syncs so far in this epoch (benchmarks and tests). */
  get journalSyncCount(): number { return this.journal?.syncCount ?? 0 }


  // ---------------------------------------------------------------- internals

  private checkWritable(): void {
    if (this.readOnly) throw new EngineError(`tracking store of ${this.diskPath} is open read-only`, 'InvalidOperation')
    if (this.closed) throw new EngineError(`tracking store of ${this.diskPath} is closed`, 'InvalidOperation')
  }

  private checkTrusted(): void {
    if (this.untrusted) throw untrustedError(this.diskPath, this.untrusted)
  }

  private indexOf(id: string): number {
    const k = this.state.refPoints.findIndex(r => r.id === id)
    if (k < 0) {
      throw new EngineError(`no reference point ${id} for ${this.diskPath} (have: ${
        this.state.refPoints.map(r => r.id).join(', ') || 'none'})`, 'ObjectNotFound', AppErrorCode.NotFound, { id })
    }
    return k
  }

  /** The changes from `rec` to the next point (the live bitmap for the newest point). */
  private async segment(rec: RefPointRecord): Promise<DenseBitmap> {
    const rps = this.state.refPoints
    if (rps[rps.length - 1] === rec) return this.live
    const dirty = this.dirtySegments.get(rec.id)
    if (dirty) return dirty
    if (rec.segmentFile === null) return new DenseBitmap(this.live.bitCount) // first point: nothing before
    try {
      return await loadBitmap(path.join(this.sidecar, rec.segmentFile), this.live.bitCount)
    } catch (err) {
      this.untrusted = describeLoadFailure(`segment of ${rec.id}`, rec.segmentFile, err)
      throw untrustedError(this.diskPath, this.untrusted)
    }
  }

  private runExclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.mutex.then(fn, fn)
    this.mutex = run.catch(() => {})
    return run
  }

  /**
   * Checkpoint (caller holds the mutex): 1. new journal epoch, 2. write bitmaps under new names, 3. commit
   * state.json, 4. delete what the state no longer names. A crash at any step leaves a recoverable store.
   */
  private async checkpointLocked(clean: boolean, carryOver = true): Promise<void> {
    const dir = this.sidecar
    const st = this.state
    const oldJournal = this.journal
    // 1. Fresh journal epoch: marks made from now on go to it (or wait for it), marks before are in the snapshot.
    if (!clean) {
      st.journalEpoch++
      const header = { epoch: st.journalEpoch, regionBytes: st.coarseRegionBytes,
        regionCount: Math.ceil(st.diskSizeBytes / st.coarseRegionBytes), generation: st.generation }
      this.journal = null
      let done!: () => void
      this.journalReady = new Promise<void>(res => { done = res })
      try {
        // Carry the regions the closing epoch's writes touched (same generation and geometry only).
        const carried = carryOver && oldJournal && oldJournal.header.generation === st.generation &&
          oldJournal.header.regionCount === header.regionCount ? oldJournal.touched.clone() : undefined
        this.journal = await CoarseJournal.create(path.join(dir, `journal-${st.journalEpoch}.mrt`), header, carried)
      } finally {
        done()
      }
    } else {
      this.journal = null
    }
    // 2. Snapshot, in one synchronous step (a reference point created meanwhile must not land half in it): the
    // state as of now, the live bitmap and the segments not yet persisted. Then write the bitmap files.
    st.checkpointSeq++
    st.clean = clean
    if (this.untrusted && !st.untrustedReason) st.untrustedReason = this.untrusted
    const snap: StoreState = structuredClone(st)
    const liveFile = `live-${snap.checkpointSeq}.bm`
    snap.liveFile = liveFile
    const liveBytes = this.live.serialize()
    const segments: Array<{ id: string; bm: DenseBitmap; file: string; bytes: Uint8Array }> = []
    for (const [id, bm] of this.dirtySegments) {
      const rec = snap.refPoints.find(r => r.id === id)
      if (!rec) continue
      rec.segmentFile = `seg-${rec.sequence}-${snap.checkpointSeq}.bm`
      segments.push({ id, bm, file: rec.segmentFile, bytes: bm.serialize() })
    }
    await writeFileAtomic(path.join(dir, liveFile), liveBytes, false)
    for (const seg of segments) await writeFileAtomic(path.join(dir, seg.file), seg.bytes, false)
    await fsyncDir(dir)
    // 3. Commit, then bring the in-memory state up to what is now durable.
    await writeState(path.join(dir, 'state.json'), snap)
    st.liveFile = liveFile
    for (const seg of segments) {
      const rec = st.refPoints.find(r => r.id === seg.id)
      if (rec) rec.segmentFile = seg.file
      if (this.dirtySegments.get(seg.id) === seg.bm) this.dirtySegments.delete(seg.id)
    }
    // 4. Clean up: the old journal's marks are now in the persistent copy.
    if (oldJournal) await oldJournal.close()
    const keep = new Set<string>(['state.json', st.liveFile, snap.liveFile])
    for (const r of [...st.refPoints, ...snap.refPoints]) if (r.segmentFile) keep.add(r.segmentFile)
    if (this.journal) keep.add(path.basename(this.journal.file))
    for (const name of await fsp.readdir(dir)) {
      if (!keep.has(name) && /^(live-\d+\.bm|seg-\d+-\d+\.bm|journal-\d+\.mrt)$/.test(name)) {
        await fsp.rm(path.join(dir, name), { force: true })
      }
    }
    await fsyncDir(dir)
  }
}
