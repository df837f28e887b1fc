/**
 * The transmission phase: parse requests, run them against the VirtualDisk concurrently, answer each by cookie as
 * soon as it completes (out of order), in simple or structured replies.
 *
 * Design:
 * - step() is synchronous: it parses at most one request (header, then write payload) from the queue and starts it
 *   without awaiting it. Admission is bounded per connection by a request count and by payload bytes in flight
 *   (write data held + read buffers to fill); a request that does not fit waits with its header parsed, and the
 *   connection stops reading the socket until something completes.
 * - A WRITE longer than the maximum payload is drained without buffering and answered EINVAL: the stream stays in
 *   sync and the connection keeps serving. A bad request magic cannot be resynchronised: that closes the connection.
 * - Ordering: a write is acknowledged only after the disk's write resolved, and FLUSH calls disk.flush(), which the
 *   VirtualDisk contract makes cover every completed write; so a FLUSH covers every write acknowledged before it, on
 *   every connection to the disk (hence CAN_MULTI_CONN). FUA passes through to the disk (trim: trim then flush).
 * - The write observer is awaited before the disk is touched; its failure fails the request with EIO.
 * - Read replies are one buffer: header space + data read straight into it, so no per-request copy; structured
 *   reads report holes as OFFSET_HOLE chunks (from VirtualDisk.extents) unless DF, or readHoles is false, or it is
 *   'auto' and the client selected base:allocation (it reads only what it knows is data).
 * - Errors map to NBD errno values: bad range/alignment/flag/command EINVAL (writes past the end ENOSPC), writes on a
 *   read-only export EPERM, EROFS/EACCES EPERM, ENOSPC/EDQUOT/EFBIG ENOSPC, anything else EIO. With structured
 *   replies, errors go in an ERROR chunk with a message; successful non-read commands get a 16-byte simple reply.
 */
import type { ResolvedOptions, NbdExport } from './nbd-export.js'
import { blockSizes, isReadOnly } from './nbd-export.js'
import type { ByteQueue } from './byte-queue.js'
import type { BufferPool } from './buffer-pool.js'
import { ProtocolError } from '../engine/errors.js'
import {
  NBD_CMD_BLOCK_STATUS,
  NBD_CMD_CACHE,
  NBD_CMD_DISC,
  NBD_CMD_FLAG_DF,
  NBD_CMD_FLAG_FUA,
  NBD_CMD_FLAG_NO_HOLE,
  NBD_CMD_FLAG_REQ_ONE,
  NBD_CMD_FLUSH,
  NBD_CMD_READ,
  NBD_CMD_TRIM,
  NBD_CMD_WRITE,
  NBD_CMD_WRITE_ZEROES,
  NBD_EINVAL,
  NBD_EIO,
  NBD_ENOMEM,
  NBD_ENOSPC,
  NBD_EPERM,
  NBD_ESHUTDOWN,
  NBD_REPLY_FLAG_DONE,
  NBD_REPLY_TYPE_BLOCK_STATUS,
  NBD_REPLY_TYPE_ERROR,
  NBD_REPLY_TYPE_OFFSET_DATA,
  NBD_REPLY_TYPE_OFFSET_HOLE,
  NBD_REQUEST_MAGIC,
  NBD_SIMPLE_REPLY_MAGIC,
  NBD_STRUCTURED_REPLY_MAGIC,
  REQUEST_HEADER_BYTES,
  SIMPLE_REPLY_HEADER_BYTES,
  STRUCTURED_REPLY_HEADER_BYTES,
  commandName,
} from './protocol.js'
import { BASE_ALLOCATION, type BlockStatusDescriptor, type MetaContextProvider } from './providers.js'

/** Descriptors per BLOCK_STATUS chunk this server sends at most (the spec allows 2^20; clients ask again). */
const MAX_DESCRIPTORS_PER_CHUNK = 1 << 16
/** Structured read chunk prefix: header + u64 offset. */
const OFFSET_DATA_PREFIX = STRUCTURED_REPLY_HEADER_BYTES + 8

export interface TransmissionHost {
  /**
   * Write these buffers to the peer as one batch (unless the connection is gone); `done` runs once the stream no
   * longer needs them (written or failed), so pooled buffers can be reused.
   */
  send(buffers: Buffer[], done?: () => void): void
  /** A request finished (the connection may resume reading, or finish a drain). */
  requestDone(): void
  log(level: 'error' | 'warning' | 'info' | 'debug', message: string): void
}

interface Request {
  flags: number
  type: number
  /** The 8 cookie bytes as sent (copied out of the receive buffer). */
  cookie: Buffer
  offset: number
  length: number
}

/** A failure with the NBD errno to report. */
class NbdError extends Error {
  constructor(
    readonly errno: number,
    message: string,
  ) {
    super(message)
  }
}

export type TransmissionStep = 'need-more' | 'blocked' | 'continue' | 'disc'

export class Transmission {
  inFlight = 0
  inFlightBytes = 0
  /** Set by the connection while draining: new requests are answered ESHUTDOWN. */
  shuttingDown = false
  private header: Request | null = null
  /** Bytes of an oversized write payload still to drain. */
  private drainLeft = 0
  private readonly min: number
  private readonly readOnly: boolean
  private readonly readHoles: boolean

  constructor(
    private readonly exp: NbdExport,
    private readonly structured: boolean,
    private readonly contexts: MetaContextProvider[],
    private readonly opts: ResolvedOptions,
    private readonly host: TransmissionHost,
    private readonly pool: BufferPool,
  ) {
    this.min = blockSizes(exp, opts).min
    this.readOnly = isReadOnly(exp)
    const knowsHoles = contexts.some(c => c.name === BASE_ALLOCATION)
    this.readHoles = opts.readHoles === 'auto' ? !knowsHoles : opts.readHoles
  }

  /**
   * Parse and start at most one request. Throws ProtocolError when the stream cannot be trusted any more.
   * `ignoreLimits`: admit regardless of the in-flight limits (while draining, when every request fails at once).
   */
  step(queue: ByteQueue, ignoreLimits = false): TransmissionStep {
    if (this.drainLeft > 0) {
      this.drainLeft -= queue.skip(this.drainLeft)
      if (this.drainLeft > 0) return 'need-more'
      const r = this.header!
      this.header = null
      this.fail(r, new NbdError(NBD_EINVAL, `write of ${r.length} bytes exceeds the ${this.opts.maxPayloadBytes}-byte maximum payload`))
      return 'continue'
    }
    if (!this.header) {
      if (queue.length < REQUEST_HEADER_BYTES) return 'need-more'
      const h = queue.take(REQUEST_HEADER_BYTES)
      const magic = h.readUInt32BE(0)
      if (magic !== NBD_REQUEST_MAGIC) {
        throw new ProtocolError('nbd', `request has bad magic 0x${magic.toString(16)}`)
      }
      const hi = h.readUInt32BE(16)
      this.header = {
        flags: h.readUInt16BE(4),
        type: h.readUInt16BE(6),
        cookie: Buffer.from(h.subarray(8, 16)),
        // offsets past 2^53 cannot be inside any export: map them to a value checkRange rejects
        offset: hi >= 0x200000 ? Number.MAX_SAFE_INTEGER : hi * 0x100000000 + h.readUInt32BE(20),
        length: h.readUInt32BE(24),
      }
      const r = this.header
      if (r.type === NBD_CMD_DISC) {
        this.header = null
        return 'disc'
      }
      if (r.type === NBD_CMD_WRITE && r.length > this.opts.maxPayloadBytes) {
        this.drainLeft = r.length
        return this.step(queue, ignoreLimits)
      }
    }
    const r = this.header
    const cost = r.type === NBD_CMD_WRITE || r.type === NBD_CMD_READ ? r.length : 0
    if (!ignoreLimits && this.inFlight > 0 && (this.inFlight >= this.opts.maxInFlightRequests || this.inFlightBytes + cost > this.opts.maxInFlightBytes)) {
      return 'blocked'
    }
    let payload: Buffer | null = null
    if (r.type === NBD_CMD_WRITE) {
      if (queue.length < r.length) return 'need-more'
      payload = queue.take(r.length, size => this.pool.get(size))
    }
    this.header = null
    this.inFlight++
    this.inFlightBytes += cost
    this.run(r, payload).then(
      () => this.finished(cost, payload),
      err => {
        this.host.log('error', `nbd: internal error in ${commandName(r.type)}: ${(err as Error).message}`)
        this.finished(cost, payload)
      },
    )
    return 'continue'
  }

  /** A request is over; its write payload (if any) may be reused: VirtualDisk.write does not keep `data`. */
  private finished(cost: number, payload: Buffer | null): void {
    if (payload) this.pool.put(payload)
    this.inFlight--
    this.inFlightBytes -= cost
    this.host.requestDone()
  }

  private async run(r: Request, payload: Buffer | null): Promise<void> {
    try {
      if (this.shuttingDown) throw new NbdError(NBD_ESHUTDOWN, 'server is shutting down')
      this.validate(r)
      switch (r.type) {
        case NBD_CMD_READ:
          return await this.read(r)
        case NBD_CMD_WRITE:
          await this.exp.writeObserver?.beforeWrite(r.offset, r.length, 'write')
          await this.exp.disk.write(r.offset, payload!, { fua: (r.flags & NBD_CMD_FLAG_FUA) !== 0 })
          break
        case NBD_CMD_FLUSH:
          await this.exp.disk.flush()
          break
        case NBD_CMD_TRIM:
          if (r.length > 0) {
            await this.exp.writeObserver?.beforeWrite(r.offset, r.length, 'trim')
            await this.exp.disk.trim(r.offset, r.length)
            if (r.flags & NBD_CMD_FLAG_FUA) await this.exp.disk.flush()
          }
          break
        case NBD_CMD_WRITE_ZEROES:
          if (r.length > 0) {
            await this.exp.writeObserver?.beforeWrite(r.offset, r.length, 'zero')
            await this.exp.disk.writeZeroes(r.offset, r.length, {
              fua: (r.flags & NBD_CMD_FLAG_FUA) !== 0,
              noHole: (r.flags & NBD_CMD_FLAG_NO_HOLE) !== 0,
            })
          }
          break
        case NBD_CMD_CACHE:
          break // a prefetch hint: nothing to do for a disk without its own cache
        case NBD_CMD_BLOCK_STATUS:
          return await this.blockStatus(r)
      }
      this.host.send([this.simpleReply(r.cookie, 0)])
    } catch (err) {
      this.fail(r, err)
    }
  }

  /** Checks every request passes before it touches the disk. */
  private validate(r: Request): void {
    const known = [NBD_CMD_READ, NBD_CMD_WRITE, NBD_CMD_FLUSH, NBD_CMD_TRIM, NBD_CMD_CACHE, NBD_CMD_WRITE_ZEROES, NBD_CMD_BLOCK_STATUS]
    if (!known.includes(r.type)) throw new NbdError(NBD_EINVAL, `${commandName(r.type)} is not supported`)
    let allowed = NBD_CMD_FLAG_FUA // valid on every command once SEND_FUA is advertised
    if (r.type === NBD_CMD_READ && this.structured) allowed |= NBD_CMD_FLAG_DF
    if (r.type === NBD_CMD_WRITE_ZEROES) allowed |= NBD_CMD_FLAG_NO_HOLE
    if (r.type === NBD_CMD_BLOCK_STATUS) allowed |= NBD_CMD_FLAG_REQ_ONE
    if (r.flags & ~allowed) {
      throw new NbdError(NBD_EINVAL, `flags 0x${r.flags.toString(16)} not valid for ${commandName(r.type)}`)
    }
    const writes = r.type === NBD_CMD_WRITE || r.type === NBD_CMD_TRIM || r.type === NBD_CMD_WRITE_ZEROES
    if (writes && this.readOnly) throw new NbdError(NBD_EPERM, 'the export is read-only')
    if (r.type === NBD_CMD_FLUSH) return // offset and length are reserved (zero) for FLUSH
    const size = this.exp.disk.size
    if (r.offset > size || r.length > size - r.offset) {
      const errno = r.type === NBD_CMD_WRITE || r.type === NBD_CMD_WRITE_ZEROES ? NBD_ENOSPC : NBD_EINVAL
      throw new NbdError(errno, `range ${r.offset}+${r.length} ends past the end of the export (${size} bytes)`)
    }
    if (r.offset % this.min !== 0 || r.length % this.min !== 0) {
      throw new NbdError(NBD_EINVAL, `range ${r.offset}+${r.length} is not aligned to the ${this.min}-byte minimum block size`)
    }
    if (r.type === NBD_CMD_READ && r.length > this.opts.maxPayloadBytes) {
      throw new NbdError(NBD_EINVAL, `read of ${r.length} bytes exceeds the ${this.opts.maxPayloadBytes}-byte maximum payload`)
    }
    if (r.type === NBD_CMD_BLOCK_STATUS) {
      if (!this.structured || this.contexts.length === 0) {
        throw new NbdError(NBD_EINVAL, 'NBD_CMD_BLOCK_STATUS needs structured replies and a selected metadata context')
      }
      if (r.length === 0) throw new NbdError(NBD_EINVAL, 'NBD_CMD_BLOCK_STATUS of length 0')
    }
  }

  private async read(r: Request): Promise<void> {
    const disk = this.exp.disk
    if (!this.structured) {
      const buf = this.pool.get(SIMPLE_REPLY_HEADER_BYTES + r.length)
      try {
        await disk.read(r.offset, buf.subarray(SIMPLE_REPLY_HEADER_BYTES))
      } catch (err) {
        this.pool.put(buf)
        throw err
      }
      this.writeSimpleHeader(buf, r.cookie, 0)
      this.host.send([buf], () => this.pool.put(buf))
      return
    }
    if (r.length === 0) {
      this.host.send([this.chunk(r.cookie, NBD_REPLY_FLAG_DONE, 0, 0)])
      return
    }
    const runs = this.readHoles && !(r.flags & NBD_CMD_FLAG_DF) ? await this.readRuns(r) : null
    if (!runs) {
      const c = await this.dataChunk(r.cookie, r.offset, r.length, true)
      this.host.send([c], () => this.pool.put(c))
      return
    }
    const out: Buffer[] = []
    for (const [i, run] of runs.entries()) {
      const last = i === runs.length - 1
      if (run.hole) {
        const c = this.chunk(r.cookie, last ? NBD_REPLY_FLAG_DONE : 0, NBD_REPLY_TYPE_OFFSET_HOLE, 12)
        writeU64(c, STRUCTURED_REPLY_HEADER_BYTES, run.offset) // offset
        c.writeUInt32BE(run.length, STRUCTURED_REPLY_HEADER_BYTES + 8) // hole size
        out.push(c)
      } else {
        out.push(await this.dataChunk(r.cookie, run.offset, run.length, last))
      }
    }
    this.host.send(out)
  }

  /** Data/hole runs of a read, or null when it is all data (one chunk). */
  private async readRuns(r: Request): Promise<{ offset: number; length: number; hole: boolean }[] | null> {
    const runs: { offset: number; length: number; hole: boolean }[] = []
    let at = r.offset
    const end = r.offset + r.length
    for (const e of await this.exp.disk.extents(r.offset, r.length)) {
      const start = Math.max(e.offset, at)
      const stop = Math.min(e.offset + e.length, end)
      if (stop <= start || start !== at) continue
      const hole = e.state === 'zero' || e.state === 'unallocated'
      const last = runs[runs.length - 1]
      if (last && last.hole === hole) last.length += stop - start
      else runs.push({ offset: start, length: stop - start, hole })
      at = stop
    }
    if (at < end) runs.push({ offset: at, length: end - at, hole: false }) // not described: read it
    if (runs.length === 1 && !runs[0]!.hole) return null
    return runs
  }

  private async dataChunk(cookie: Buffer, offset: number, length: number, done: boolean): Promise<Buffer> {
    const c = this.pool.get(OFFSET_DATA_PREFIX + length)
    try {
      await this.exp.disk.read(offset, c.subarray(OFFSET_DATA_PREFIX))
    } catch (err) {
      this.pool.put(c)
      throw err
    }
    this.writeChunkHeader(c, cookie, done ? NBD_REPLY_FLAG_DONE : 0, NBD_REPLY_TYPE_OFFSET_DATA, 8 + length)
    writeU64(c, STRUCTURED_REPLY_HEADER_BYTES, offset)
    return c
  }

  private async blockStatus(r: Request): Promise<void> {
    const reqOne = (r.flags & NBD_CMD_FLAG_REQ_ONE) !== 0
    const limit = Math.min(r.length, this.exp.disk.size - r.offset)
    const answers = await Promise.all(this.contexts.map(async p => {
      let descriptors: BlockStatusDescriptor[]
      try {
        descriptors = await p.blockStatus(r.offset, limit)
      } catch (err) {
        throw new NbdError(NBD_EIO, `${p.name}: ${(err as Error).message}`)
      }
      return clipDescriptors(descriptors, limit, reqOne ? 1 : MAX_DESCRIPTORS_PER_CHUNK, p.name)
    }))
    const out = answers.map((d, i) => {
      const c = this.chunk(r.cookie, i === answers.length - 1 ? NBD_REPLY_FLAG_DONE : 0, NBD_REPLY_TYPE_BLOCK_STATUS, 4 + 8 * d.length)
      c.writeUInt32BE(i + 1, STRUCTURED_REPLY_HEADER_BYTES) // context id, as assigned in SET_META_CONTEXT order
      let at = STRUCTURED_REPLY_HEADER_BYTES + 4
      for (const x of d) {
        c.writeUInt32BE(x.length, at) // extent length
        c.writeUInt32BE(x.flags >>> 0, at + 4) // status flags
        at += 8
      }
      return c
    })
    this.host.send(out)
  }

  private fail(r: Request, err: unknown): void {
    const { errno, message } = toNbdError(err)
    if (errno === NBD_EIO) this.host.log('warning', `nbd: ${commandName(r.type)} ${r.offset}+${r.length}: ${message}`)
    if (!this.structured) {
      this.host.send([this.simpleReply(r.cookie, errno)])
      return
    }
    const msg = Buffer.from(message.slice(0, 1024))
    const c = this.chunk(r.cookie, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, 6 + msg.length)
    c.writeUInt32BE(errno, STRUCTURED_REPLY_HEADER_BYTES) // error
    c.writeUInt16BE(msg.length, STRUCTURED_REPLY_HEADER_BYTES + 4) // message length
    msg.copy(c, STRUCTURED_REPLY_HEADER_BYTES + 6)
    this.host.send([c])
  }

  private simpleReply(cookie: Buffer, errno: number): Buffer {
    const b = Buffer.allocUnsafe(SIMPLE_REPLY_HEADER_BYTES)
    this.writeSimpleHeader(b, cookie, errno)
    return b
  }

  private writeSimpleHeader(b: Buffer, cookie: Buffer, errno: number): void {
    b.writeUInt32BE(NBD_SIMPLE_REPLY_MAGIC, 0)
    b.writeUInt32BE(errno, 4) // error
    cookie.copy(b, 8) // cookie
  }

  /** A structured chunk with room for `payload` bytes after the header (payload left for the caller). */
  private chunk(cookie: Buffer, flags: number, type: number, payload: number): Buffer {
    const c = Buffer.alloc(STRUCTURED_REPLY_HEADER_BYTES + payload)
    this.writeChunkHeader(c, cookie, flags, type, payload)
    return c
  }

  private writeChunkHeader(c: Buffer, cookie: Buffer, flags: number, type: number, payload: number): void {
    c.writeUInt32BE(NBD_STRUCTURED_REPLY_MAGIC, 0)
    c.writeUInt16BE(flags, 4) // reply flags
    c.writeUInt16BE(type, 6) // reply type
    cookie.copy(c, 8) // cookie
    c.writeUInt32BE(payload, 16) // payload length
  }
}

/**
 * Descriptors cut to `limit` bytes and `max` entries, zero lengths dropped, equal neighbours merged. A provider that
 * answers nothing usable is an error (the spec requires at least one descriptor).
 */
export function clipDescriptors(d: BlockStatusDescriptor[], limit: number, max: number, name: string): BlockStatusDescriptor[] {
  const out: BlockStatusDescriptor[] = []
  let total = 0
  for (const x of d) {
    if (total >= limit) break
    if (x.length === 0) continue
    if (!(x.length > 0) || !Number.isSafeInteger(x.length)) break // nonsense from the provider: stop here
    const length = Math.min(x.length, limit - total) // limit is at most a u32 request length
    const last = out[out.length - 1]
    if (last && last.flags === x.flags) last.length += length
    else if (out.length === max) break
    else out.push({ length, flags: x.flags })
    total += length
  }
  if (out.length === 0) throw new NbdError(NBD_EIO, `${name}: no status for the requested range`)
  return out
}

function toNbdError(err: unknown): { errno: number; message: string } {
  if (err instanceof NbdError) return { errno: err.errno, message: err.message }
  const e = err as NodeJS.ErrnoException
  const message = e instanceof Error ? e.message : String(err)
  if (e instanceof RangeError) return { errno: NBD_EINVAL, message }
  switch (e?.code) {
    case 'EROFS':
    case 'EPERM':
    case 'EACCES':
      return { errno: NBD_EPERM, message }
    case 'ENOSPC':
    case 'EDQUOT':
    case 'EFBIG':
      return { errno: NBD_ENOSPC, message }
    case 'ENOMEM':
      return { errno: NBD_ENOMEM, message }
    default:
      return { errno: NBD_EIO, message }
  }
}

function writeU64(b: Buffer, at: number, v: number): void {
  b.writeUInt32BE(Math.floor(v / 0x100000000), at)
  b.writeUInt32BE(v >>> 0, at + 4)
}
