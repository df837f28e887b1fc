/**
 * The tracking store's state file (`<disk>.hvcbt/state.json`): the commit point of every checkpoint.
 *
 * Bitmap and journal files are written first under fresh names; then this file is replaced atomically to point at
 * them; only then are the files it no longer names deleted. So after a crash the state file always names complete,
 * durable bitmaps. The JSON carries a SHA-256 of its own canonical text (without the checksum field) so a corrupt
 * or hand-edited state is detected instead of trusted.
 */
import { createHash } from 'node:crypto'
import fsp from 'node:fs/promises'
import type { DiskIdentity } from './disk-identity.js'
import { writeFileAtomic } from './atomic-file.js'

export const STATE_FORMAT = 'hvcbt-tracking'
export const STATE_VERSION = 1

export interface RefPointRecord {
  /** Readable id: rp-<first 8 hex digits of the generation>-<sequence>. */
  id: string
  /** Sequence number within the generation, strictly increasing, never reused. */
  sequence: number
  /** ISO time of creation. */
  createdAt: string
  /**
   * Bitmap file (in the sidecar directory) holding the changes from this point to the next one; null for the
   * newest point, whose changes are the live bitmap.
   */
  segmentFile: string | null
}

export interface StoreState {
  format: typeof STATE_FORMAT
  version: number
  /** Random id (UUID) of this tracking history; new on enable and reset, never reused. */
  generation: string
  /** Last reference point sequence handed out in this generation. */
  sequence: number
  /** Bytes per fine bitmap bit (power of two, 4 KiB - 64 MiB). */
  granularityBytes: number
  /** Bytes per coarse journal bit (power of two, 1 MiB - 64 MiB). */
  coarseRegionBytes: number
  /** Virtual size of the disk when tracking was enabled; a different size on open means the disk was resized. */
  diskSizeBytes: number
  /** True only after a clean close: then `identity` describes the disk as tracking left it. */
  clean: boolean
  /** Disk identity recorded at clean close (and at enable). */
  identity: DiskIdentity | null
  /** Counter for naming bitmap files uniquely across checkpoints. */
  checkpointSeq: number
  /** Persistent copy of the live bitmap (changes since the newest reference point, or since enable/reset). */
  liveFile: string
  /** Epoch of the journal file in use when this state was written; recovery ORs every journal of the generation. */
  journalEpoch: number
  refPoints: RefPointRecord[]
  /** ISO time of enable/reset. */
  createdAt: string
  /** Set when tracking was found untrusted; cleared by reset. */
  untrustedReason: string | null
  /** Last recovery after a crash (kept for status), or null. */
  lastRecovery: { at: string; reason: string } | null
  /** SHA-256 (hex) of the JSON of every other field. */
  checksum?: string
}

function digest(state: StoreState): string {
  const { checksum: _omit, ...rest } = state
  return createHash('sha256').update(JSON.stringify(rest)).digest('hex')
}

export async function writeState(file: string, state: StoreState): Promise<void> {
  const copy: StoreState = { ...state, checksum: undefined }
  delete copy.checksum
  copy.checksum = digest(copy)
  await writeFileAtomic(file, JSON.stringify(copy, null, 1) + '\n')
}

export class StateFormatError extends Error {
  override readonly name = 'StateFormatError'
}

/** Read and validate the state file; StateFormatError names what is wrong. ENOENT is passed through. */
export async function readState(file: string): Promise<StoreState> {
  const text = await fsp.readFile(file, 'utf8')
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch {
    throw new StateFormatError(`${file}: not valid JSON`)
  }
  const s = raw as StoreState
  if (!s || typeof s !== 'object' || s.format !== STATE_FORMAT) throw new StateFormatError(`${file}: not a tracking state file`)
  if (s.version !== STATE_VERSION) throw new StateFormatError(`${file}: state version ${String(s.version)} is not supported`)
  if (typeof s.checksum !== 'string' || s.checksum !== digest(s)) throw new StateFormatError(`${file}: checksum mismatch (corrupt or edited)`)
  const pow2 = (n: unknown, lo: number, hi: number): boolean =>
    typeof n === 'number' && Number.isSafeInteger(n) && n >= lo && n <= hi && (n & (n - 1)) === 0
  if (!pow2(s.granularityBytes, 4096, 64 * 2 ** 20) || !pow2(s.coarseRegionBytes, 2 ** 20, 64 * 2 ** 20) ||
      !Number.isSafeInteger(s.diskSizeBytes) || s.diskSizeBytes < 0 || typeof s.generation !== 'string' ||
      !Array.isArray(s.refPoints) || typeof s.liveFile !== 'string') {
    throw new StateFormatError(`${file}: fields out of range`)
  }
  if (Math.ceil(s.diskSizeBytes / s.granularityBytes) > 2 ** 31) {
    throw new StateFormatError(`${file}: disk size and granularity need a bitmap larger than 2^31 bits`)
  }
  return s
}
