/**
 * Fixed newstyle option haggling: the state machine between the greeting and the transmission phase.
 *
 * The connection feeds it bytes; step() consumes at most one option (the client must wait for the final reply to
 * an option before sending the next, so options are handled strictly one at a time) and returns what happened.
 * Bounds that keep a hostile client from costing memory: option data longer than maxOptionBytes is drained without
 * buffering and answered NBD_REP_ERR_TOO_BIG; at most maxOptions options; a bad magic or unknown client flag is a
 * protocol violation that ends the connection (the caller closes it). Every reply is built whole and written once.
 */
import { ProtocolError } from '../engine/errors.js'
import type { ByteQueue } from './byte-queue.js'
import {
  blockSizes,
  isReadOnly,
  matchContexts,
  staticContexts,
  transmissionFlags,
  type NbdExport,
  type ResolvedOptions,
} from './nbd-export.js'
import {
  EXPORT_NAME_PADDING_BYTES,
  NBD_INFO_BLOCK_SIZE,
  NBD_INFO_DESCRIPTION,
  NBD_INFO_EXPORT,
  NBD_INFO_NAME,
  NBD_MAX_STRING_BYTES,
  NBD_OPT_ABORT,
  NBD_OPT_EXPORT_NAME,
  NBD_OPT_GO,
  NBD_OPT_INFO,
  NBD_OPT_LIST,
  NBD_OPT_LIST_META_CONTEXT,
  NBD_OPT_SET_META_CONTEXT,
  NBD_OPT_STRUCTURED_REPLY,
  NBD_OPTION_REPLY_MAGIC,
  NBD_OPTS_MAGIC,
  NBD_REP_ACK,
  NBD_REP_ERR_INVALID,
  NBD_REP_ERR_SHUTDOWN,
  NBD_REP_ERR_TOO_BIG,
  NBD_REP_ERR_UNKNOWN,
  NBD_REP_ERR_UNSUP,
  NBD_REP_INFO,
  NBD_REP_META_CONTEXT,
  NBD_REP_SERVER,
  OPTION_HEADER_BYTES,
  OPTION_REPLY_HEADER_BYTES,
  optionName,
} from './protocol.js'
import type { MetaContextProvider } from './providers.js'

/** Most contexts one NBD_OPT_SET_META_CONTEXT may select. */
const MAX_SELECTED_CONTEXTS = 256

/** What the connection does after a step. */
export type HandshakeStep =
  | { kind: 'need-more' }
  | { kind: 'continue' }
  | { kind: 'abort' }
  /** Enter transmission; `padding` only for NBD_OPT_EXPORT_NAME without NO_ZEROES. */
  | { kind: 'go'; export: NbdExport; structured: boolean; contexts: MetaContextProvider[] }

export interface HandshakeHost {
  findExport(name: string): NbdExport | undefined
  listExports(): NbdExport[]
  readonly shuttingDown: boolean
  send(buf: Buffer): void
}

export class Handshake {
  /** Negotiated NBD_OPT_STRUCTURED_REPLY. */
  structured = false
  /** Client set NBD_FLAG_C_NO_ZEROES. */
  noZeroes = false
  private optionsSeen = 0
  /** Selected contexts and the export they were selected on (spec: only valid if GO names the same export). */
  private selected: { export: NbdExport; contexts: MetaContextProvider[] } | null = null
  /** Header of an option whose data is being read (or drained when too big). */
  private pending: { option: number; length: number; drained: number } | null = null
  private readonly contextCache = new WeakMap<NbdExport, MetaContextProvider[]>()

  constructor(
    private readonly host: HandshakeHost,
    private readonly opts: ResolvedOptions,
  ) {}

  /** Consume at most one option from `queue`. Throws ProtocolError on a violation that must close the connection. */
  async step(queue: ByteQueue): Promise<HandshakeStep> {
    if (!this.pending) {
      if (queue.length < OPTION_HEADER_BYTES) return { kind: 'need-more' }
      const h = queue.take(OPTION_HEADER_BYTES)
      if (h.readBigUInt64BE(0) !== NBD_OPTS_MAGIC) {
        throw new ProtocolError('nbd', `option request has bad magic 0x${h.readBigUInt64BE(0).toString(16)}`)
      }
      if (++this.optionsSeen > this.opts.maxOptions) {
        throw new ProtocolError('nbd', `more than ${this.opts.maxOptions} options without choosing an export`)
      }
      this.pending = { option: h.readUInt32BE(8), length: h.readUInt32BE(12), drained: 0 }
    }
    const p = this.pending
    if (p.length > this.opts.maxOptionBytes) {
      if (p.option === NBD_OPT_EXPORT_NAME) {
        throw new ProtocolError('nbd', `NBD_OPT_EXPORT_NAME of ${p.length} bytes (names are at most 4096)`)
      }
      p.drained += queue.skip(p.length - p.drained)
      if (p.drained < p.length) return { kind: 'need-more' }
      this.pending = null
      this.reply(p.option, NBD_REP_ERR_TOO_BIG, `option data of ${p.length} bytes exceeds ${this.opts.maxOptionBytes}`)
      return { kind: 'continue' }
    }
    if (queue.length < p.length) return { kind: 'need-more' }
    const data = queue.take(p.length)
    this.pending = null
    return this.handle(p.option, data)
  }

  private async handle(option: number, data: Buffer): Promise<HandshakeStep> {
    if (this.host.shuttingDown && option !== NBD_OPT_ABORT) {
      if (option === NBD_OPT_EXPORT_NAME) throw new ProtocolError('nbd', 'server is shutting down')
      this.reply(option, NBD_REP_ERR_SHUTDOWN, 'server is shutting down')
      return { kind: 'continue' }
    }
    switch (option) {
      case NBD_OPT_EXPORT_NAME:
        return this.exportName(data)
      case NBD_OPT_ABORT:
        this.reply(option, NBD_REP_ACK) // the spec asks the server to ignore any data sent with ABORT
        return { kind: 'abort' }
      case NBD_OPT_LIST:
        if (data.length !== 0) return this.invalid(option, 'NBD_OPT_LIST takes no data')
        for (const e of this.host.listExports()) this.reply(option, NBD_REP_SERVER, lengthPrefixed(e.name))
        this.reply(option, NBD_REP_ACK)
        return { kind: 'continue' }
      case NBD_OPT_INFO:
      case NBD_OPT_GO:
        return this.infoOrGo(option, data)
      case NBD_OPT_STRUCTURED_REPLY:
        if (data.length !== 0) return this.invalid(option, 'NBD_OPT_STRUCTURED_REPLY takes no data')
        this.structured = true
        this.reply(option, NBD_REP_ACK)
        return { kind: 'continue' }
      case NBD_OPT_LIST_META_CONTEXT:
      case NBD_OPT_SET_META_CONTEXT:
        return this.metaContext(option, data)
      default:
        this.reply(option, NBD_REP_ERR_UNSUP, `${optionName(option)} is not supported`)
        return { kind: 'continue' }
    }
  }

  private exportName(data: Buffer): HandshakeStep {
    const name = data.toString('utf8')
    const exp = this.host.findExport(name)
    if (!exp) throw new ProtocolError('nbd', `NBD_OPT_EXPORT_NAME: no export named '${name}'`)
    const b = Buffer.alloc(10 + (this.noZeroes ? 0 : EXPORT_NAME_PADDING_BYTES))
    b.writeBigUInt64BE(BigInt(exp.disk.size), 0) // export size
    b.writeUInt16BE(transmissionFlags(exp, this.structured), 8) // transmission flags
    this.host.send(b)
    // structured replies and meta contexts negotiated earlier apply to EXPORT_NAME as they do to GO
    const contexts = this.selected && this.selected.export === exp ? this.selected.contexts : []
    return { kind: 'go', export: exp, structured: this.structured, contexts }
  }

  private infoOrGo(option: number, data: Buffer): HandshakeStep {
    // u32 name length, name, u16 number of info requests, u16 each
    if (data.length < 6) return this.invalid(option, `${data.length} bytes of data, at least 6 needed`)
    const nameLength = data.readUInt32BE(0)
    if (nameLength > data.length - 6) return this.invalid(option, `name length ${nameLength} exceeds the option data`)
    const name = data.toString('utf8', 4, 4 + nameLength)
    const count = data.readUInt16BE(4 + nameLength)
    if (data.length !== 6 + nameLength + 2 * count) {
      return this.invalid(option, `${count} information requests do not match ${data.length} bytes of data`)
    }
    const requests = new Set<number>()
    for (let i = 0; i < count; i++) requests.add(data.readUInt16BE(6 + nameLength + 2 * i))
    const exp = this.host.findExport(name)
    if (!exp) {
      this.reply(option, NBD_REP_ERR_UNKNOWN, `no export named '${name}'`)
      return { kind: 'continue' }
    }
    const info = Buffer.alloc(12) // NBD_INFO_EXPORT: u16 type, u64 size, u16 transmission flags
    info.writeUInt16BE(NBD_INFO_EXPORT, 0)
    info.writeBigUInt64BE(BigInt(exp.disk.size), 2)
    info.writeUInt16BE(transmissionFlags(exp, this.structured), 10)
    this.reply(option, NBD_REP_INFO, info)
    const sizes = blockSizes(exp, this.opts)
    const bs = Buffer.alloc(14) // NBD_INFO_BLOCK_SIZE: u16 type, u32 minimum, u32 preferred, u32 maximum payload
    bs.writeUInt16BE(NBD_INFO_BLOCK_SIZE, 0)
    bs.writeUInt32BE(sizes.min, 2)
    bs.writeUInt32BE(sizes.preferred, 6)
    bs.writeUInt32BE(sizes.max, 10)
    this.reply(option, NBD_REP_INFO, bs) // always sent: the server enforces these constraints
    if (requests.has(NBD_INFO_NAME)) this.reply(option, NBD_REP_INFO, infoString(NBD_INFO_NAME, exp.name))
    if (requests.has(NBD_INFO_DESCRIPTION) && exp.description) {
      this.reply(option, NBD_REP_INFO, infoString(NBD_INFO_DESCRIPTION, exp.description))
    }
    this.reply(option, NBD_REP_ACK)
    if (option === NBD_OPT_INFO) return { kind: 'continue' }
    const contexts = this.selected && this.selected.export === exp ? this.selected.contexts : []
    return { kind: 'go', export: exp, structured: this.structured, contexts }
  }

  private async metaContext(option: number, data: Buffer): Promise<HandshakeStep> {
    const set = option === NBD_OPT_SET_META_CONTEXT
    if (set) this.selected = null // SET replaces the selection even when it fails
    if (!this.structured) return this.invalid(option, 'structured replies must be negotiated first')
    // u32 export name length, name, u32 query count, (u32 length, query) each
    const parsed = parseMetaRequest(data)
    if (typeof parsed === 'string') return this.invalid(option, parsed)
    const exp = this.host.findExport(parsed.exportName)
    if (!exp) {
      this.reply(option, NBD_REP_ERR_UNKNOWN, `no export named '${parsed.exportName}'`)
      return { kind: 'continue' }
    }
    const bad = parsed.queries.find(q => !q.includes(':'))
    if (bad !== undefined) return this.invalid(option, `query '${bad}' does not start with a namespace and a colon`)
    let found: MetaContextProvider[]
    try {
      found = await matchContexts(exp, staticContexts(exp, this.contextCache), parsed.queries, !set)
    } catch (err) {
      this.reply(option, NBD_REP_ERR_INVALID, `cannot list metadata contexts: ${(err as Error).message}`)
      return { kind: 'continue' }
    }
    if (set && found.length > MAX_SELECTED_CONTEXTS) {
      this.reply(option, NBD_REP_ERR_TOO_BIG, `${found.length} contexts selected, at most ${MAX_SELECTED_CONTEXTS}`)
      return { kind: 'continue' }
    }
    found.forEach((p, i) => {
      const b = Buffer.alloc(4 + Buffer.byteLength(p.name))
      b.writeUInt32BE(set ? i + 1 : 0, 0) // context id (LIST: reserved, zero)
      b.write(p.name, 4)
      this.reply(option, NBD_REP_META_CONTEXT, b)
    })
    this.reply(option, NBD_REP_ACK)
    if (set) this.selected = { export: exp, contexts: found }
    return { kind: 'continue' }
  }

  private invalid(option: number, message: string): HandshakeStep {
    this.reply(option, NBD_REP_ERR_INVALID, `${optionName(option)}: ${message}`)
    return { kind: 'continue' }
  }

  /** One option reply: magic, option, reply type, length, data (a string is an error message). */
  private reply(option: number, type: number, data: Buffer | string = Buffer.alloc(0)): void {
    const payload = typeof data === 'string' ? Buffer.from(data.slice(0, NBD_MAX_STRING_BYTES / 4)) : data
    const b = Buffer.allocUnsafe(OPTION_REPLY_HEADER_BYTES + payload.length)
    b.writeBigUInt64BE(NBD_OPTION_REPLY_MAGIC, 0)
    b.writeUInt32BE(option >>> 0, 8)
    b.writeUInt32BE(type >>> 0, 12)
    b.writeUInt32BE(payload.length, 16)
    payload.copy(b, OPTION_REPLY_HEADER_BYTES)
    this.host.send(b)
  }

  /** For callers that need read-only-ness of the chosen export in logs. */
  static describe(exp: NbdExport): string {
    return `'${exp.name}' (${exp.disk.size} bytes${isReadOnly(exp) ? ', read-only' : ''})`
  }
}

function lengthPrefixed(s: string): Buffer {
  const b = Buffer.alloc(4 + Buffer.byteLength(s))
  b.writeUInt32BE(Buffer.byteLength(s), 0)
  b.write(s, 4)
  return b
}

function infoString(type: number, s: string): Buffer {
  const b = Buffer.alloc(2 + Buffer.byteLength(s))
  b.writeUInt16BE(type, 0)
  b.write(s, 2)
  return b
}

/** Parse the LIST/SET_META_CONTEXT payload; a string return is what is wrong with it. */
export function parseMetaRequest(data: Buffer): { exportName: string; queries: string[] } | string {
  let at = 0
  const need = (n: number, what: string) => (at + n > data.length ? `${what} runs past the option data` : null)
  const e1 = need(4, 'export name length')
  if (e1) return e1
  const nameLength = data.readUInt32BE(at)
  at += 4
  const e2 = need(nameLength, 'export name')
  if (e2) return e2
  if (nameLength > NBD_MAX_STRING_BYTES) return `export name of ${nameLength} bytes is longer than 4096`
  const exportName = data.toString('utf8', at, at + nameLength)
  at += nameLength
  const e3 = need(4, 'query count')
  if (e3) return e3
  const count = data.readUInt32BE(at)
  at += 4
  if (count > (data.length - at) / 4) return `query count ${count} cannot fit in the option data`
  const queries: string[] = []
  for (let i = 0; i < count; i++) {
    const e4 = need(4, `query ${i} length`)
    if (e4) return e4
    const len = data.readUInt32BE(at)
    at += 4
    const e5 = need(len, `query ${i}`)
    if (e5) return e5
    if (len > NBD_MAX_STRING_BYTES) return `query ${i} of ${len} bytes is longer than 4096`
    queries.push(data.toString('utf8', at, at + len))
    at += len
  }
  if (at !== data.length) return `${data.length - at} bytes after the last query`
  return { exportName, queries }
}
