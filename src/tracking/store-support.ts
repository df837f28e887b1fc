/**
 * The tracking store's vocabulary and file helpers: options, status shape, defaults, and the functions that build a
 * fresh state, load bitmaps and journals and describe why a file cannot be used. store.ts holds the state machine.
 */
import fsp from 'node:fs/promises'
import path from 'node:path'
import { randomUUID } from 'node:crypto'
import { AppErrorCode, EngineError } from '../engine/errors.js'
import { BitmapFormatError, DenseBitmap } from './bitmap.js'
import { readJournal } from './coarse-journal.js'
import type { DiskIdentity } from './disk-identity.js'
import { granulesOf } from './ranges.js'
import type { StoreState } from './store-state.js'

export const DEFAULT_GRANULARITY_BYTES = 64 * 1024
/**
 * Default coarse journal region: 8 MiB. A cold sequential writer pays one fdatasync per 64 MiB (8 regions marked
 * ahead), a cold random writer one per new 8 MiB region (both only once per store open: epochs carry touched regions
 * over; see coarse-journal.ts and bench/tracking-write-cost.mjs); a crash over-reports at most the regions touched
 * in the current and previous epoch, 8 MiB each; a 2 TiB disk needs a 32 KiB journal.
 */
export const DEFAULT_COARSE_REGION_BYTES = 8 * 1024 * 1024

/** A write "in flight" longer than this (an observer that never called afterWrite) is no longer double-counted. */
export const IN_FLIGHT_EXPIRY_MS = 60_000
/** Cached unions of frozen segments (4 MiB each for a 2 TiB disk at 64 KiB). */
export const UNION_CACHE_ENTRIES = 4

export interface EnableOptions {
  granularityBytes?: number
  coarseRegionBytes?: number
}

export interface OpenStoreOptions {
  /** Query only: never writes to the sidecar, never recovers (a dirty store is read as persistent copy OR journal). */
  readOnly?: boolean
  /** The disk's identity now (checked against the one recorded at clean close). Omit to skip the check. */
  identity?: DiskIdentity
  /** The disk's virtual size now (checked against the one recorded at enable). */
  diskSizeBytes?: number
  /** Take over a lock held by this very process (tests simulating a crash in-process). */
  takeOverOwnLock?: boolean
}

export interface RefPointInfo {
  id: string
  sequence: number
  createdAt: string
}

export interface TrackingStatus {
  diskPath: string
  sidecarPath: string
  generation: string
  sequence: number
  granularityBytes: number
  coarseRegionBytes: number
  diskSizeBytes: number
  trusted: boolean
  untrustedReason: string | null
  /** True when this open found the store not closed cleanly and rebuilt the live bitmap from journal + copy. */
  recoveredAfterCrash: boolean
  recoveryReason: string | null
  /** Read-only view of a store that another process has open (or that crashed): may over-report. */
  openElsewhereOrCrashed: boolean
  refPoints: RefPointInfo[]
  /** Bytes marked in the live bitmap (changes since the newest reference point). */
  liveChangedBytes: number
}

export function sidecarPathOf(diskPath: string): string {
  return `${diskPath}.hvcbt`
}

export function checkPow2(name: string, n: number, lo: number, hi: number): void {
  if (!Number.isSafeInteger(n) || n < lo || n > hi || (n & (n - 1)) !== 0) {
    throw new EngineError(`${name} ${n} must be a power of two between ${lo} and ${hi} bytes`, 'InvalidArgument',
      AppErrorCode.Generic, { [name]: n })
  }
}

/** Largest fine bitmap a store may hold in memory (2^31 bits = 256 MiB; 64 TiB at 32 KiB). */
export const MAX_FINE_BITS = 2 ** 31

/** Refuse a granularity whose bitmap would not fit comfortably in memory, naming the smallest that would. */
export function checkBitmapSize(diskSizeBytes: number, granularityBytes: number): void {
  const bits = Math.ceil(diskSizeBytes / granularityBytes)
  if (bits > MAX_FINE_BITS) {
    let g = granularityBytes
    while (Math.ceil(diskSizeBytes / g) > MAX_FINE_BITS) g *= 2
    throw new EngineError(`granularity ${granularityBytes} bytes needs a ${bits}-bit bitmap for a ${diskSizeBytes}-byte ` +
      `disk (at most ${MAX_FINE_BITS}); use ${g} bytes or more`, 'InvalidArgument', AppErrorCode.Generic,
    { granularityBytes, diskSizeBytes })
  }
}

export function untrustedError(diskPath: string, reason: string): EngineError {
  return new EngineError(`change tracking for ${diskPath} cannot be trusted: ${reason}; ` +
    'run `hvcbt tracking reset` and take a full backup', 'InvalidData', AppErrorCode.InvalidData,
  { diskPath, reason })
}

export function freshState(diskSizeBytes: number, granularityBytes: number, coarseRegionBytes: number,
  identity: DiskIdentity | null): StoreState {
  return {
    format: 'hvcbt-tracking',
    version: 1,
    generation: randomUUID(),
    sequence: 0,
    granularityBytes,
    coarseRegionBytes,
    diskSizeBytes,
    clean: true,
    identity,
    checkpointSeq: 0,
    liveFile: 'live-0.bm',
    journalEpoch: 0,
    refPoints: [],
    createdAt: new Date().toISOString(),
    untrustedReason: null,
    lastRecovery: null,
  }
}

export async function exists(file: string): Promise<boolean> {
  try {
    await fsp.access(file)
    return true
  } catch {
    return false
  }
}

export async function loadBitmap(file: string, bits: number): Promise<DenseBitmap> {
  return DenseBitmap.deserialize(await fsp.readFile(file), bits)
}

export function describeLoadFailure(what: string, file: string, err: unknown): string {
  if ((err as NodeJS.ErrnoException).code === 'ENOENT') return `the ${what} file ${file} is missing`
  if (err instanceof BitmapFormatError) return `the ${what} file ${file} is corrupt: ${err.message}`
  return `the ${what} file ${file} cannot be read: ${(err as Error).message}`
}

/** OR every journal of the store's generation into `live` (coarse regions expanded to fine granules). */
export async function orJournals(dir: string, state: StoreState, live: DenseBitmap): Promise<{ files: number; regions: number }> {
  let files = 0
  let regions = 0
  for (const name of await fsp.readdir(dir)) {
    if (!/^journal-\d+\.mrt$/.test(name)) continue
    const { header, regions: bm } = await readJournal(path.join(dir, name))
    if (header.generation !== state.generation) continue
    files++
    bm.forEachRun((start, count) => {
      regions += count
      const [f, c] = granulesOf(start * header.regionBytes, count * header.regionBytes, state.granularityBytes)
      live.setRange(f, c)
    })
  }
  return { files, regions }
}
