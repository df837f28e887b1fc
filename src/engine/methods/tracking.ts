/**
 * Change tracking methods: `hvcbt tracking enable|disable|status|reset`, `tracking refpoint create|list|remove`,
 * `tracking changes`, `tracking scan`, `tracking differencing`; and the NBD export hook that makes every export of
 * a tracked disk mark its writes (TrackedDisk) and offer `qemu:dirty-bitmap:<reference point>` contexts.
 *
 * One writer per store: an export started in this engine holds its store open; the methods below use that open
 * store (so a reference point created through JSON-RPC freezes the live bitmap of the running export). Without one
 * they open the store themselves (read-write for changes of state, read-only for queries). A store held by another
 * process fails read-write opens with ResourceBusy; queries still work there (persistent copy OR journal: exact
 * after the export's idle checkpoint, possibly over-reporting by coarse regions before it).
 */
import { mkdir } from 'node:fs/promises'
import { resolve } from 'node:path'
import { Type, type Static } from 'typebox'
import { EngineError } from '../errors.js'
import { defineMethod, type AnyMethod } from '../method.js'
import { formatBytes } from '../../cli/format.js'
import { openDisk, parentOf } from '../../formats/open.js'
import { parseSize } from '../../formats/size.js'
import type { VirtualDisk } from '../../formats/virtual-disk.js'
import { registerNbdExportHook } from './nbd.js'
import { probeDiskIdentity } from '../../tracking/disk-identity.js'
import { DirtyBitmapContext, DIRTY_BITMAP_CONTEXT_PREFIX } from '../../tracking/dirty-bitmap-context.js'
import { TrackingStore, sidecarPathOf, type TrackingStatus } from '../../tracking/store.js'
import { TrackedDisk } from '../../tracking/tracked-disk.js'
import { CheckpointOverlay, type CheckpointView } from '../../tracking/checkpoint-overlay.js'
import { totalBytes, type ByteRange } from '../../tracking/ranges.js'
import { filterZeroGranules } from '../../tracking/zero-filter.js'
import { compareHashMaps, loadHashMap, saveHashMap, scanDisk, uncovered, type ScanAlgorithm } from '../../tracking/content-scan.js'
import { differencingChanges } from '../../tracking/differencing-source.js'

/** Stores held open by NBD exports in this engine, by resolved disk path. */
const liveStores = new Map<string, TrackingStore>()
/** The copy-before-write layer of each tracked export, by resolved disk path. */
const liveOverlays = new Map<string, CheckpointOverlay>()
/** Open checkpoints (consistent views at a reference point) by reference point id. */
const openCheckpoints = new Map<string, { diskPath: string; view: CheckpointView }>()

/**
 * The consistent view of an open checkpoint (for the backup reader): the disk exactly as it was when reference
 * point `id` was created, while the export keeps taking writes. Undefined when no such checkpoint is open.
 */
export function getCheckpointView(id: string): CheckpointView | undefined {
  return openCheckpoints.get(id)?.view
}

/** Checkpoint this long after the last write of a burst, so readers in other processes get exact answers. */
const IDLE_CHECKPOINT_MS = 500

registerNbdExportHook(async (diskPath, disk, readOnly) => {
  const path = resolve(diskPath)
  let store: TrackingStore
  try {
    store = readOnly
      ? await TrackingStore.open(path, { readOnly: true, identity: await probeDiskIdentity(path), diskSizeBytes: disk.size })
      : await TrackingStore.open(path, { identity: await probeDiskIdentity(path), diskSizeBytes: disk.size })
  } catch (err) {
    if (err instanceof EngineError && err.category === 'ObjectNotFound') return null // tracking not enabled
    throw err
  }
  const contexts = new Map<string, DirtyBitmapContext>()
  const lister = {
    prefix: DIRTY_BITMAP_CONTEXT_PREFIX,
    async list() {
      const out = []
      for (const rp of store.listRefPoints()) {
        let c = contexts.get(rp.id)
        if (!c) contexts.set(rp.id, c = new DirtyBitmapContext(store, rp.id))
        out.push(c)
      }
      return out
    },
  }
  if (readOnly) return { metaContextListers: [lister], close: () => store.close() }
  liveStores.set(path, store)
  const tracked = new TrackedDisk(disk, store, { diskPath: path, closeStore: false, idleCheckpointMs: IDLE_CHECKPOINT_MS })
  // Outermost: copy-before-write, so a checkpoint sees every write (tracking marks it below).
  const overlay = new CheckpointOverlay(tracked, store.granularityBytes)
  liveOverlays.set(path, overlay)
  return {
    disk: overlay,
    metaContextListers: [lister],
    async close() {
      for (const [id, c] of openCheckpoints) if (c.diskPath === path) openCheckpoints.delete(id)
      await overlay.closeCheckpoint()
      liveOverlays.delete(path)
      liveStores.delete(path)
      await store.close(await probeDiskIdentity(path))
    },
  }
})

const Size = (description: string) => Type.Union([Type.Integer({ minimum: 0 }), Type.String({ minLength: 1 })], { description })
const DiskParam = Type.String({ minLength: 1, description: 'disk file (VHDX, VHD or raw)' })

const RefPoint = Type.Object({
  id: Type.String({ description: 'rp-<generation>-<sequence>' }),
  sequence: Type.Integer({ minimum: 1 }),
  createdAt: Type.String({ description: 'ISO 8601 time' }),
})

const Status = Type.Object({
  diskPath: Type.String(),
  sidecarPath: Type.String(),
  generation: Type.String(),
  sequence: Type.Integer(),
  granularityBytes: Type.Integer(),
  coarseRegionBytes: Type.Integer(),
  diskSizeBytes: Type.Integer(),
  trusted: Type.Boolean(),
  untrustedReason: Type.Union([Type.String(), Type.Null()]),
  recoveredAfterCrash: Type.Boolean(),
  recoveryReason: Type.Union([Type.String(), Type.Null()]),
  openElsewhereOrCrashed: Type.Boolean(),
  refPoints: Type.Array(RefPoint),
  liveChangedBytes: Type.Integer(),
})

const Range = Type.Object({ offset: Type.Integer({ minimum: 0 }), length: Type.Integer({ minimum: 1 }) })

function statusHuman(s: TrackingStatus): string {
  const rows: [string, string][] = [
    ['Disk', s.diskPath],
    ['Trusted', s.trusted ? 'yes' : `NO: ${s.untrustedReason}`],
    ['Generation', s.generation],
    ['Granularity', formatBytes(s.granularityBytes)],
    ['Journal region', formatBytes(s.coarseRegionBytes)],
    ['Reference points', s.refPoints.map(r => r.id).join(', ') || '-'],
    ['Changed since newest', formatBytes(s.liveChangedBytes)],
  ]
  if (s.recoveredAfterCrash) rows.push(['Recovered', s.recoveryReason ?? 'yes'])
  if (s.openElsewhereOrCrashed) rows.push(['Note', 'open for writing elsewhere (or crashed): answers may over-report'])
  return rows.map(([k, v]) => `${k.padEnd(20)}: ${v}`).join('\n')
}

/** Virtual size of a disk file (opened read-only for the moment). */
async function virtualSize(path: string): Promise<number> {
  const d = await openDisk(path, { readOnly: true })
  try {
    return d.size
  } finally {
    await d.close()
  }
}

/** Run `fn` on a read-write store: the live one of an export in this engine, or one opened (and cleanly closed) here. */
async function withWritableStore<T>(path: string, fn: (s: TrackingStore) => Promise<T>): Promise<T> {
  const live = liveStores.get(path)
  if (live) return fn(live)
  const store = await TrackingStore.open(path, { identity: await probeDiskIdentity(path), diskSizeBytes: await virtualSize(path) })
  try {
    return await fn(store)
  } finally {
    await store.close(await probeDiskIdentity(path))
  }
}

/** Run `fn` on a store for reading: the live one, or a read-only open checked against the disk as it is now. */
async function withReadableStore<T>(path: string, fn: (s: TrackingStore) => Promise<T>): Promise<T> {
  const live = liveStores.get(path)
  if (live) return fn(live)
  const store = await TrackingStore.open(path, { readOnly: true, identity: await probeDiskIdentity(path), diskSizeBytes: await virtualSize(path) })
  try {
    return await fn(store)
  } finally {
    await store.close()
  }
}

function optGranularity(v: string | number | undefined, what: string): number | undefined {
  return v === undefined ? undefined : parseSize(v, what)
}

export const trackingMethods = [
  defineMethod({
    name: 'tracking.enable',
    summary: 'Start changed-block tracking for a disk (creates <disk>.hvcbt/)',
    description: 'Only writes made through HvCbt (its NBD export) are tracked; a write by anything else is detected ' +
      'at the next open (VHDX DataWriteGuid, file size/mtime/inode) and makes tracking untrusted until reset.',
    params: Type.Object({
      disk: DiskParam,
      granularity: Type.Optional(Size('bytes per bitmap bit, power of two 4K-64M (default 64K)')),
      journalRegion: Type.Optional(Size('bytes per coarse journal bit, power of two 1M-64M (default 8M)')),
    }, { additionalProperties: false }),
    result: Status,
    cli: {
      positional: ['disk'],
      human: statusHuman,
      examples: [['hvcbt tracking enable disk.vhdx --granularity 64K', 'track changes at 64 KiB granularity']],
    },
    async handler(p) {
      const path = resolve(p.disk)
      const size = await virtualSize(path)
      return TrackingStore.enable(path, size, await probeDiskIdentity(path), {
        granularityBytes: optGranularity(p.granularity, 'granularity'),
        coarseRegionBytes: optGranularity(p.journalRegion, 'journalRegion'),
      })
    },
  }),
  defineMethod({
    name: 'tracking.disable',
    summary: 'Stop changed-block tracking for a disk and delete its tracking files',
    params: Type.Object({ disk: DiskParam }, { additionalProperties: false }),
    result: Type.Object({ diskPath: Type.String(), disabled: Type.Boolean({ description: 'false if it was not enabled' }) }),
    cli: { positional: ['disk'] },
    async handler(p) {
      const path = resolve(p.disk)
      if (liveStores.has(path)) {
        throw new EngineError(`${path} is being exported with tracking; stop the export first`, 'ResourceBusy')
      }
      return { diskPath: path, disabled: await TrackingStore.disable(path) }
    },
  }),
  defineMethod({
    name: 'tracking.status',
    summary: 'Show whether tracking is trusted, its generation, granularity, reference points and recovery',
    params: Type.Object({ disk: DiskParam }, { additionalProperties: false }),
    result: Status,
    cli: { positional: ['disk'], human: statusHuman },
    async handler(p) {
      return withReadableStore(resolve(p.disk), async s => s.status())
    },
  }),
  defineMethod({
    name: 'tracking.reset',
    summary: 'Forget all tracking history: new generation, no reference points (take a full backup next)',
    params: Type.Object({
      disk: DiskParam,
      granularity: Type.Optional(Size('new granularity (default: keep)')),
    }, { additionalProperties: false }),
    result: Status,
    cli: { positional: ['disk'], human: statusHuman },
    async handler(p) {
      const path = resolve(p.disk)
      return withWritableStore(path, async s => {
        await s.reset(await probeDiskIdentity(path), await virtualSize(path), { granularityBytes: optGranularity(p.granularity, 'granularity') })
        return s.status()
      })
    },
  }),
  defineMethod({
    name: 'tracking.refpoint.create',
    summary: 'Create a reference point: later queries report changes made after this moment',
    description: 'With --checkpoint (disk exported with tracking by this engine) the moment is also kept readable: ' +
      'copy-before-write saves what later writes overwrite, so a backup reads exactly the content at the reference ' +
      'point while the export keeps taking writes. Close it with tracking.checkpoint.close.',
    params: Type.Object({
      disk: DiskParam,
      checkpoint: Type.Optional(Type.Boolean({ description: 'keep a consistent view of this moment (live export only)' })),
    }, { additionalProperties: false }),
    result: Type.Object({ ...RefPoint.properties, checkpoint: Type.Boolean({ description: 'a checkpoint view is open' }) }),
    cli: { positional: ['disk'], human: r => r.id + (r.checkpoint ? ' (checkpoint open)' : '') },
    async handler(p) {
      const path = resolve(p.disk)
      if (!p.checkpoint) return { ...(await withWritableStore(path, s => s.createRefPoint())), checkpoint: false }
      const store = liveStores.get(path)
      const overlay = liveOverlays.get(path)
      if (!store || !overlay) {
        throw new EngineError(`--checkpoint needs a tracked NBD export of ${path} in this engine (a disk nobody ` +
          'writes is its own consistent view)', 'InvalidOperation')
      }
      const side = `${sidecarPathOf(path)}/checkpoint-${Date.now()}-${process.pid}.cow`
      const { view, result } = await overlay.openCheckpoint(side, 'pending', () => store.createRefPoint())
      openCheckpoints.set(result.id, { diskPath: path, view })
      return { ...result, checkpoint: true }
    },
  }),
  defineMethod({
    name: 'tracking.checkpoint.close',
    summary: 'Close the checkpoint of a reference point (its saved copies are deleted; the reference point stays)',
    params: Type.Object({ disk: DiskParam, id: Type.String({ minLength: 1, description: 'reference point id' }) }, { additionalProperties: false }),
    result: Type.Object({ id: Type.String(), closed: Type.Boolean() }),
    cli: { positional: ['disk'] },
    async handler(p) {
      const path = resolve(p.disk)
      const c = openCheckpoints.get(p.id)
      if (!c || c.diskPath !== path) return { id: p.id, closed: false }
      openCheckpoints.delete(p.id)
      await liveOverlays.get(path)?.closeCheckpoint()
      return { id: p.id, closed: true }
    },
  }),
  defineMethod({
    name: 'tracking.refpoint.list',
    summary: 'List the reference points of a disk, oldest first',
    params: Type.Object({ disk: DiskParam }, { additionalProperties: false }),
    result: Type.Array(RefPoint),
    cli: { positional: ['disk'] },
    async handler(p) {
      return withReadableStore(resolve(p.disk), async s => s.listRefPoints())
    },
  }),
  defineMethod({
    name: 'tracking.refpoint.remove',
    summary: 'Remove a reference point (its changes merge into the previous one, so no change is lost)',
    params: Type.Object({ disk: DiskParam, id: Type.String({ minLength: 1, description: 'reference point id' }) }, { additionalProperties: false }),
    result: Type.Object({ id: Type.String(), removed: Type.Boolean() }),
    cli: { positional: ['disk'] },
    async handler(p) {
      await withWritableStore(resolve(p.disk), s => s.removeRefPoint(p.id))
      return { id: p.id, removed: true }
    },
  }),
  defineMethod({
    name: 'tracking.changes',
    summary: 'Changed byte ranges since a reference point (or between two), merged and rounded to the granularity',
    params: Type.Object({
      disk: DiskParam,
      since: Type.String({ minLength: 1, description: 'reference point id' }),
      until: Type.Optional(Type.String({ minLength: 1, description: 'later reference point id (default: now)' })),
      skipZeroes: Type.Optional(Type.Boolean({ description: 'read the ranges and drop granules that read as zeros' })),
    }, { additionalProperties: false }),
    result: Type.Object({
      since: Type.String(),
      until: Type.Union([Type.String(), Type.Null()]),
      granularityBytes: Type.Integer(),
      rangeCount: Type.Integer(),
      changedBytes: Type.Integer(),
      ranges: Type.Array(Range),
      zeroRanges: Type.Optional(Type.Array(Range, { description: 'with skipZeroes: changed ranges that read as zeros' })),
    }),
    cli: {
      positional: ['disk'],
      human: r => `${r.rangeCount} range(s), ${formatBytes(r.changedBytes)} changed since ${r.since}` +
        `${r.until ? ` until ${r.until}` : ''} (granularity ${formatBytes(r.granularityBytes)})` +
        (r.zeroRanges ? `; ${formatBytes(totalBytes(r.zeroRanges))} more changed to zeros` : ''),
      examples: [['hvcbt tracking changes disk.vhdx --since rp-1a2b3c4d-1 --json', 'ranges as JSON']],
    },
    async handler(p, ctx) {
      const path = resolve(p.disk)
      return withReadableStore(path, async s => {
        let ranges: ByteRange[] = await s.changedRanges(p.since, p.until)
        let zeroRanges: ByteRange[] | undefined
        if (p.skipZeroes) {
          const disk = await openDisk(path, { readOnly: true })
          try {
            const f = await filterZeroGranules(disk, ranges, s.granularityBytes, ctx.signal)
            ranges = f.data
            zeroRanges = f.zero
          } finally {
            await disk.close()
          }
        }
        return {
          since: p.since, until: p.until ?? null, granularityBytes: s.granularityBytes, rangeCount: ranges.length,
          changedBytes: totalBytes(ranges), ranges, ...(zeroRanges ? { zeroRanges } : {}),
        }
      })
    },
  }),
  defineMethod({
    name: 'tracking.scan',
    summary: 'Hash every block and report the blocks changed since the previous scan (works without tracking)',
    description: 'Saves the hash map in <disk>.hvcbt/scan-<blocksize>.hashes. With --verify and a previous scan ' +
      'taken with --refpoint, also checks that tracking reported every block the scan found changed.',
    params: Type.Object({
      disk: DiskParam,
      blockSize: Type.Optional(Size('bytes per hashed block, power of two (default 64K)')),
      algorithm: Type.Optional(Type.Union([Type.Literal('sha1'), Type.Literal('sha256')], { description: 'default sha1' })),
      refpoint: Type.Optional(Type.String({ description: 'record that this scan was taken at this reference point' })),
      verify: Type.Optional(Type.Boolean({ description: 'compare the scan diff with tracking changes since the previous scan\'s reference point' })),
      save: Type.Optional(Type.Boolean({ description: 'save the new hash map (default true)' })),
    }, { additionalProperties: false }),
    result: Type.Object({
      blocks: Type.Integer(),
      blockBytes: Type.Integer(),
      previousScanAt: Type.Union([Type.String(), Type.Null()]),
      changedBytes: Type.Union([Type.Integer(), Type.Null()], { description: 'null when there was no previous scan' }),
      ranges: Type.Array(Range),
      verified: Type.Union([Type.Boolean(), Type.Null()], { description: 'with --verify: true when tracking covered every changed block' }),
      missedByTracking: Type.Array(Range),
    }),
    cli: {
      positional: ['disk'],
      human: r => `${r.blocks} blocks of ${formatBytes(r.blockBytes)} hashed; ` +
        (r.changedBytes === null ? 'no previous scan to compare' : `${formatBytes(r.changedBytes)} in ${r.ranges.length} range(s) changed since ${r.previousScanAt}`) +
        (r.verified === null ? '' : r.verified ? '; tracking covered every change' : `; TRACKING MISSED ${formatBytes(totalBytes(r.missedByTracking))}`),
      exitCode: r => (r.verified === false ? 1 : 0),
    },
    async handler(p, ctx) {
      const path = resolve(p.disk)
      const blockBytes = p.blockSize === undefined ? 64 * 1024 : parseSize(p.blockSize, 'blockSize')
      const file = `${sidecarPathOf(path)}/scan-${blockBytes}.hashes`
      const prev = await loadHashMap(file).catch(err => {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
        ctx.log('warning', `previous hash map unusable, starting over: ${(err as Error).message}`)
        return null
      })
      const disk: VirtualDisk = await openDisk(path, { readOnly: true })
      let map
      try {
        map = await scanDisk(disk, {
          blockBytes, algorithm: (p.algorithm ?? prev?.algorithm ?? 'sha1') as ScanAlgorithm, refPointId: p.refpoint,
          signal: ctx.signal, progress: (d, t) => ctx.progress(d, t, 'hashing'),
        })
      } finally {
        await disk.close()
      }
      const comparable = prev && prev.algorithm === map.algorithm && prev.diskSizeBytes === map.diskSizeBytes
      const ranges = comparable ? compareHashMaps(prev, map) : []
      let verified: boolean | null = null
      let missed: ByteRange[] = []
      if (p.verify) {
        if (!comparable || !prev.refPointId) {
          throw new EngineError('--verify needs a previous scan of the same geometry taken with --refpoint', 'InvalidOperation')
        }
        const reported = await withReadableStore(path, s => s.changedRanges(prev.refPointId))
        missed = uncovered(ranges, reported)
        verified = missed.length === 0
      }
      if (p.save !== false) {
        await mkdir(sidecarPathOf(path), { recursive: true })
        await saveHashMap(file, map)
      }
      return {
        blocks: map.digests.length / (map.algorithm === 'sha1' ? 20 : 32), blockBytes,
        previousScanAt: prev ? new Date(prev.scannedAt).toISOString() : null,
        changedBytes: comparable ? totalBytes(ranges) : null, ranges, verified, missedByTracking: missed,
      }
    },
  }),
  defineMethod({
    name: 'tracking.import',
    summary: 'Add the changes found by another source to a tracked disk (after its newest reference point)',
    description: '--from-differencing CHILD: the sectors present in a differencing child of this disk (e.g. writes a ' +
      'VM made to a Hyper-V checkpoint AVHDX). --from-scan: the blocks whose content changed since the last saved ' +
      'content scan of this disk (the scan map is updated). Both are added to the live bitmap, journaled and ' +
      'checkpointed, so tracking.changes and the dirty-bitmap contexts include them.',
    params: Type.Object({
      disk: DiskParam,
      fromDifferencing: Type.Optional(Type.String({ minLength: 1, description: 'differencing child whose present sectors to import' })),
      fromScan: Type.Optional(Type.Boolean({ description: 'import the blocks changed since the last saved content scan' })),
    }, { additionalProperties: false }),
    result: Type.Object({ rangeCount: Type.Integer(), importedBytes: Type.Integer() }),
    cli: { positional: ['disk'], human: r => `imported ${r.rangeCount} range(s), ${formatBytes(r.importedBytes)}` },
    async handler(p, ctx) {
      const path = resolve(p.disk)
      if ((p.fromDifferencing === undefined) === (p.fromScan !== true)) {
        throw new EngineError('give exactly one of --from-differencing CHILD and --from-scan', 'InvalidArgument')
      }
      let ranges: ByteRange[]
      if (p.fromDifferencing !== undefined) {
        const child = await openDisk(resolve(p.fromDifferencing), { readOnly: true, onNote: m => ctx.log('warning', m) })
        try {
          if (!parentOf(child)) throw new EngineError(`${p.fromDifferencing} is not a differencing disk`, 'InvalidArgument')
          ranges = await differencingChanges(child, { signal: ctx.signal })
        } finally {
          await child.close()
        }
      } else {
        const scan = findMethod('tracking.scan')
        const r = await scan.handler({ disk: path }, ctx) as { changedBytes: number | null; ranges: ByteRange[] }
        if (r.changedBytes === null) throw new EngineError(`no previous content scan of ${path} to compare with`, 'InvalidOperation')
        ranges = r.ranges
      }
      await withWritableStore(path, s => s.importChanges(ranges))
      return { rangeCount: ranges.length, importedBytes: totalBytes(ranges) }
    },
  }),
  defineMethod({
    name: 'tracking.differencing',
    summary: 'Changes recorded by a differencing disk (AVHDX / differencing VHD) relative to its parent',
    description: 'The sectors present in the child are the changes since the checkpoint that created it; no ' +
      'tracking store is needed.',
    params: Type.Object({
      disk: Type.String({ minLength: 1, description: 'the differencing (child) disk' }),
      granularity: Type.Optional(Size('round ranges out to this many bytes (default: none)')),
    }, { additionalProperties: false }),
    result: Type.Object({ rangeCount: Type.Integer(), changedBytes: Type.Integer(), ranges: Type.Array(Range) }),
    cli: { positional: ['disk'], human: r => `${r.rangeCount} range(s), ${formatBytes(r.changedBytes)} present in the child` },
    async handler(p, ctx) {
      const disk = await openDisk(resolve(p.disk), { readOnly: true, onNote: m => ctx.log('warning', m) })
      try {
        if (!parentOf(disk)) {
          throw new EngineError(`${p.disk} is not a differencing disk (it has no parent)`, 'InvalidArgument')
        }
        const ranges = await differencingChanges(disk, {
          granularityBytes: optGranularity(p.granularity, 'granularity'), signal: ctx.signal,
          progress: (d, t) => ctx.progress(d, t, 'reading allocation'),
        })
        return { rangeCount: ranges.length, changedBytes: totalBytes(ranges), ranges }
      } finally {
        await disk.close()
      }
    },
  }),
]

function findMethod(name: string): AnyMethod {
  return trackingMethods.find(m => m.name === name)! as unknown as AnyMethod
}

export type TrackingStatusResult = Static<typeof Status>
