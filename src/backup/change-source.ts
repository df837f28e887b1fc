/**
 * Choosing what a backup must read: the change source, tried in order
 *
 *   1. tracking     the tracking store's changed ranges between the base backup's reference point and a new one
 *                   created now (src/tracking/store.ts); O(changed) and exact to the 64 KiB granule;
 *   2. differencing the disk is a differencing disk whose parent is what the base backup saw: the child's own
 *                   allocation is the change set (src/tracking/differencing-source.ts);
 *   3. content-scan every allocated chunk is read and hashed, and compared with the base manifest: reads
 *                   everything, stores only what changed, never misses a change.
 *
 * Each step that is skipped says why, and the reasons travel into the result and the manifest, so a fallback is
 * never silent (the top complaint about other tools). Tracking is opened read-write: the new reference point is
 * the base of the next backup. When tracking is enabled but untrusted (disk written outside tracking, store
 * damaged), the backup resets it after falling back, so the next incremental is fast again; the reset is reported.
 */
import fsp from 'node:fs/promises'
import { EngineError } from '../engine/errors.js'
import { inspectDisk } from '../formats/inspect.js'
import type { VirtualDisk } from '../formats/virtual-disk.js'
import { differencingChanges } from '../tracking/differencing-source.js'
import { probeDiskIdentity } from '../tracking/disk-identity.js'
import type { ByteRange } from '../tracking/ranges.js'
import { TrackingStore, type RefPointInfo } from '../tracking/store.js'
import type { ChangeSource, DiskDescription, Manifest } from './manifest.js'

export interface ChangeSet {
  source: ChangeSource
  /** One sentence per decision: which source was used and why the better ones were not. */
  reasons: string[]
  /** True when a better source was wanted but could not be used. */
  fellBack: boolean
  /** Changed ranges (null: every chunk must be examined). */
  ranges: ByteRange[] | null
  /** The reference point created for this backup, if tracking is usable after this backup. */
  referencePoint: { id: string; generation: string } | null
}

/** The tracking store a backup uses: `owned` when the backup opened it (and must close it). */
export interface OpenedTracking {
  store: TrackingStore | null
  /** Why there is no store, when there is none. */
  note: string | null
  owned: boolean
}

/** An open tracking store for the disk (null when not enabled), or why it could not be opened. */
export async function openTracking(diskPath: string, sizeBytes: number): Promise<OpenedTracking> {
  try {
    await fsp.access(`${diskPath}.hvcbt`)
  } catch {
    return { store: null, owned: false, note: 'change tracking is not enabled for this disk (`hvcbt tracking enable` makes incrementals read only what changed)' }
  }
  try {
    const identity = await probeDiskIdentity(diskPath)
    return { store: await TrackingStore.open(diskPath, { identity, diskSizeBytes: sizeBytes }), note: null, owned: true }
  } catch (err) {
    if (err instanceof EngineError && err.category === 'ResourceBusy') {
      // Someone is writing the disk (an NBD export holds the store): a copy now would mix moments in time.
      throw new EngineError(`cannot back up ${diskPath} while it is open for writing: ${err.message}. A backup must ` +
        'read one point in time; back it up through the engine that exports it (its checkpoint keeps one instant), ' +
        'or stop the writer first', 'ResourceBusy', err.code, err.data)
    }
    return { store: null, owned: false, note: `the tracking store cannot be opened: ${(err as Error).message}` }
  }
}

/**
 * Decide the change set of a backup of `disk` against `base` (null: full backup), creating the new reference
 * point when tracking is (or, after a reset, becomes) usable.
 */
export async function chooseChanges(disk: VirtualDisk, desc: DiskDescription, base: Manifest | null,
  store: TrackingStore | null, trackingNote: string | null, log: (m: string) => void,
  preCreated: RefPointInfo | null = null): Promise<ChangeSet> {
  const reasons: string[] = []
  let referencePoint: ChangeSet['referencePoint'] = null
  let trackingRanges: ByteRange[] | null = null
  let trackingWhyNot: string | null = trackingNote
  if (store) {
    if (!store.trusted) {
      trackingWhyNot = `change tracking cannot be trusted: ${store.status().untrustedReason}`
      await store.reset(await probeDiskIdentity(desc.path), desc.virtualSizeBytes)
      reasons.push(`${trackingWhyNot}; tracking was reset, so the next backup can use it again`)
    } else if (base) {
      const rp = base.referencePoint
      const have = store.listRefPoints().some(r => r.id === rp?.id)
      if (!rp) trackingWhyNot = `base backup ${base.id} has no tracking reference point (tracking was not enabled then)`
      else if (rp.generation !== store.generation) trackingWhyNot = `tracking was reset since base backup ${base.id} (its reference point ${rp.id} belongs to an older generation)`
      else if (!have) trackingWhyNot = `reference point ${rp.id} of base backup ${base.id} no longer exists in the tracking store`
    }
    // A live disk's point was created in the checkpoint's freeze step, at the instant the view shows.
    const created = preCreated ?? await store.createRefPoint()
    referencePoint = { id: created.id, generation: store.generation }
    if (base && !trackingWhyNot && base.referencePoint) {
      trackingRanges = await store.changedRanges(base.referencePoint.id, created.id)
    }
  }
  if (!base) {
    reasons.unshift('full backup: every allocated chunk is read')
    return { source: 'full-read', reasons, fellBack: false, ranges: null, referencePoint }
  }
  if (trackingRanges) {
    reasons.unshift(`tracking: changes between reference points ${base.referencePoint!.id} and ${referencePoint!.id}`)
    return { source: 'tracking', reasons, fellBack: false, ranges: trackingRanges, referencePoint }
  }
  reasons.push(`tracking not used: ${trackingWhyNot ?? 'unknown reason'}`)
  const diffWhyNot = await differencingUsable(desc, base)
  if (!diffWhyNot) {
    const ranges = await differencingChanges(disk)
    reasons.unshift(`differencing disk: the child's own allocation since its parent ${desc.parent!.path}`)
    for (const r of reasons.slice(1)) log(r)
    return { source: 'differencing', reasons, fellBack: true, ranges, referencePoint }
  }
  reasons.push(`differencing disk not used: ${diffWhyNot}`)
  reasons.unshift('content scan: every allocated chunk is read and compared with the base backup (only changes are stored)')
  for (const r of reasons.slice(1)) log(r)
  return { source: 'content-scan', reasons, fellBack: true, ranges: null, referencePoint }
}

/** Null when the disk's child layer is a valid change set against `base`, else why not. */
async function differencingUsable(desc: DiskDescription, base: Manifest): Promise<string | null> {
  if (desc.type !== 'differencing' || !desc.parent) return 'the disk is not a differencing disk'
  const p = desc.parent
  // The base saw the parent itself (a backup of the parent file, unchanged since)...
  if (base.disk.path === p.path && base.disk.type !== 'differencing') {
    const info = await inspectDisk(p.path)
    const st = await fsp.stat(p.path)
    if (info.diskId !== base.disk.diskId) return `the parent's disk id changed since base backup ${base.id}`
    if (st.mtimeMs > Date.parse(base.startedAt)) return `the parent ${p.path} was modified after base backup ${base.id}`
    return null
  }
  // ...or the base was this same child over the same, unchanged parent (the child then holds a superset).
  if (base.disk.path === desc.path && base.disk.parent && base.disk.parent.path === p.path &&
    base.disk.parent.diskId === p.diskId && base.disk.parent.mtimeMs === p.mtimeMs && base.disk.parent.fileSizeBytes === p.fileSizeBytes) {
    return null
  }
  return `base backup ${base.id} is neither of the parent ${p.path} nor of this child over the same unchanged parent`
}

export function stopped(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new EngineError('backup cancelled', 'OperationStopped')
}
