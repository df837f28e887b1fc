/**
 * `hvcbt backup list` and `hvcbt backup prune --keep-last N [--keep-daily N] [--keep-weekly N]`.
 *
 * Retention is decided per disk (backups of different disks never push each other out). A backup is kept when any
 * rule keeps it: the newest N (keep-last); the newest backup of each of the last N days that have backups
 * (keep-daily, UTC days); the newest of each of the last N ISO weeks with backups (keep-weekly). Every backup is
 * complete (no chain), so removing any backup never breaks another.
 *
 * Garbage collection: after the manifests go, chunks no remaining manifest references are deleted: packs holding
 * only such chunks are removed, packs at least 20 % unreferenced are rewritten (pack-store.ts). Safety against a
 * concurrent backup: prune holds the repository's writer lock for its whole run, so no backup of this repository
 * runs meanwhile (a backup also holds it from start to commit). As a second guard, for writers that cannot see
 * the lock (a host that broke it), packs modified within `graceMinutes` (default 60) of the start of the prune are
 * left alone: an in-progress backup's packs are always that recent. Interrupted backups' packs older than that are
 * collected.
 */
import { AppErrorCode, EngineError } from '../engine/errors.js'
import type { Manifest } from './manifest.js'
import type { GcResult } from './pack-store.js'
import { Repository } from './repository.js'

export interface ListedBackup {
  id: string
  disk: string
  mode: string
  changeSource: string
  parentId: string | null
  finishedAt: string
  virtualSizeBytes: number
  /** Bytes this backup added to the repository (compressed). */
  storedBytes: number
  /** Bytes read from the disk. */
  readBytes: number
  referencePoint: string | null
}

export function listed(m: Manifest): ListedBackup {
  return {
    id: m.id, disk: m.disk.path, mode: m.mode, changeSource: m.changeSource, parentId: m.parentId, finishedAt: m.finishedAt,
    virtualSizeBytes: m.disk.virtualSizeBytes, storedBytes: m.stats.bytesWritten, readBytes: m.stats.bytesRead,
    referencePoint: m.referencePoint?.id ?? null,
  }
}

export async function listBackups(repoDir: string): Promise<{ backups: ListedBackup[]; damaged: { id: string; error: string }[] }> {
  const repo = await Repository.open(repoDir)
  const { manifests, damaged } = await repo.listManifests()
  return { backups: manifests.map(listed), damaged }
}

export interface PruneOptions {
  repoDir: string
  keepLast?: number
  keepDaily?: number
  keepWeekly?: number
  graceMinutes?: number
  dryRun?: boolean
  breakLock?: boolean
  log?(level: 'warning' | 'info' | 'verbose', message: string): void
}

export interface PruneResult extends GcResult {
  kept: string[]
  removed: string[]
  dryRun: boolean
}

/** ISO 8601 week key, e.g. 2026-W48. */
function isoWeek(d: Date): string {
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()))
  const day = t.getUTCDay() || 7
  t.setUTCDate(t.getUTCDate() + 4 - day)
  const year = t.getUTCFullYear()
  const week = Math.ceil(((t.getTime() - Date.UTC(year, 0, 1)) / 86400000 + 1) / 7)
  return `${year}-W${String(week).padStart(2, '0')}`
}

/** Ids kept by the rules among `ms` (one disk's backups, oldest first). */
export function retained(ms: Manifest[], o: Pick<PruneOptions, 'keepLast' | 'keepDaily' | 'keepWeekly'>): Set<string> {
  const keep = new Set<string>()
  const newest = [...ms].reverse()
  newest.slice(0, o.keepLast ?? 0).forEach(m => keep.add(m.id))
  const byPeriod = (n: number | undefined, key: (d: Date) => string): void => {
    if (!n) return
    const seen = new Set<string>()
    for (const m of newest) {
      const k = key(new Date(m.finishedAt))
      if (seen.has(k)) continue
      if (seen.size >= n) break
      seen.add(k)
      keep.add(m.id)
    }
  }
  byPeriod(o.keepDaily, d => d.toISOString().slice(0, 10))
  byPeriod(o.keepWeekly, isoWeek)
  return keep
}

export async function pruneRepository(o: PruneOptions): Promise<PruneResult> {
  if (!o.keepLast && !o.keepDaily && !o.keepWeekly) {
    throw new EngineError('prune needs at least one of --keep-last, --keep-daily, --keep-weekly (> 0): it would remove every backup', 'InvalidArgument')
  }
  const start = Date.now()
  const repo = await Repository.open(o.repoDir)
  const lock = await repo.lock('backup prune', { breakLock: o.breakLock })
  try {
    const { manifests, damaged } = await repo.listManifests()
    if (damaged.length) {
      // A damaged manifest's chunks are unknown: collecting garbage now could delete chunks it needs.
      throw new EngineError(`prune refused: ${damaged.length} manifest(s) cannot be read (${damaged.map(d => `${d.id}: ${d.error}`).join('; ')}); ` +
        'fix or remove them first', 'InvalidData', AppErrorCode.InvalidData, { damaged })
    }
    const byDisk = new Map<string, Manifest[]>()
    for (const m of manifests) byDisk.set(m.disk.path, [...(byDisk.get(m.disk.path) ?? []), m])
    const keep = new Set<string>()
    for (const ms of byDisk.values()) for (const id of retained(ms, o)) keep.add(id)
    const removed = manifests.filter(m => !keep.has(m.id)).map(m => m.id)
    const remaining = manifests.filter(m => keep.has(m.id))
    const lists: Buffer[] = []
    for (const m of remaining) {
      try {
        lists.push(await repo.readChunkList(m))
      } catch (err) {
        // A kept backup's chunks are unknown: collecting garbage now could delete chunks it needs.
        throw new EngineError(`prune refused: the chunk list of backup ${m.id}, which is kept, cannot be read ` +
          `(${(err as Error).message}); nothing was removed`, 'InvalidData', AppErrorCode.InvalidData, { id: m.id })
      }
    }
    if (!o.dryRun) for (const id of removed) await repo.removeManifest(id)
    const graceMs = (o.graceMinutes ?? 60) * 60_000
    const gc = await repo.collectGarbage(lists, start - graceMs, !!o.dryRun)
    if (!o.dryRun) await repo.removeTemporaries(graceMs)
    for (const id of removed) o.log?.('verbose', `${o.dryRun ? 'would remove' : 'removed'} backup ${id}`)
    return { kept: remaining.map(m => m.id), removed, ...gc, dryRun: !!o.dryRun }
  } finally {
    await repo.close()
    await lock.release()
  }
}
