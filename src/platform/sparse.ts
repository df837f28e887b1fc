/**
 * Sparse-file primitives on an open file descriptor: the data/hole map of a range, punching a hole, zeroing a range,
 * reserving space. The raw and VHDX layers use them for extents, trim and write-zeroes; restore uses them to keep
 * thin files thin.
 *
 * The work is done by the optional native addon `hvcbt_native` (native/, lseek SEEK_DATA/SEEK_HOLE and fallocate).
 * It is loaded lazily, once, on the first call:
 *   - inside a single executable, from the SEA asset `hvcbt_native.node`, written to a content-hashed file under
 *     os.tmpdir() (mode 0700) and opened with process.dlopen (a SEA cannot require a .node file);
 *   - otherwise from native/build/Release/hvcbt_native.node, found by walking up from this module's folder (src/,
 *     dist/ and build/out/ all sit one or two levels under the repository root);
 *   - never when HVCBT_NO_NATIVE=1 (tests use it to exercise the fallbacks).
 * When it cannot load, every function still gives the same bytes: extents reports the whole range as data,
 * punchHole and zeroRange write zeros in 1 MiB chunks (inside the current file size, like KEEP_SIZE), allocate does
 * nothing. One warning says so, through the sink the engine sets with setSparseWarningSink (default: stderr).
 * The same write-zeros fallback covers a file system that answers ENOTSUP to fallocate.
 *
 * The same addon carries alignedBuffer (direct-io.ts) and sha256Batch (chunk-codec.ts sha256HexMany): nativeAddon()
 * hands it to them, and each has its own fallback.
 *
 * Functions are synchronous, like the syscalls under them; the async variants take a FileHandle and run the
 * zero-writing fallback without blocking the event loop. node:crypto and node:os are required only on the SEA path:
 * importing this module must not add their load time (a few ms) to every engine start.
 */
import fs from 'node:fs'
import type { FileHandle } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { seaAssetFile } from './sea-asset.js'

/** One run of a data/hole map: [offset, length, isData]. */
export type Extent = [offset: number, length: number, isData: boolean]

/** How a range was zeroed: fallocate ZERO_RANGE, fallocate PUNCH_HOLE, written zeros, or nothing (length 0). */
export type ZeroMethod = 'zero-range' | 'punch-hole' | 'write' | 'none'

export interface SparseSupport {
  /** True when the native addon is loaded. */
  native: boolean
  /** Why it is not (only when native is false). */
  reason?: string
}

/** The addon's exports (native/src/sparse.cc states each contract). */
export interface NativeAddon {
  extents(fd: number, offset: number, length: number, maxExtents?: number): Extent[]
  punchHole(fd: number, offset: number, length: number): void
  zeroRange(fd: number, offset: number, length: number): 'zero-range' | 'punch-hole' | 'none'
  allocate(fd: number, offset: number, length: number): void
  alignedBuffer(size: number): Buffer
  sha256Batch(buffers: Uint8Array[]): Promise<Buffer>
  /** See native/src/unpack.cc: one entry per 64-byte plan entry, undefined when that chunk is in `dest`. */
  unpackChunks(dest: Buffer, plan: Buffer): Promise<Array<UnpackFailure | undefined>>
  lz4Decode(src: Uint8Array, rawBytes: number): Buffer
}

/** Why unpackChunks could not unpack a chunk: a damaged record, or a failed read (errno fields, as Node's). */
export type UnpackFailure =
  | { structure: string; offset: number | null; message: string }
  | { code: string; errno: number; syscall: string; message: string }

/** Name of the addon file, and of the SEA asset that carries it. */
export const NATIVE_ASSET_NAME = 'hvcbt_native.node'
/** Fallback zero writes go out in chunks of this size, so a huge range never needs a huge buffer. */
export const ZERO_CHUNK_BYTES = 1024 * 1024

type WarningSink = (message: string) => void

let loaded: { native: NativeAddon | null; reason?: string } | undefined
let warned = false
let warningSink: WarningSink = message => {
  process.stderr.write(`hvcbt: warning: ${message}\n`)
}
let zeroChunk: Buffer | undefined

/** Where the single "running without the native addon" warning goes. The engine routes it to its log. */
export function setSparseWarningSink(sink: WarningSink): void {
  warningSink = sink
}

/** Whether the native addon is in use, loading it if this is the first question. */
export function sparseSupport(): SparseSupport {
  const l = load()
  return l.native ? { native: true } : { native: false, reason: l.reason ?? 'unknown' }
}

/** The native addon, or null when it cannot load (no warning here: each caller says what it does without it). */
export function nativeAddon(): NativeAddon | null {
  return load().native
}

/**
 * Data/hole map of [offset, offset + length). Runs are in order, contiguous and cover the range (unless capped by
 * maxExtents, when the last run ends early and the caller continues from there). Past the end of the file is a hole.
 */
export function extents(fd: number, offset: number, length: number, maxExtents?: number): Extent[] {
  checkRange(offset, length)
  const native = nativeOrWarn()
  if (native) return native.extents(fd, offset, length, maxExtents)
  return length === 0 ? [] : [[offset, length, true]]
}

/** Make [offset, offset + length) read as zeros and free its space when the file system can; never grows the file. */
export function punchHole(fd: number, offset: number, length: number): ZeroMethod {
  checkRange(offset, length)
  if (length === 0) return 'none'
  const native = nativeOrWarn()
  if (native) {
    try {
      native.punchHole(fd, offset, length)
      return 'punch-hole'
    } catch (err) {
      if (!isUnsupported(err)) throw err
    }
  }
  return writeZerosSync(fd, offset, length) > 0 ? 'write' : 'none'
}

/**
 * Make [offset, offset + length) read as zeros, keeping it allocated when the file system can. Never grows the file
 * nor reserves blocks past its end ('none' when the range lies wholly past it).
 */
export function zeroRange(fd: number, offset: number, length: number): ZeroMethod {
  checkRange(offset, length)
  if (length === 0) return 'none'
  const native = nativeOrWarn()
  if (native) {
    try {
      // ZERO_RANGE | KEEP_SIZE would reserve blocks past the end of file: clamp to the size, as the fallback does.
      return native.zeroRange(fd, offset, zeroSpan(fs.fstatSync(fd).size, offset, length))
    } catch (err) {
      if (!isUnsupported(err)) throw err
    }
  }
  return writeZerosSync(fd, offset, length) > 0 ? 'write' : 'none'
}

/** Reserve space for [offset, offset + length) (fallocate mode 0; extends the file past its end). Best effort. */
export function allocate(fd: number, offset: number, length: number): boolean {
  checkRange(offset, length)
  if (length === 0) return false
  const native = nativeOrWarn()
  if (!native) return false
  try {
    native.allocate(fd, offset, length)
    return true
  } catch (err) {
    if (isUnsupported(err)) return false
    throw err
  }
}

/** punchHole for a FileHandle; the fallback writes without blocking the event loop. */
export async function punchHoleAsync(handle: FileHandle, offset: number, length: number): Promise<ZeroMethod> {
  checkRange(offset, length)
  if (length === 0) return 'none'
  const native = nativeOrWarn()
  if (native) {
    try {
      native.punchHole(handle.fd, offset, length)
      return 'punch-hole'
    } catch (err) {
      if (!isUnsupported(err)) throw err
    }
  }
  return (await writeZerosAsync(handle, offset, length)) > 0 ? 'write' : 'none'
}

/** zeroRange for a FileHandle; the fallback writes without blocking the event loop. */
export async function zeroRangeAsync(handle: FileHandle, offset: number, length: number): Promise<ZeroMethod> {
  checkRange(offset, length)
  if (length === 0) return 'none'
  const native = nativeOrWarn()
  if (native) {
    try {
      return native.zeroRange(handle.fd, offset, zeroSpan((await handle.stat()).size, offset, length))
    } catch (err) {
      if (!isUnsupported(err)) throw err
    }
  }
  return (await writeZerosAsync(handle, offset, length)) > 0 ? 'write' : 'none'
}

/** Forget the loaded addon and the warning (tests only: the env var is read again on the next call). */
export function resetSparseForTests(): void {
  loaded = undefined
  warned = false
}

function checkRange(offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0) {
    throw new RangeError(`sparse: offset ${offset} is not a non-negative safe integer`)
  }
  if (!Number.isSafeInteger(length) || length < 0) {
    throw new RangeError(`sparse: length ${length} is not a non-negative safe integer`)
  }
  if (!Number.isSafeInteger(offset + length)) {
    throw new RangeError(`sparse: offset ${offset} + length ${length} passes Number.MAX_SAFE_INTEGER`)
  }
}

function isUnsupported(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | null)?.code
  return code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'ENOSYS'
}

function nativeOrWarn(): NativeAddon | null {
  const l = load()
  if (!l.native && !warned) {
    warned = true
    warningSink(`sparse files unsupported (${l.reason ?? 'unknown'}): holes are written as zeros, extents read as data`)
  }
  return l.native
}

/** Zeros written over [offset, end) clamped to the file's size (KEEP_SIZE semantics). */
function zeroSpan(size: number, offset: number, length: number): number {
  return Math.max(0, Math.min(offset + length, size) - offset)
}

/** Returns the number of bytes written. */
function writeZerosSync(fd: number, offset: number, length: number): number {
  const span = zeroSpan(fs.fstatSync(fd).size, offset, length)
  const zeros = (zeroChunk ??= Buffer.alloc(ZERO_CHUNK_BYTES))
  for (let done = 0; done < span; ) {
    const n = Math.min(zeros.length, span - done)
    done += fs.writeSync(fd, zeros, 0, n, offset + done)
  }
  return span
}

async function writeZerosAsync(handle: FileHandle, offset: number, length: number): Promise<number> {
  const span = zeroSpan((await handle.stat()).size, offset, length)
  const zeros = (zeroChunk ??= Buffer.alloc(ZERO_CHUNK_BYTES))
  for (let done = 0; done < span; ) {
    const n = Math.min(zeros.length, span - done)
    done += (await handle.write(zeros, 0, n, offset + done)).bytesWritten
  }
  return span
}

function load(): { native: NativeAddon | null; reason?: string } {
  if (loaded) return loaded
  if (process.env.HVCBT_NO_NATIVE === '1') return (loaded = { native: null, reason: 'disabled by HVCBT_NO_NATIVE=1' })
  if (process.platform !== 'linux') return (loaded = { native: null, reason: `no addon for ${process.platform}` })
  try {
    const file = seaAssetFile(NATIVE_ASSET_NAME, 'native') ?? findDevelopmentAddon()
    const mod = { exports: {} as Record<string, unknown> }
    process.dlopen(mod, file)
    const api = mod.exports as unknown as NativeAddon
    for (const name of ['extents', 'punchHole', 'zeroRange', 'allocate', 'alignedBuffer', 'sha256Batch'] as const) {
      if (typeof api[name] !== 'function') throw new Error(`${file} does not export ${name}()`)
    }
    return (loaded = { native: api })
  } catch (err) {
    return (loaded = { native: null, reason: err instanceof Error ? err.message : String(err) })
  }
}

function findDevelopmentAddon(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url))
  for (let up = 0; up < 5; up++) {
    const candidate = path.join(dir, 'native', 'build', 'Release', NATIVE_ASSET_NAME)
    if (fs.existsSync(candidate)) return candidate
    dir = path.dirname(dir)
  }
  throw new Error(`${NATIVE_ASSET_NAME} not built (run npm install or npm run build:native)`)
}
