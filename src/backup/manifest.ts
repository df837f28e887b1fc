/**
 * One manifest per backup: `manifests/<id>.json` (what the backup is) and `manifests/<id>.chunks` (the chunk list).
 *
 * The chunk list is binary: 32 bytes per chunk, the SHA-256 of the chunk's content, in disk order; 32 zero bytes
 * mark a zero chunk (never stored; no content hashes to all zeros in practice). 100 GiB at 1 MiB chunks is
 * 102,400 entries, 3.2 MiB. The JSON records the list's own SHA-256, so a damaged list is detected before use.
 *
 * Every manifest is complete: chunks the backup did not read inherit their hash from the base manifest, so any
 * backup restores directly, with no chain replay and no merge step. The JSON is the commit point of a backup:
 * written last, atomically, after every chunk and the chunk list are durable.
 */
import fsp from 'node:fs/promises'
import { createHash } from 'node:crypto'
import { FormatError } from '../engine/errors.js'
import type { DiskFormat, DiskType } from '../formats/disk-info.js'

export const HASH_BYTES = 32
export const ZERO_HASH = Buffer.alloc(HASH_BYTES)

export type BackupMode = 'full' | 'incremental' | 'differential'
/** How the backup found what changed since its base. */
export type ChangeSource = 'full-read' | 'tracking' | 'differencing' | 'content-scan'

/** What is needed to rebuild a disk Hyper-V can use, and to recognise the same disk next time. */
export interface DiskDescription {
  /** Absolute (real) path of the disk file that was backed up. */
  path: string
  format: DiskFormat
  type: DiskType
  virtualSizeBytes: number
  logicalSectorSizeBytes: number
  physicalSectorSizeBytes: number
  /** VHDX/VHD block size; 0 for raw and fixed VHD. */
  blockSizeBytes: number
  /** VHDX Virtual Disk ID or VHD unique id (lower-case GUID), null for raw. */
  diskId: string | null
  /** Differencing disks: the parent's real path and identity at backup time (see differencing change source). */
  parent: { path: string; diskId: string | null; fileSizeBytes: number; mtimeMs: number } | null
}

export interface Manifest {
  format: 'hvcbt-backup-manifest'
  version: 1
  /** Sortable id: UTC time + random suffix, e.g. 20261125T101500Z-3fa2c1. */
  id: string
  mode: BackupMode
  disk: DiskDescription
  chunkSizeBytes: number
  chunkCount: number
  /** SHA-256 (hex) of the binary chunk list file. */
  chunkListSha256: string
  /** SHA-256 of the whole virtual disk image when this backup read it in order (full, content scan), else null. */
  imageSha256: string | null
  changeSource: ChangeSource
  /** Why that source was used (and why better ones were not): shown to the user. */
  changeSourceReason: string
  /** Tracking reference point created for this backup (the base of the next one), or null. */
  referencePoint: { id: string; generation: string } | null
  /** The backup this one is relative to (incremental: the last backup; differential: the last full), or null. */
  parentId: string | null
  startedAt: string
  finishedAt: string
  stats: BackupStats
}

export interface BackupStats {
  /** Bytes read from the source disk. */
  bytesRead: number
  /** Bytes written to the repository (chunk files, compressed, headers included). */
  bytesWritten: number
  /** Chunks whose content this backup read (changed or scanned). */
  chunksExamined: number
  /** Examined chunks whose hash differs from the base (or all non-zero chunks of a full). */
  chunksChanged: number
  /** Chunks this backup added to the repository. */
  chunksStored: number
  /** Zero chunks (not stored). */
  chunksZero: number
  /** Bytes of the disk covered by non-zero chunks. */
  allocatedBytes: number
}

export function chunkListPath(manifestsDir: string, id: string): string {
  return `${manifestsDir}/${id}.chunks`
}

export function manifestPath(manifestsDir: string, id: string): string {
  return `${manifestsDir}/${id}.json`
}

export function newBackupId(now = new Date()): string {
  const t = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')
  return `${t}-${createHash('sha256').update(`${process.pid}${Math.random()}${now.getTime()}`).digest('hex').slice(0, 6)}`
}

export const BACKUP_ID_PATTERN = /^\d{8}T\d{6}Z-[0-9a-f]{6}$/

/** Parse and check a manifest JSON file's text. */
export function parseManifest(text: string, file: string): Manifest {
  let j: Manifest
  try {
    j = JSON.parse(text) as Manifest
  } catch (err) {
    throw new FormatError(file, 'manifest', null, `not JSON: ${(err as Error).message}`)
  }
  const bad = (what: string): never => { throw new FormatError(file, 'manifest', null, what) }
  if (j?.format !== 'hvcbt-backup-manifest') bad('not an hvcbt backup manifest')
  if (j.version !== 1) bad(`unsupported manifest version ${j.version}`)
  if (typeof j.id !== 'string' || !BACKUP_ID_PATTERN.test(j.id)) bad(`bad id ${j.id}`)
  if (!Number.isSafeInteger(j.chunkSizeBytes) || j.chunkSizeBytes <= 0) bad(`bad chunkSizeBytes ${j.chunkSizeBytes}`)
  const size = j.disk?.virtualSizeBytes
  if (!Number.isSafeInteger(size) || size <= 0) bad(`bad disk.virtualSizeBytes ${size}`)
  if (j.chunkCount !== Math.ceil(size / j.chunkSizeBytes)) bad(`chunkCount ${j.chunkCount} does not match the disk size`)
  if (typeof j.chunkListSha256 !== 'string' || !/^[0-9a-f]{64}$/.test(j.chunkListSha256)) bad('bad chunkListSha256')
  return j
}

/** Read a chunk list file and check it against the manifest. Returns chunkCount * 32 bytes. */
export async function readChunkList(manifestsDir: string, m: Manifest): Promise<Buffer> {
  const file = chunkListPath(manifestsDir, m.id)
  const buf = await fsp.readFile(file)
  if (buf.length !== m.chunkCount * HASH_BYTES) {
    throw new FormatError(file, 'chunk list', null, `${buf.length} bytes, expected ${m.chunkCount} x ${HASH_BYTES}`)
  }
  const digest = createHash('sha256').update(buf).digest('hex')
  if (digest !== m.chunkListSha256) {
    throw new FormatError(file, 'chunk list', null, `SHA-256 ${digest} differs from the manifest's ${m.chunkListSha256}`)
  }
  return buf
}

/** The hash of chunk `i` in a chunk list, or null for a zero chunk. */
export function chunkHashAt(list: Buffer, i: number): string | null {
  const h = list.subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES)
  return h.equals(ZERO_HASH) ? null : h.toString('hex')
}
