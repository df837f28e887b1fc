/**
 * A deliberately small NBD client for tests: it speaks the wire protocol byte by byte so tests can also send what
 * real clients never would (bad magic, oversized requests, garbage options) and see exactly what comes back.
 */
import net from 'node:net'
import { ByteQueue } from '../../src/nbd/byte-queue.js'
import * as P from '../../src/nbd/protocol.js'

export interface OptionReply {
  option: number
  type: number
  data: Buffer
}

export type Reply =
  | { kind: 'simple'; error: number; cookie: bigint; data: Buffer }
  | { kind: 'chunk'; flags: number; type: number; cookie: bigint; payload: Buffer }

export class RawClient {
  private readonly queue = new ByteQueue()
  private waiters: (() => void)[] = []
  ended = false
  /** READ lengths by cookie, to frame simple read replies. */
  readonly readLengths = new Map<bigint, number>()
  structured = false

  private constructor(readonly socket: net.Socket) {
    socket.on('data', b => {
      this.queue.push(b)
      this.wake()
    })
    socket.on('close', () => {
      this.ended = true
      this.wake()
    })
    socket.on('error', () => undefined)
  }

  static connect(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ port, host: '127.0.0.1', noDelay: true }, () => resolve(new RawClient(s)))
      s.once('error', reject)
    })
  }

  private wake(): void {
    const w = this.waiters
    this.waiters = []
    for (const f of w) f()
  }

  /** Exactly n bytes; rejects if the server closes first. */
  async read(n: number): Promise<Buffer> {
    while (this.queue.length < n) {
      if (this.ended) throw new Error(`connection closed (${this.queue.length} of ${n} bytes)`)
      await new Promise<void>(r => this.waiters.push(r))
    }
    return Buffer.from(this.queue.take(n))
  }

  /** Resolves true when the server closes the connection within `ms`. */
  async closedWithin(ms: number): Promise<boolean> {
    const deadline = Date.now() + ms
    while (!this.ended && Date.now() < deadline) {
      await new Promise<void>(r => {
        this.waiters.push(r)
        setTimeout(r, 20)
      })
    }
    return this.ended
  }

  write(b: Buffer): void {
    this.socket.write(b)
  }

  close(): void {
    this.socket.destroy()
  }

  /** Read the greeting and send client flags. */
  async start(clientFlags = P.NBD_FLAG_C_FIXED_NEWSTYLE | P.NBD_FLAG_C_NO_ZEROES): Promise<number> {
    const g = await this.read(18)
    if (g.readBigUInt64BE(0) !== P.NBD_MAGIC || g.readBigUInt64BE(8) !== P.NBD_OPTS_MAGIC) throw new Error('bad greeting')
    this.write(u32(clientFlags))
    return g.readUInt16BE(16)
  }

  sendOption(option: number, data: Buffer = Buffer.alloc(0)): void {
    this.write(optionRequest(option, data))
  }

  async readOptionReply(): Promise<OptionReply> {
    const h = await this.read(20)
    if (h.readBigUInt64BE(0) !== P.NBD_OPTION_REPLY_MAGIC) throw new Error('bad option reply magic')
    return { option: h.readUInt32BE(8), type: h.readUInt32BE(12), data: await this.read(h.readUInt32BE(16)) }
  }

  /** Replies to one option up to and including the final one (ACK or an error). */
  async option(option: number, data?: Buffer): Promise<OptionReply[]> {
    this.sendOption(option, data)
    const out: OptionReply[] = []
    for (;;) {
      const r = await this.readOptionReply()
      out.push(r)
      if (r.type === P.NBD_REP_ACK || r.type & P.NBD_REP_FLAG_ERROR) return out
    }
  }

  /** Structured replies (optional), meta contexts (optional), then GO. Returns size and transmission flags. */
  async go(name: string, o: { structured?: boolean; contexts?: string[] } = {}): Promise<{ size: number; flags: number }> {
    if (o.structured) {
      const r = await this.option(P.NBD_OPT_STRUCTURED_REPLY)
      if (r[0]!.type !== P.NBD_REP_ACK) throw new Error('structured replies refused')
      this.structured = true
    }
    if (o.contexts) await this.option(P.NBD_OPT_SET_META_CONTEXT, metaRequest(name, o.contexts))
    const replies = await this.option(P.NBD_OPT_GO, goRequest(name, [P.NBD_INFO_BLOCK_SIZE]))
    const last = replies[replies.length - 1]!
    if (last.type !== P.NBD_REP_ACK) throw new Error(`GO failed: 0x${last.type.toString(16)} ${last.data.toString()}`)
    const exp = replies.find(r => r.type === P.NBD_REP_INFO && r.data.readUInt16BE(0) === P.NBD_INFO_EXPORT)!
    return { size: Number(exp.data.readBigUInt64BE(2)), flags: exp.data.readUInt16BE(10) }
  }

  request(type: number, cookie: bigint, offset: number, length: number, flags = 0, payload?: Buffer): void {
    if (type === P.NBD_CMD_READ) this.readLengths.set(cookie, length)
    const h = requestHeader(type, cookie, offset, length, flags)
    this.write(payload ? Buffer.concat([h, payload]) : h)
  }

  async readReply(): Promise<Reply> {
    const magic = (await this.read(4)).readUInt32BE(0)
    if (magic === P.NBD_SIMPLE_REPLY_MAGIC) {
      const h = await this.read(12)
      const cookie = h.readBigUInt64BE(4)
      const error = h.readUInt32BE(0)
      const len = this.readLengths.get(cookie)
      this.readLengths.delete(cookie)
      const data = !this.structured && len !== undefined && error === 0 ? await this.read(len) : Buffer.alloc(0)
      return { kind: 'simple', error, cookie, data }
    }
    if (magic === P.NBD_STRUCTURED_REPLY_MAGIC) {
      const h = await this.read(16)
      return { kind: 'chunk', flags: h.readUInt16BE(0), type: h.readUInt16BE(2), cookie: h.readBigUInt64BE(4), payload: await this.read(h.readUInt32BE(12)) }
    }
    throw new Error(`bad reply magic 0x${magic.toString(16)}`)
  }

  /** Every message of one reply (a simple reply, or chunks up to DONE) for the next cookie that completes. */
  async readFullReply(): Promise<{ cookie: bigint; error: number; chunks: Reply[] }> {
    const first = await this.readReply()
    if (first.kind === 'simple') return { cookie: first.cookie, error: first.error, chunks: [first] }
    const chunks: Reply[] = [first]
    let last = first
    while (!(last.flags & P.NBD_REPLY_FLAG_DONE)) {
      const n = await this.readReply()
      if (n.kind !== 'chunk' || n.cookie !== first.cookie) throw new Error('interleaved replies are not handled by this helper')
      chunks.push(n)
      last = n
    }
    const err = chunks.find(c => c.kind === 'chunk' && c.type & P.NBD_REPLY_TYPE_ERROR_BIT)
    return { cookie: first.cookie, error: err && err.kind === 'chunk' ? err.payload.readUInt32BE(0) : 0, chunks }
  }
}

export function u32(v: number): Buffer {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(v >>> 0)
  return b
}

export function optionRequest(option: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(16)
  h.writeBigUInt64BE(P.NBD_OPTS_MAGIC, 0)
  h.writeUInt32BE(option >>> 0, 8)
  h.writeUInt32BE(data.length, 12)
  return Buffer.concat([h, data])
}

export function goRequest(name: string, infos: number[] = []): Buffer {
  const n = Buffer.from(name)
  const b = Buffer.alloc(4 + n.length + 2 + 2 * infos.length)
  b.writeUInt32BE(n.length, 0)
  n.copy(b, 4)
  b.writeUInt16BE(infos.length, 4 + n.length)
  infos.forEach((x, i) => b.writeUInt16BE(x, 6 + n.length + 2 * i))
  return b
}

export function metaRequest(name: string, queries: string[]): Buffer {
  const parts = [u32(Buffer.byteLength(name)), Buffer.from(name), u32(queries.length)]
  for (const q of queries) parts.push(u32(Buffer.byteLength(q)), Buffer.from(q))
  return Buffer.concat(parts)
}

export function requestHeader(type: number, cookie: bigint, offset: number, length: number, flags = 0): Buffer {
  const h = Buffer.alloc(28)
  h.writeUInt32BE(P.NBD_REQUEST_MAGIC, 0)
  h.writeUInt16BE(flags, 4)
  h.writeUInt16BE(type, 6)
  h.writeBigUInt64BE(cookie, 8)
  h.writeBigUInt64BE(BigInt(offset), 16)
  h.writeUInt32BE(length >>> 0, 24)
  return h
}
