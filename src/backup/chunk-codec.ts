/**
 * Chunk file format and compression.
 *
 * A chunk file is a 16-byte header followed by the payload:
 *
 *   0  magic            'HVCK'
 *   4  version          u8, 1
 *   5  codec            u8: 0 = stored (no compression), 1 = lz4 block with a 4-byte LE size prefix
 *   6  reserved         u16, 0
 *   8  rawBytes         u32 LE: size of the uncompressed content
 *   12 payloadBytes     u32 LE: size of the payload that follows
 *
 * The chunk is named by the SHA-256 of its uncompressed content, so every read is checked end to end by hashing
 * what the codec returns; the header only has to say how to decode. Recording the codec per chunk keeps a
 * repository readable when the default changes, and a chunk that does not compress (random or encrypted data) is
 * stored as is (codec 0), so it costs no decompression on restore.
 *
 * Compression is LZ4 through lz4-napi (napi-rs, lz4_flex): about 10x faster than a pure-JS deflate in both
 * directions (docs/backup.md has the figures), which matters because restore must keep up with `cp`. The native
 * module is loaded by process.dlopen of its .node file: from the npm platform package in development, from the
 * SEA asset `lz4-napi.node` in the single executable (extracted once to the temp directory, like the sparse
 * addon); HVCBT_LZ4_ADDON=<path of the .node file> overrides both. When it cannot be loaded the engine still
 * works: new chunks are stored uncompressed, and existing lz4 chunks are decoded by the small pure-JS LZ4 block
 * decoder below (slower, but a repository never becomes unreadable).
 */
import { createHash, webcrypto } from 'node:crypto'
import { createRequire } from 'node:module'
import path from 'node:path'
import { FormatError } from '../engine/errors.js'
import { seaAssetFile } from '../platform/sea-asset.js'
import { nativeAddon } from '../platform/sparse.js'

export const CHUNK_MAGIC = 'HVCK'
export const CHUNK_HEADER_BYTES = 16
export const CHUNK_FORMAT_VERSION = 1
/** Largest chunk content accepted when decoding (bounds allocations from a damaged header). */
export const MAX_CHUNK_BYTES = 64 * 1024 * 1024

export const Codec = { stored: 0, lz4: 1 } as const
export type CodecName = keyof typeof Codec

export const SEA_LZ4_ASSET_NAME = 'lz4-napi.node'

interface Lz4Binding {
  compressSync(data: Buffer): Buffer
  compress(data: Uint8Array): Promise<Buffer>
  uncompressSync(data: Uint8Array): Buffer
  uncompress(data: Uint8Array): Promise<Buffer>
}

let lz4: { binding: Lz4Binding | null; reason: string | null } | null = null

/** Native platform package name and file for this process, as lz4-napi's own loader names them. */
function nativeTriple(): string | null {
  const { platform, arch } = process
  if (platform === 'linux' && (arch === 'x64' || arch === 'arm64')) return `linux-${arch}-gnu`
  if (platform === 'win32' && (arch === 'x64' || arch === 'arm64')) return `win32-${arch}-msvc`
  if (platform === 'darwin' && (arch === 'x64' || arch === 'arm64')) return `darwin-${arch}`
  return null
}

function loadLz4(): { binding: Lz4Binding | null; reason: string | null } {
  if (lz4) return lz4
  if (process.env.HVCBT_NO_LZ4 === '1') return (lz4 = { binding: null, reason: 'disabled by HVCBT_NO_LZ4=1' })
  try {
    const require = createRequire(import.meta.url)
    const file = process.env.HVCBT_LZ4_ADDON || seaAssetFile(SEA_LZ4_ASSET_NAME, 'lz4') || devAddon(require)
    const mod = { exports: {} as Record<string, unknown> }
    process.dlopen(mod, file)
    const b = mod.exports as unknown as Lz4Binding
    if (typeof b.compressSync !== 'function' || typeof b.compress !== 'function' || typeof b.uncompressSync !== 'function' || typeof b.uncompress !== 'function') {
      throw new Error(`${file} does not export compressSync/compress/uncompressSync/uncompress`)
    }
    return (lz4 = { binding: b, reason: null })
  } catch (err) {
    return (lz4 = { binding: null, reason: err instanceof Error ? err.message : String(err) })
  }
}

function devAddon(require: NodeJS.Require): string {
  const triple = nativeTriple()
  if (!triple) throw new Error(`lz4-napi has no binary for ${process.platform}-${process.arch}`)
  const pkg = require.resolve(`@antoniomuso/lz4-napi-${triple}/package.json`)
  return path.join(path.dirname(pkg), `lz4-napi.${triple}.node`)
}

/** Which codec new chunks get, and why lz4 is unavailable when it is. */
export function codecStatus(): { codec: CodecName; reason: string | null } {
  const l = loadLz4()
  return l.binding ? { codec: 'lz4', reason: null } : { codec: 'stored', reason: `lz4 unavailable: ${l.reason}` }
}

/** Encode `data` as a chunk (header + payload). Falls back to stored when compression does not pay. */
export function encodeChunk(data: Uint8Array, preferred: CodecName = codecStatus().codec): Buffer {
  const binding = preferred === 'lz4' ? loadLz4().binding : null
  return Buffer.concat(framed(data, binding ? binding.compressSync(asBuffer(data)) : null))
}

/**
 * encodeChunk with the LZ4 work on the thread pool, so the main thread only schedules (a backup is bound by it).
 * Returns the header and the payload apart (written with one writev, never copied together).
 */
export async function encodeChunkAsync(data: Uint8Array, preferred: CodecName = codecStatus().codec): Promise<[Buffer, Uint8Array]> {
  const binding = preferred === 'lz4' ? loadLz4().binding : null
  return framed(data, binding ? await binding.compress(data) : null)
}

function asBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength)
}

function framed(data: Uint8Array, compressed: Buffer | null): [Buffer, Uint8Array] {
  // Keep LZ4 only when it saves at least 1/32 of the chunk: otherwise decompression is wasted time on restore.
  const lz4 = compressed !== null && compressed.length < data.length - (data.length >>> 5)
  const payload = lz4 ? compressed : data
  const header = Buffer.allocUnsafe(CHUNK_HEADER_BYTES)
  header.write(CHUNK_MAGIC, 0, 'latin1')
  header[4] = CHUNK_FORMAT_VERSION
  header[5] = lz4 ? Codec.lz4 : Codec.stored
  header.writeUInt16LE(0, 6)
  header.writeUInt32LE(data.length, 8)
  header.writeUInt32LE(payload.length, 12)
  return [header, payload]
}

interface ParsedChunk { codec: number; rawBytes: number; payload: Buffer }

/** Check a chunk file's header against its size; `file` names it in errors. */
function parseChunk(bytes: Uint8Array, file: string): ParsedChunk {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (buf.length < CHUNK_HEADER_BYTES) throw new FormatError(file, 'chunk header', 0, `file is ${buf.length} bytes, shorter than the ${CHUNK_HEADER_BYTES}-byte header`)
  if (buf.toString('latin1', 0, 4) !== CHUNK_MAGIC) throw new FormatError(file, 'chunk header', 0, `magic is not '${CHUNK_MAGIC}'`)
  if (buf[4] !== CHUNK_FORMAT_VERSION) throw new FormatError(file, 'chunk header', 4, `unsupported chunk format version ${buf[4]}`)
  const codec = buf[5]!
  const rawBytes = buf.readUInt32LE(8)
  const payloadBytes = buf.readUInt32LE(12)
  if (rawBytes > MAX_CHUNK_BYTES) throw new FormatError(file, 'chunk header', 8, `content size ${rawBytes} exceeds ${MAX_CHUNK_BYTES}`)
  if (CHUNK_HEADER_BYTES + payloadBytes !== buf.length) {
    throw new FormatError(file, 'chunk header', 12, `payload size ${payloadBytes} does not match the file size ${buf.length}`)
  }
  const payload = buf.subarray(CHUNK_HEADER_BYTES)
  if (codec === Codec.stored) {
    if (payloadBytes !== rawBytes) throw new FormatError(file, 'chunk header', 8, `stored chunk: payload ${payloadBytes} != content ${rawBytes}`)
  } else if (codec === Codec.lz4) {
    if (payload.length < 4 || payload.readUInt32LE(0) !== rawBytes) {
      throw new FormatError(file, 'lz4 payload', CHUNK_HEADER_BYTES, 'size prefix does not match the header')
    }
  } else {
    throw new FormatError(file, 'chunk header', 5, `unknown codec ${codec}`)
  }
  return { codec, rawBytes, payload }
}

function decompressed(out: Buffer, rawBytes: number, file: string): Buffer {
  if (out.length !== rawBytes) throw new FormatError(file, 'lz4 payload', CHUNK_HEADER_BYTES, `decompressed to ${out.length} bytes, header says ${rawBytes}`)
  return out
}

function decompressFailed(err: unknown, file: string): FormatError {
  if (err instanceof FormatError) return new FormatError(file, err.structure, err.offset, err.message)
  return new FormatError(file, 'lz4 payload', CHUNK_HEADER_BYTES, `cannot decompress: ${(err as Error).message}`)
}

/** Decode a chunk file. `file` names it in errors. Does not check the hash (the repository does). */
export function decodeChunk(bytes: Uint8Array, file: string): Buffer {
  const { codec, rawBytes, payload } = parseChunk(bytes, file)
  if (codec === Codec.stored) return payload
  const binding = loadLz4().binding
  try {
    return decompressed(binding ? binding.uncompressSync(payload) : lz4BlockDecode(payload.subarray(4), rawBytes), rawBytes, file)
  } catch (err) {
    throw decompressFailed(err, file)
  }
}

/** decodeChunk with the LZ4 work on the thread pool (native), so several chunks decompress on several cores. */
export async function decodeChunkAsync(bytes: Uint8Array, file: string): Promise<Buffer> {
  const { codec, rawBytes, payload } = parseChunk(bytes, file)
  if (codec === Codec.stored) return payload
  const binding = loadLz4().binding
  try {
    return decompressed(binding ? await binding.uncompress(payload) : lz4BlockDecode(payload.subarray(4), rawBytes), rawBytes, file)
  } catch (err) {
    throw decompressFailed(err, file)
  }
}

/**
 * Pure-JS LZ4 block decoder (the LZ4 block format: sequences of token, literal length, literals, 2-byte offset,
 * match length; the last sequence has literals only). Bounds-checked: damaged input throws, never overruns.
 */
export function lz4BlockDecode(src: Uint8Array, rawBytes: number): Buffer {
  const dst = Buffer.allocUnsafe(rawBytes)
  let s = 0
  let d = 0
  const bad = (what: string): never => { throw new FormatError('lz4', 'lz4 block', s, what) }
  while (s < src.length) {
    const token = src[s++]!
    let lit = token >>> 4
    if (lit === 15) {
      for (;;) {
        if (s >= src.length) bad('literal length runs past the end')
        const b = src[s++]!
        lit += b
        if (b !== 255) break
      }
    }
    if (s + lit > src.length || d + lit > rawBytes) bad('literals run past the end')
    dst.set(src.subarray(s, s + lit), d)
    s += lit
    d += lit
    if (s >= src.length) break // last sequence: literals only
    if (s + 2 > src.length) bad('match offset runs past the end')
    const offset = src[s]! | (src[s + 1]! << 8)
    s += 2
    if (offset === 0 || offset > d) bad(`match offset ${offset} points before the start`)
    let len = (token & 15) + 4
    if ((token & 15) === 15) {
      for (;;) {
        if (s >= src.length) bad('match length runs past the end')
        const b = src[s++]!
        len += b
        if (b !== 255) break
      }
    }
    if (d + len > rawBytes) bad('match runs past the end of the output')
    let from = d - offset
    if (offset >= len) {
      dst.copyWithin(d, from, from + len)
      d += len
    } else {
      for (let i = 0; i < len; i++) dst[d++] = dst[from++]!
    }
  }
  if (d !== rawBytes) bad(`decoded ${d} bytes, expected ${rawBytes}`)
  return dst
}

/** SHA-256 of `data`, lower-case hex (the chunk's name). */
export function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex')
}

/**
 * The same hash computed on the libuv thread pool (WebCrypto digest), so several chunks hash in parallel on
 * several cores while the main thread goes on with I/O: restore and backup throughput are bound by SHA-256.
 */
export async function sha256HexAsync(data: Uint8Array): Promise<string> {
  return Buffer.from(await webcrypto.subtle.digest('SHA-256', data)).toString('hex')
}

/**
 * The hashes of many chunks, lower-case hex, in order. With the native addon it is one thread-pool job that reads
 * the chunks in place (sha256Batch in native/src/sparse.cc); WebCrypto copies every input on the main thread and
 * wipes the copy there afterwards, which for a restore of 8 GiB was 4-5 s of the main thread's time. Without the
 * addon, one WebCrypto digest per chunk. The chunks must not change until the promise settles.
 */
export async function sha256HexMany(data: Uint8Array[]): Promise<string[]> {
  const native = nativeAddon()
  if (!native || data.length === 0) return Promise.all(data.map(sha256HexAsync))
  const all = await native.sha256Batch(data)
  return data.map((_, i) => all.toString('hex', 32 * i, 32 * i + 32))
}
