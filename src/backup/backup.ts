/**
 * `hvcbt backup create <disk> --repo DIR [--mode auto|full|incremental|differential]`
 *
 * 1. Lock the repository; describe the disk (format, geometry, identity, parent); pick the base: the last backup of
 *    this disk (incremental), the last full one (differential), none (full); auto = incremental when a base exists.
 * 2. Choose the change source (change-source.ts): tracking -> differencing -> content scan, creating the tracking
 *    reference point that the next backup will start from.
 * 3. Examine the chunks in the change set (all allocated chunks for full and content scan): the allocation map
 *    answers first (a chunk with no data is a zero chunk, never read); the rest is read, hashed, and stored when the
 *    repository lacks that hash. Chunks outside the change set inherit the base's hash, so the manifest is
 *    complete. Up to `concurrency` chunks are in flight (read, hash, compress, write overlap).
 * 4. Commit: packs durable and indexed, then chunk list, then the manifest JSON. Then drop the tracking reference points
 *    that only older backups of this repository used (keeping the last full's for differentials).
 *
 * Reads are counted at the source (bytesRead) and writes at the repository (bytesWritten), so tests and users see
 * what an incremental really cost.
 */
import { createHash } from 'node:crypto'
import fsp from 'node:fs/promises'
import { realpath } from 'node:fs/promises'
import { describeChain, openDisk, resolvedExtents } from '../formats/open.js'
import { inspectDisk } from '../formats/inspect.js'
import type { VirtualDisk } from '../formats/virtual-disk.js'
import { probeDiskIdentity } from '../tracking/disk-identity.js'
import type { ByteRange } from '../tracking/ranges.js'
import { chooseChanges, openTracking, stopped, type OpenedTracking } from './change-source.js'
import { liveDisk, type LiveDisk } from './live-disks.js'
import type { RefPointInfo, TrackingStore } from '../tracking/store.js'
import { sha256HexMany } from './chunk-codec.js'
import {
  HASH_BYTES, ZERO_HASH, newBackupId, type BackupMode, type BackupStats, type ChangeSource, type DiskDescription, type Manifest,
} from './manifest.js'
import { Repository } from './repository.js'

export type RequestedMode = BackupMode | 'auto'

export interface BackupOptions {
  diskPath: string
  repoDir: string
  mode?: RequestedMode
  /** Chunk size of a new repository (existing ones keep theirs). */
  chunkSizeBytes?: number
  /** Pack file size of a new repository. */
  packSizeBytes?: number
  /** Chunks in flight at once (default 4). */
  concurrency?: number
  breakLock?: boolean
  progress?(done: number, total: number, message?: string): void
  log?(level: 'warning' | 'info' | 'verbose', message: string): void
  signal?: AbortSignal
  /** Test hook: called (and awaited) after each chunk is examined (the kill and live tests act midway). */
  onChunk?(index: number): void | Promise<void>
}

export interface BackupResult {
  id: string
  repo: string
  disk: string
  requestedMode: RequestedMode
  mode: BackupMode
  parentId: string | null
  changeSource: ChangeSource
  /** True when a better change source was wanted but not usable (the reasons say why). */
  fellBack: boolean
  reasons: string[]
  referencePoint: string | null
  virtualSizeBytes: number
  chunkSizeBytes: number
  /** Bytes the change set covers, rounded out to whole chunks (what an ideal incremental reads). */
  changedBytesChunkRounded: number
  stats: BackupStats
  durationMs: number
  /** Where the time went: prepare (describe, base), changes (tracking/source), copy (read+hash+store), commit. */
  phasesMs: Record<string, number>
}

/** Describe the disk for the manifest (and to find earlier backups of it). */
export async function describeDisk(path: string, disk: VirtualDisk): Promise<DiskDescription> {
  const info = await inspectDisk(path)
  let parent: DiskDescription['parent'] = null
  if (info.type === 'differencing') {
    const chain = await describeChain(path)
    const p = chain[1]
    if (p) {
      const real = await realpath(p.path)
      const st = await fsp.stat(real)
      parent = { path: real, diskId: (await inspectDisk(real)).diskId, fileSizeBytes: st.size, mtimeMs: st.mtimeMs }
    }
  }
  return {
    path, format: info.format, type: info.type, virtualSizeBytes: disk.size,
    logicalSectorSizeBytes: disk.logicalSectorSize, physicalSectorSizeBytes: disk.physicalSectorSize,
    blockSizeBytes: info.blockSizeBytes, diskId: info.diskId, parent,
  }
}

export async function createBackup(o: BackupOptions): Promise<BackupResult> {
  const t0 = Date.now()
  const log = o.log ?? (() => {})
  const repo = await Repository.open(o.repoDir, {
    create: true, chunkSizeBytes: o.chunkSizeBytes, packSizeBytes: o.packSizeBytes, warn: m => log('warning', m),
  })
  const lock = await repo.lock('backup create', { breakLock: o.breakLock }).catch(async err => { await repo.close(); throw err })
  if (lock.tookOverStale) log('warning', `took over a stale repository lock of process ${lock.tookOverStale.pid} on ${lock.tookOverStale.host} (${lock.tookOverStale.purpose})`)
  try {
    await repo.removeTemporaries()
    const path = await realpath(o.diskPath)
    const live = liveDisk(path)
    if (live) return await backupLive(o, repo, path, live, t0, log)
    const disk = await openDisk(path, { readOnly: true })
    try {
      return await runBackup(o, repo, path, disk, t0, log, await openTracking(path, disk.size), null)
    } finally {
      await disk.close()
    }
  } finally {
    await repo.close()
    await lock.release()
  }
}

/** A disk exported for writing by this engine: back up a checkpoint view cut together with the reference point. */
async function backupLive(o: BackupOptions, repo: Repository, path: string, live: LiveDisk, t0: number,
  log: NonNullable<BackupOptions['log']>): Promise<BackupResult> {
  const store = live.store && live.store.trusted ? live.store : null
  const note = live.store === null ? 'change tracking is not enabled for this disk'
    : store ? null : `change tracking cannot be trusted: ${live.store.status().untrustedReason} (\`hvcbt tracking reset\` after stopping the export)`
  const side = `${path}.backup-${process.pid}-${Date.now()}.cow`
  const { view, result: point } = await live.overlay.openCheckpoint(side, `backup of ${path}`, () => store ? store.createRefPoint() : null)
  log('verbose', `live disk: backing up checkpoint ${point?.id ?? '(untracked)'} while the export keeps writing (copy-before-write to ${side})`)
  try {
    return await runBackup(o, repo, path, view, t0, log, { store, note, owned: false }, point)
  } finally {
    await live.overlay.closeCheckpoint()
  }
}

async function runBackup(o: BackupOptions, repo: Repository, path: string, disk: VirtualDisk, t0: number,
  log: NonNullable<BackupOptions['log']>, tracking: OpenedTracking, point: RefPointInfo | null): Promise<BackupResult> {
  const startedAt = new Date().toISOString()
  const desc = await describeDisk(path, disk)
  const chunk = repo.chunkSizeBytes
  const chunkCount = Math.ceil(disk.size / chunk)
  const { manifests } = await repo.listManifests()
  const same = (m: Manifest, p: string): boolean => m.disk.path === p && m.disk.virtualSizeBytes === disk.size && m.chunkSizeBytes === chunk
  let mine = manifests.filter(m => same(m, path))
  if (mine.length === 0 && desc.parent) mine = manifests.filter(m => same(m, desc.parent!.path)) // first backup of a child: its parent's
  const lastAny = mine[mine.length - 1] ?? null
  const lastFull = [...mine].reverse().find(m => m.mode === 'full') ?? null
  const requested = o.mode ?? 'auto'
  let mode: BackupMode = requested === 'auto' ? (lastAny ? 'incremental' : 'full') : requested
  let base = mode === 'incremental' ? lastAny : mode === 'differential' ? lastFull : null
  const reasonsPre: string[] = []
  if (mode !== 'full' && !base) {
    reasonsPre.push(`${mode} requested but there is no earlier ${mode === 'differential' ? 'full ' : ''}backup of ${path} in this repository: taking a full backup`)
    log('warning', reasonsPre[0]!)
    mode = 'full'
    base = null
  }
  const phases: Record<string, number> = {}
  let mark = Date.now()
  const phase = (name: string): void => { const n = Date.now(); phases[name] = n - mark; mark = n }
  phase('prepare')
  let changes
  try {
    changes = await chooseChanges(disk, desc, base, tracking.store, tracking.note, m => log('warning', m), point)
  } catch (err) {
    if (tracking.owned) await tracking.store?.close(await probeDiskIdentity(path)).catch(() => {})
    throw err
  }
  if (!base && tracking.note) changes.reasons.push(tracking.note)
  changes.reasons.unshift(...reasonsPre)
  try {
    const baseList = base ? await repo.readChunkList(base) : null
    phase('changes')
    const { list, stats, changedBytes, imageSha256 } = await examine(o, repo, disk, chunkCount, changes.ranges, baseList)
    phase('copy')
    const m: Manifest = {
      format: 'hvcbt-backup-manifest', version: 1, id: newBackupId(), mode, disk: desc, chunkSizeBytes: chunk, chunkCount,
      chunkListSha256: createHash('sha256').update(list).digest('hex'), imageSha256,
      changeSource: changes.source, changeSourceReason: changes.reasons.join('; '),
      referencePoint: changes.referencePoint, parentId: base?.id ?? null, startedAt, finishedAt: new Date().toISOString(), stats,
    }
    await repo.writeManifest(m, list)
    phase('commit')
    if (tracking.store) await dropOldReferencePoints(tracking.store, [...manifests, m], path, m, log)
    return {
      id: m.id, repo: repo.dir, disk: path, requestedMode: requested, mode, parentId: m.parentId, changeSource: m.changeSource,
      fellBack: changes.fellBack, reasons: changes.reasons, referencePoint: m.referencePoint?.id ?? null,
      virtualSizeBytes: disk.size, chunkSizeBytes: chunk, changedBytesChunkRounded: changedBytes, stats,
      durationMs: Date.now() - t0, phasesMs: phases,
    }
  } catch (err) {
    // The new reference point would make the next backup miss nothing (it only splits segments), but it is noise.
    if (changes.referencePoint) await tracking.store?.removeRefPoint(changes.referencePoint.id).catch(() => {})
    throw err
  } finally {
    if (tracking.owned) await tracking.store?.close(await probeDiskIdentity(path).catch(() => undefined))
  }
}

/** Remove reference points used only by older backups of this disk in this repository (merging their changes). */
async function dropOldReferencePoints(store: TrackingStore, all: Manifest[], path: string,
  latest: Manifest, log: NonNullable<BackupOptions['log']>): Promise<void> {
  const mine = all.filter(m => m.disk.path === path && m.referencePoint?.generation === store.generation)
  const lastFull = [...mine].reverse().find(m => m.mode === 'full')
  const keep = new Set([latest.referencePoint?.id, lastFull?.referencePoint?.id])
  const existing = new Set(store.listRefPoints().map(r => r.id))
  for (const m of mine) {
    const id = m.referencePoint!.id
    if (keep.has(id) || !existing.has(id)) continue
    await store.removeRefPoint(id)
    existing.delete(id)
    log('verbose', `removed tracking reference point ${id} (backup ${m.id} no longer needs it)`)
  }
}

/** Chunk indexes a list of byte ranges touches, as a bitmap over chunks. */
function chunksOf(ranges: ByteRange[], chunk: number, count: number): Uint8Array {
  const sel = new Uint8Array(count)
  for (const r of ranges) {
    const first = Math.floor(r.offset / chunk)
    const last = Math.min(count - 1, Math.floor((r.offset + r.length - 1) / chunk))
    for (let i = first; i <= last; i++) sel[i] = 1
  }
  return sel
}

/** Per chunk: 1 when any byte of it may hold data (allocation map resolved through the chain), else 0. */
async function allocationOf(disk: VirtualDisk, chunk: number, count: number): Promise<Uint8Array> {
  const alloc = new Uint8Array(count)
  const STEP = 1024 ** 3
  for (let pos = 0; pos < disk.size; pos += STEP) {
    for (const e of await resolvedExtents(disk, pos, Math.min(STEP, disk.size - pos))) {
      if (e.state !== 'data') continue
      const first = Math.floor(e.offset / chunk)
      const last = Math.floor((e.offset + e.length - 1) / chunk)
      for (let i = first; i <= last; i++) alloc[i] = 1
    }
  }
  return alloc
}

let zeroBuf: Buffer | null = null
export function isZero(b: Buffer): boolean {
  if (!zeroBuf || zeroBuf.length < b.length) zeroBuf = Buffer.alloc(Math.max(b.length, 1024 * 1024))
  return b.compare(zeroBuf, 0, b.length) === 0
}

interface Examined { list: Buffer; stats: BackupStats; changedBytes: number; imageSha256: string | null }

async function examine(o: BackupOptions, repo: Repository, disk: VirtualDisk, count: number, ranges: ByteRange[] | null,
  baseList: Buffer | null): Promise<Examined> {
  const chunk = repo.chunkSizeBytes
  const list = Buffer.alloc(count * HASH_BYTES)
  if (baseList) baseList.copy(list)
  const alloc = await allocationOf(disk, chunk, count)
  const selected = ranges ? chunksOf(ranges, chunk, count) : new Uint8Array(count).fill(1)
  const stats: BackupStats = { bytesRead: 0, bytesWritten: 0, chunksExamined: 0, chunksChanged: 0, chunksStored: 0, chunksZero: 0, allocatedBytes: 0 }
  const todo: number[] = []
  let changedBytes = 0
  for (let i = 0; i < count; i++) {
    if (!selected[i]) continue
    todo.push(i)
    changedBytes += Math.min(chunk, disk.size - i * chunk)
  }
  // In-order image hash when every chunk is examined (full, content scan).
  const image = ranges === null ? createHash('sha256') : null
  const total = changedBytes
  let done = 0
  const concurrency = Math.max(1, o.concurrency ?? 4)
  // chunks between two in-order points (the image hash): at least 4 MiB, so small chunks keep every worker busy
  const WINDOW = Math.max(concurrency * 2, Math.ceil(4 * 1024 * 1024 / chunk))
  // the image hash of one window runs on the main thread while the next window's chunks are read
  let previous: { batch: number[]; results: (Buffer | null)[] } | null = null
  const hashImage = (): void => {
    if (!image || !previous) return
    for (let k = 0; k < previous.batch.length; k++) {
      image.update(previous.results[k] ?? zeroOf(Math.min(chunk, disk.size - previous.batch[k]! * chunk)))
    }
  }
  for (let w = 0; w < todo.length; w += WINDOW) {
    stopped(o.signal)
    const batch = todo.slice(w, w + WINDOW)
    const results = new Array<Buffer | null>(batch.length)
    let next = 0
    const worker = async (): Promise<void> => {
      for (let k = next++; k < batch.length; k = next++) {
        const i = batch[k]!
        const len = Math.min(chunk, disk.size - i * chunk)
        let data: Buffer | null = null
        if (alloc[i]) {
          data = Buffer.allocUnsafe(len)
          await disk.read(i * chunk, data)
          stats.bytesRead += len
          if (isZero(data)) data = null
        }
        stats.chunksExamined++
        const slot = list.subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES)
        if (data === null) {
          if (baseList && !slot.equals(ZERO_HASH)) stats.chunksChanged++
          ZERO_HASH.copy(slot)
          stats.chunksZero++
        } else {
          const [hash] = await sha256HexMany([data])
          const h = Buffer.from(hash, 'hex')
          if (!baseList || !h.equals(slot)) stats.chunksChanged++
          h.copy(slot)
          stats.allocatedBytes += len
          const written = await repo.putChunk(hash, data)
          if (written > 0) { stats.chunksStored++; stats.bytesWritten += written }
        }
        results[k] = data
        done += len
        o.progress?.(done, total, 'backing up')
        await o.onChunk?.(i)
      }
    }
    const working = Promise.all(Array.from({ length: Math.min(concurrency, batch.length) }, worker))
    hashImage()
    await working
    previous = { batch, results }
  }
  hashImage()
  // Zero chunks outside the examined set still count.
  if (ranges !== null) {
    stats.chunksZero = 0
    stats.allocatedBytes = 0
    for (let i = 0; i < count; i++) {
      if (list.subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES).equals(ZERO_HASH)) stats.chunksZero++
      else stats.allocatedBytes += Math.min(chunk, disk.size - i * chunk)
    }
  }
  return { list, stats, changedBytes, imageSha256: image ? image.digest('hex') : null }
}

function zeroOf(len: number): Buffer {
  if (!zeroBuf || zeroBuf.length < len) zeroBuf = Buffer.alloc(Math.max(len, 1024 * 1024))
  return zeroBuf.subarray(0, len)
}

