/**
 * Backup methods: `hvcbt backup create|restore|verify|list|prune` (backup.create, ...), over src/backup/.
 *
 * Results carry what the operation really did (bytes read from the disk, bytes stored, which change source was
 * used and why), so a fallback to a slower source is visible in the CLI, in JSON and in PowerShell; the reasons
 * are also sent as warnings ($/log) when a better source could not be used. Long operations report bytes
 * done/total through ctx.progress (a bar on a terminal, Write-Progress in PowerShell).
 *
 * Live disks: the hook below registers every writable NBD export of this engine (src/backup/live-disks.ts) with its
 * copy-before-write CheckpointOverlay (the tracking hook's, which runs first, or one of its own for an untracked
 * disk) and tracking store, so backup.create of an exported disk reads one instant while the client keeps writing.
 */
import { realpath } from 'node:fs/promises'
import { resolve } from 'node:path'
import { Type } from 'typebox'
import { defineMethod } from '../method.js'
import { registerNbdExportHook } from './nbd.js'
import { CheckpointOverlay } from '../../tracking/checkpoint-overlay.js'
import { TrackedDisk } from '../../tracking/tracked-disk.js'
import { registerLiveDisk } from '../../backup/live-disks.js'
import type { VirtualDisk } from '../../formats/virtual-disk.js'
import type { TrackingStore } from '../../tracking/store.js'
import { formatBytes } from '../../cli/format.js'
import { parseSize } from '../../formats/size.js'
import { createBackup } from '../../backup/backup.js'
import { restoreBackup } from '../../backup/restore.js'
import { verifyRepository } from '../../backup/verify.js'
import { listBackups, pruneRepository } from '../../backup/prune.js'

registerNbdExportHook(async (diskPath, disk, readOnly) => {
  if (readOnly) return null // nothing writes it: a plain read is already one point in time
  // A tracked export is already wrapped (tracking hook): CheckpointOverlay over TrackedDisk. Use that overlay, so
  // every write passes one copy-before-write layer; an untracked export gets one of its own.
  const existing = disk instanceof CheckpointOverlay ? disk : null
  const overlay = existing ?? new CheckpointOverlay(disk)
  const forget = registerLiveDisk(await realpath(diskPath), { overlay, store: trackedStore(overlay) })
  if (existing) return { async close() { forget() } }
  return { disk: overlay, async close() { forget(); await overlay.closeCheckpoint() } }
})

/** The tracking store of the TrackedDisk somewhere below `disk` (filters expose the layer below as `inner`). */
function trackedStore(disk: VirtualDisk): TrackingStore | null {
  for (let d: VirtualDisk | undefined = disk; d; d = (d as { inner?: VirtualDisk }).inner) {
    if (d instanceof TrackedDisk) return d.store
  }
  return null
}

const Repo = Type.String({ minLength: 1, description: 'backup repository directory (created by the first backup)' })
const Int = Type.Integer({ minimum: 0 })

const Stats = Type.Object({
  bytesRead: Type.Integer({ description: 'bytes read from the source disk' }),
  bytesWritten: Type.Integer({ description: 'bytes written to the repository (compressed chunks)' }),
  chunksExamined: Int,
  chunksChanged: Int,
  chunksStored: Int,
  chunksZero: Int,
  allocatedBytes: Int,
})

const Listed = Type.Object({
  id: Type.String(),
  disk: Type.String(),
  mode: Type.String(),
  changeSource: Type.String(),
  parentId: Type.Union([Type.String(), Type.Null()]),
  finishedAt: Type.String(),
  virtualSizeBytes: Int,
  storedBytes: Int,
  readBytes: Int,
  referencePoint: Type.Union([Type.String(), Type.Null()]),
})

const ChunkProblem = Type.Object({
  hash: Type.String(),
  problem: Type.Union([Type.Literal('missing'), Type.Literal('corrupt')]),
  detail: Type.String(),
  offsets: Type.Array(Int),
})

const Verdict = Type.Object({
  id: Type.String(),
  ok: Type.Boolean(),
  chunksChecked: Int,
  problems: Type.Array(ChunkProblem),
  manifestProblem: Type.Union([Type.String(), Type.Null()]),
  imageSha256: Type.Union([Type.String(), Type.Null()]),
  imageSha256Matches: Type.Union([Type.Boolean(), Type.Null()]),
})

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`

export const backupMethods = [
  defineMethod({
    name: 'backup.create',
    summary: 'Back up a disk into a repository: full, incremental or differential (auto: incremental when a base exists)',
    params: Type.Object({
      disk: Type.String({ minLength: 1, description: 'disk file (VHDX, VHD, raw; differencing chains resolved)' }),
      repo: Repo,
      mode: Type.Optional(Type.Union([Type.Literal('auto'), Type.Literal('full'), Type.Literal('incremental'), Type.Literal('differential')], { description: 'default auto' })),
      chunkSize: Type.Optional(Type.Union([Int, Type.String({ minLength: 1 })], { description: 'chunk size of a new repository (multiple of 64K, default 64K)' })),
      packSize: Type.Optional(Type.Union([Int, Type.String({ minLength: 1 })], { description: 'pack file size of a new repository (64K to 1G, default 32M)' })),
      breakLock: Type.Optional(Type.Boolean({ description: "remove another host's repository lock (only when that host is gone)" })),
    }, { additionalProperties: false }),
    result: Type.Object({
      id: Type.String(),
      repo: Type.String(),
      disk: Type.String(),
      requestedMode: Type.String(),
      mode: Type.String(),
      parentId: Type.Union([Type.String(), Type.Null()]),
      changeSource: Type.String({ description: 'full-read, tracking, differencing or content-scan' }),
      fellBack: Type.Boolean({ description: 'a better change source was wanted but not usable (see reasons)' }),
      reasons: Type.Array(Type.String()),
      referencePoint: Type.Union([Type.String(), Type.Null()]),
      virtualSizeBytes: Int,
      chunkSizeBytes: Int,
      changedBytesChunkRounded: Int,
      stats: Stats,
      durationMs: Int,
      phasesMs: Type.Record(Type.String(), Int, { description: 'prepare, changes, copy, commit' }),
    }),
    cli: {
      positional: ['disk'],
      examples: [
        ['hvcbt backup create vm.vhdx --repo /backups', 'full the first time, incremental afterwards'],
        ['hvcbt backup create vm.vhdx --repo /backups --mode differential', 'changes since the last full backup'],
      ],
      human: r => [
        `backup ${r.id}: ${r.mode}${r.requestedMode !== r.mode && r.requestedMode !== 'auto' ? ` (asked: ${r.requestedMode})` : ''} of ${r.disk}` +
          `${r.parentId ? ` (base ${r.parentId})` : ''}`,
        `change source: ${r.changeSource}${r.fellBack ? '  <-- FALLBACK' : ''}`,
        ...r.reasons.map(x => `  - ${x}`),
        `read ${formatBytes(r.stats.bytesRead)} from the disk (changed: ${formatBytes(r.changedBytesChunkRounded)}), ` +
          `stored ${formatBytes(r.stats.bytesWritten)} in ${r.stats.chunksStored} new chunk(s), in ${seconds(r.durationMs)}`,
      ].join('\n'),
    },
    async handler(p, ctx) {
      return createBackup({
        diskPath: resolve(p.disk), repoDir: resolve(p.repo), mode: p.mode,
        chunkSizeBytes: p.chunkSize === undefined ? undefined : parseSize(p.chunkSize, 'chunk size'),
        packSizeBytes: p.packSize === undefined ? undefined : parseSize(p.packSize, 'pack size'),
        breakLock: p.breakLock,
        progress: (d, t, m) => ctx.progress(d, t, m), log: (l, m) => ctx.log(l, m), signal: ctx.signal,
      })
    },
  }),
  defineMethod({
    name: 'backup.restore',
    summary: 'Restore a backup to a new thin disk (raw, VHDX, VHD), or roll an existing disk back in place',
    params: Type.Object({
      repo: Repo,
      id: Type.String({ minLength: 1, description: 'backup id (see backup list)' }),
      output: Type.String({ minLength: 1, description: 'new disk file, or the disk to roll back with --in-place' }),
      format: Type.Optional(Type.Union([Type.Literal('raw'), Type.Literal('vhdx'), Type.Literal('vhd')], { description: "default: the backed-up disk's format" })),
      type: Type.Optional(Type.Union([Type.Literal('dynamic'), Type.Literal('fixed')], { description: 'default dynamic (thin)' })),
      inPlace: Type.Optional(Type.Boolean({ description: 'write only the chunks of the existing disk that differ from the backup' })),
    }, { additionalProperties: false }),
    result: Type.Object({
      id: Type.String(),
      output: Type.String(),
      format: Type.String(),
      type: Type.String(),
      inPlace: Type.Boolean(),
      virtualSizeBytes: Int,
      chunksWritten: Int,
      bytesWritten: Int,
      chunksUnchanged: Int,
      zeroChunks: Int,
      durationMs: Int,
      diskId: Type.Union([Type.String(), Type.Null()]),
    }),
    cli: {
      examples: [
        ['hvcbt backup restore --repo /backups --id 20261125T101500Z-3fa2c1 --output vm-restored.vhdx', 'new dynamic VHDX'],
        ['hvcbt backup restore --repo /backups --id 20261125T101500Z-3fa2c1 --output vm.vhdx --in-place', 'roll vm.vhdx back'],
      ],
      human: r => `restored ${r.id} to ${r.output} (${r.format}${r.inPlace ? ', in place' : ` ${r.type}`}): ` +
        `${r.chunksWritten} chunk(s), ${formatBytes(r.bytesWritten)} written` +
        `${r.inPlace ? `, ${r.chunksUnchanged} already equal` : ''}, ${r.zeroChunks} zero chunk(s) left thin, in ${seconds(r.durationMs)}`,
    },
    async handler(p, ctx) {
      return restoreBackup({
        repoDir: resolve(p.repo), id: p.id, output: resolve(p.output), format: p.format, type: p.type, inPlace: p.inPlace,
        progress: (d, t, m) => ctx.progress(d, t, m), log: (l, m) => ctx.log(l, m), signal: ctx.signal,
      })
    },
  }),
  defineMethod({
    name: 'backup.verify',
    summary: 'Check that every chunk of every backup (or one) is present and intact; --deep rebuilds each image (exit 1 on problems)',
    params: Type.Object({
      repo: Repo,
      id: Type.Optional(Type.String({ minLength: 1, description: 'only this backup' })),
      deep: Type.Optional(Type.Boolean({ description: 'also rebuild the image stream and check the whole-disk hash' })),
    }, { additionalProperties: false }),
    result: Type.Object({
      repo: Type.String(),
      ok: Type.Boolean(),
      backupsChecked: Int,
      chunksChecked: Int,
      affected: Type.Array(Type.String()),
      backups: Type.Array(Verdict),
      durationMs: Int,
    }),
    cli: {
      exitCode: r => (r.ok ? 0 : 1),
      human: r => {
        const lines = [`${r.ok ? 'OK' : 'PROBLEMS'}: ${r.backupsChecked} backup(s), ${r.chunksChecked} chunk(s) checked in ${seconds(r.durationMs)}`]
        for (const b of r.backups) {
          if (b.ok) { lines.push(`  ${b.id}: ok${b.imageSha256 ? ` (image sha256 ${b.imageSha256})` : ''}`); continue }
          lines.push(`  ${b.id}: DAMAGED`)
          if (b.manifestProblem) lines.push(`    ${b.manifestProblem}`)
          for (const c of b.problems) lines.push(`    chunk ${c.hash.slice(0, 16)}... ${c.problem} at disk offset(s) ${c.offsets.join(', ')}: ${c.detail}`)
        }
        return lines.join('\n')
      },
    },
    async handler(p, ctx) {
      return verifyRepository({ repoDir: resolve(p.repo), id: p.id, deep: p.deep, progress: (d, t, m) => ctx.progress(d, t, m), signal: ctx.signal })
    },
  }),
  defineMethod({
    name: 'backup.list',
    summary: 'List the backups in a repository, oldest first',
    params: Type.Object({ repo: Repo }, { additionalProperties: false }),
    result: Type.Array(Listed),
    cli: {
      human: r => r.length === 0 ? 'no backups' : r.map(b =>
        `${b.id}  ${b.mode.padEnd(12)} ${b.changeSource.padEnd(12)} stored ${formatBytes(b.storedBytes).padStart(10)}  ${b.disk}`).join('\n'),
    },
    async handler(p, ctx) {
      const { backups, damaged } = await listBackups(resolve(p.repo))
      for (const d of damaged) ctx.log('warning', `backup ${d.id} is damaged: ${d.error}`)
      return backups
    },
  }),
  defineMethod({
    name: 'backup.prune',
    summary: 'Remove backups outside the retention rules (per disk) and the chunks no remaining backup uses',
    params: Type.Object({
      repo: Repo,
      keepLast: Type.Optional(Type.Integer({ minimum: 0, description: 'keep the newest N backups of each disk' })),
      keepDaily: Type.Optional(Type.Integer({ minimum: 0, description: 'keep the newest backup of each of the last N days' })),
      keepWeekly: Type.Optional(Type.Integer({ minimum: 0, description: 'keep the newest backup of each of the last N ISO weeks' })),
      graceMinutes: Type.Optional(Type.Integer({ minimum: 0, description: 'leave packs modified within this many minutes alone (default 60)' })),
      dryRun: Type.Optional(Type.Boolean({ description: 'say what would be removed, remove nothing' })),
      breakLock: Type.Optional(Type.Boolean()),
    }, { additionalProperties: false }),
    result: Type.Object({
      kept: Type.Array(Type.String()),
      removed: Type.Array(Type.String()),
      chunksRemoved: Int,
      bytesFreed: Int,
      chunksKeptInGrace: Int,
      packsRemoved: Int,
      packsRewritten: Type.Integer({ minimum: 0, description: 'packs whose live chunks were copied to new packs so the unreferenced ones could go' }),
      dryRun: Type.Boolean(),
    }),
    cli: {
      examples: [['hvcbt backup prune --repo /backups --keep-last 7 --keep-weekly 4', 'a week of backups plus 4 weekly ones']],
      human: r => `${r.dryRun ? 'would remove' : 'removed'} ${r.removed.length} backup(s) (${r.removed.join(', ') || '-'}), kept ${r.kept.length}; ` +
        `${r.chunksRemoved} chunk(s), ${formatBytes(r.bytesFreed)} freed (${r.packsRemoved} pack(s) removed, ${r.packsRewritten} rewritten); ` +
        `${r.chunksKeptInGrace} recent unreferenced chunk(s) kept`,
    },
    async handler(p, ctx) {
      return pruneRepository({ ...p, repoDir: resolve(p.repo), log: (l, m) => ctx.log(l, m) })
    },
  }),
]
