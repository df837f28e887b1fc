/**
 * Fuzzing the NBD handshake and request parsers: valid client sessions are mutated (bytes flipped, inserted,
 * deleted, length fields set to extremes, pieces duplicated, truncated) and fed to one shared server in random
 * chunk sizes. Findings: an uncaught exception or unhandled rejection, a session that does not end within 5 s after
 * its input ends, a heap past 512 MiB, or a clean session (run every 25 iterations) answered differently from the
 * first time - i.e. a bad client broke the server for others. Used by test/nbd/fuzz.test.ts (a short run) and
 * bench/nbd-fuzz.mjs (long runs).
 */
import { Duplex } from 'node:stream'
import { NbdServer } from '../../src/nbd/server.js'
import * as P from '../../src/nbd/protocol.js'
import { MemoryDisk } from './memory-disk.js'
import { goRequest, metaRequest, optionRequest, requestHeader, u32 } from './raw-client.js'
import { xorshift32 as rng } from '../helpers/prng.js'

class ScriptedStream extends Duplex {
  readonly out: Buffer[] = []
  outBytes = 0
  override _read(): void {}
  override _write(chunk: Buffer, _e: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.outBytes < 1 << 20) this.out.push(Buffer.from(chunk))
    this.outBytes += chunk.length
    cb()
  }
}


/** Pieces of a valid session: flags, options, then requests (each piece one message). */
function sessionPieces(r: () => number): Buffer[] {
  const structured = r() < 0.7
  const pieces: Buffer[] = [u32(P.NBD_FLAG_C_FIXED_NEWSTYLE | (r() < 0.8 ? P.NBD_FLAG_C_NO_ZEROES : 0))]
  if (r() < 0.3) pieces.push(optionRequest(P.NBD_OPT_LIST))
  if (structured) pieces.push(optionRequest(P.NBD_OPT_STRUCTURED_REPLY))
  if (r() < 0.4) pieces.push(optionRequest(P.NBD_OPT_LIST_META_CONTEXT, metaRequest('d', r() < 0.5 ? [] : ['base:', 'qemu:'])))
  if (structured && r() < 0.7) pieces.push(optionRequest(P.NBD_OPT_SET_META_CONTEXT, metaRequest('d', ['base:allocation'])))
  if (r() < 0.3) pieces.push(optionRequest(P.NBD_OPT_INFO, goRequest('d', [P.NBD_INFO_NAME, P.NBD_INFO_DESCRIPTION])))
  if (r() < 0.1) pieces.push(optionRequest(P.NBD_OPT_EXPORT_NAME, Buffer.from('d')))
  else pieces.push(optionRequest(P.NBD_OPT_GO, goRequest(r() < 0.5 ? 'd' : '', [P.NBD_INFO_BLOCK_SIZE])))
  const n = 1 + Math.floor(r() * 12)
  for (let i = 0; i < n; i++) {
    const type = [P.NBD_CMD_READ, P.NBD_CMD_WRITE, P.NBD_CMD_FLUSH, P.NBD_CMD_TRIM, P.NBD_CMD_WRITE_ZEROES, P.NBD_CMD_BLOCK_STATUS, P.NBD_CMD_CACHE][Math.floor(r() * 7)]!
    const offset = Math.floor(r() * 2048) * 512
    const length = (1 + Math.floor(r() * 64)) * 512
    const flags = r() < 0.2 ? P.NBD_CMD_FLAG_FUA : 0
    const h = requestHeader(type, BigInt(i + 1), offset, length, flags)
    pieces.push(type === P.NBD_CMD_WRITE ? Buffer.concat([h, Buffer.alloc(length, i)]) : h)
  }
  if (r() < 0.5) pieces.push(requestHeader(P.NBD_CMD_DISC, 999n, 0, 0))
  return pieces
}

const EXTREMES = [0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 0xfffffff0, 33554432, 33554433, 65536, 4097]

function mutate(pieces: Buffer[], r: () => number): Buffer {
  const ps = pieces.map(p => Buffer.from(p))
  const rounds = 1 + Math.floor(r() * 4)
  for (let k = 0; k < rounds; k++) {
    const i = Math.floor(r() * ps.length)
    const p = ps[i]!
    const what = r()
    if (what < 0.3 && p.length > 0) {
      p[Math.floor(r() * p.length)] ^= 1 << Math.floor(r() * 8) // flip a bit
    } else if (what < 0.5 && p.length >= 4) {
      const at = Math.floor(r() * (p.length - 3))
      p.writeUInt32BE(EXTREMES[Math.floor(r() * EXTREMES.length)]!, at) // a length-like field set to an extreme
    } else if (what < 0.6) {
      ps.splice(i, 1) // drop a message
    } else if (what < 0.7) {
      ps.splice(i, 0, Buffer.from(p)) // duplicate one
    } else if (what < 0.8) {
      const junk = Buffer.alloc(Math.floor(r() * 64))
      for (let j = 0; j < junk.length; j++) junk[j] = Math.floor(r() * 256)
      ps.splice(i, 0, junk) // insert garbage
    } else if (what < 0.9 && p.length > 1) {
      ps[i] = p.subarray(0, Math.floor(r() * p.length)) // truncate a message
    } else {
      ps.push(optionRequest(Math.floor(r() * 16), Buffer.alloc(Math.floor(r() * 300), Math.floor(r() * 256))))
    }
  }
  return Buffer.concat(ps)
}

export interface FuzzStats {
  iterations: number
  /** Sessions the server closed before their input ended (protocol violations detected). */
  closedEarly: number
  findings: string[]
  maxIterationMs: number
  maxHeapBytes: number
}

async function feed(server: NbdServer, input: Buffer, r: () => number, endInput: boolean): Promise<{ out: Buffer; closedEarly: boolean; ms: number }> {
  const t0 = Date.now()
  const stream = new ScriptedStream()
  const conn = server.handle(stream, 'fuzz')
  let closed = false
  void conn.done.then(() => (closed = true))
  for (let at = 0; at < input.length && !closed; ) {
    const n = 1 + Math.floor(r() * (r() < 0.5 ? 16 : 4096))
    stream.push(input.subarray(at, at + n))
    at += n
    if (r() < 0.3) await new Promise(res => setImmediate(res))
  }
  const closedEarly = closed
  await new Promise(res => setTimeout(res, 2))
  if (endInput && !stream.destroyed) stream.push(null)
  const timeout = new Promise<'timeout'>(res => setTimeout(() => res('timeout'), 5000).unref())
  const result = await Promise.race([conn.done.then(() => 'done' as const), timeout])
  if (result === 'timeout') {
    stream.destroy()
    throw new Error(`session did not end within 5 s after its input ended (input ${input.toString('hex').slice(0, 400)})`)
  }
  return { out: Buffer.concat(stream.out), closedEarly, ms: Date.now() - t0 }
}

/** The clean session has one request before DISC, so its answer is one deterministic byte string. */
function canonical(out: Buffer): string {
  return out.toString('hex')
}

export async function fuzzNbd(iterations: number, seed: number): Promise<FuzzStats> {
  const r = rng(seed)
  const disk = new MemoryDisk(1 << 20)
  await disk.write(4096, Buffer.alloc(8192, 0x42))
  // the clean session reads a second, read-only export that fuzzed sessions cannot change
  const fixed = new MemoryDisk(1 << 20, true)
  await fixed.write(4096, Buffer.alloc(8192, 0x42))
  const server = new NbdServer([
    { name: 'd', disk, description: 'fuzz' },
    { name: 'clean', disk: fixed },
  ], { handshakeTimeoutMs: 2000, maxOptionBytes: 4096 })
  const stats: FuzzStats = { iterations: 0, closedEarly: 0, findings: [], maxIterationMs: 0, maxHeapBytes: 0 }
  const onError = (err: unknown) => stats.findings.push(`uncaught: ${(err as Error)?.stack ?? String(err)}`)
  process.on('uncaughtException', onError)
  process.on('unhandledRejection', onError)
  const clean = Buffer.concat([
    u32(P.NBD_FLAG_C_FIXED_NEWSTYLE | P.NBD_FLAG_C_NO_ZEROES),
    optionRequest(P.NBD_OPT_STRUCTURED_REPLY),
    optionRequest(P.NBD_OPT_GO, goRequest('clean', [P.NBD_INFO_BLOCK_SIZE])),
    requestHeader(P.NBD_CMD_READ, 1n, 4096, 8192),
    requestHeader(P.NBD_CMD_DISC, 2n, 0, 0),
  ])
  try {
    const reference = canonical((await feed(server, clean, () => 0.99, true)).out)
    for (let i = 0; i < iterations; i++) {
      const input = mutate(sessionPieces(r), r)
      try {
        const res = await feed(server, input, r, true)
        if (res.closedEarly) stats.closedEarly++
        stats.maxIterationMs = Math.max(stats.maxIterationMs, res.ms)
      } catch (err) {
        stats.findings.push(`iteration ${i}: ${(err as Error).message}`)
      }
      stats.iterations++
      const heap = process.memoryUsage().heapUsed
      stats.maxHeapBytes = Math.max(stats.maxHeapBytes, heap)
      if (heap > 512 * 1024 * 1024) stats.findings.push(`iteration ${i}: heap ${heap} bytes`)
      if (i % 25 === 24) {
        const again = canonical((await feed(server, clean, () => 0.99, true)).out)
        if (again !== reference) stats.findings.push(`iteration ${i}: a clean session is answered differently now`)
      }
    }
    const closing = Promise.race([server.close().then(() => 'ok'), new Promise(res => setTimeout(() => res('timeout'), 10_000).unref())])
    if ((await closing) !== 'ok') stats.findings.push('server.close() did not finish within 10 s')
  } finally {
    process.off('uncaughtException', onError)
    process.off('unhandledRejection', onError)
  }
  return stats
}
