/**
 * What the server exports and the limits it applies: the export definition (a VirtualDisk plus metadata contexts
 * and a write observer), the server options with their defaults, the transmission flags an export advertises and
 * the matching of metadata context queries (NBD_OPT_LIST_META_CONTEXT / NBD_OPT_SET_META_CONTEXT) to providers.
 */
import type { VirtualDisk } from '../formats/virtual-disk.js'
import {
  DEFAULT_MAX_PAYLOAD_BYTES,
  DEFAULT_PREFERRED_BLOCK_BYTES,
  NBD_FLAG_CAN_MULTI_CONN,
  NBD_FLAG_HAS_FLAGS,
  NBD_FLAG_READ_ONLY,
  NBD_FLAG_SEND_CACHE,
  NBD_FLAG_SEND_DF,
  NBD_FLAG_SEND_FLUSH,
  NBD_FLAG_SEND_FUA,
  NBD_FLAG_SEND_TRIM,
  NBD_FLAG_SEND_WRITE_ZEROES,
} from './protocol.js'
import { baseAllocationProvider, type MetaContextLister, type MetaContextProvider, type WriteObserver } from './providers.js'

export interface NbdExport {
  /** Export name clients ask for ('' is the default export when it is the first one). */
  name: string
  /** Sent as NBD_INFO_DESCRIPTION when asked. */
  description?: string
  disk: VirtualDisk
  /** Serve read-only even when the disk is writable. */
  readOnly?: boolean
  /** Contexts besides base:allocation (which every export has). */
  metaContexts?: MetaContextProvider[]
  /** Families of contexts that change while the export runs (dirty bitmaps). */
  metaContextListers?: MetaContextLister[]
  /** Told of every write/trim/zero before it is acknowledged. */
  writeObserver?: WriteObserver
}

export interface NbdServerOptions {
  /** Largest READ/WRITE payload accepted (NBD_INFO_BLOCK_SIZE maximum). Default 32 MiB. */
  maxPayloadBytes?: number
  /** Requests handled at once per connection; more wait in the socket. Default 64. */
  maxInFlightRequests?: number
  /** Payload bytes (write data + read buffers) held at once per connection. Default 128 MiB. */
  maxInFlightBytes?: number
  /** Largest option data accepted during the handshake; longer options get NBD_REP_ERR_TOO_BIG. Default 64 KiB. */
  maxOptionBytes?: number
  /** Options a client may send before it must choose an export. Default 256. */
  maxOptions?: number
  /** The handshake must end (NBD_OPT_GO) within this time. Default 30 s. */
  handshakeTimeoutMs?: number
  /** Reply bytes queued on a socket before the connection stops reading requests. Default 64 MiB. */
  maxQueuedReplyBytes?: number
  /**
   * Structured READ replies report holes (from VirtualDisk.extents) as NBD_REPLY_TYPE_OFFSET_HOLE: 'auto' (default)
   * does it only for clients that did not select base:allocation (those already know the holes and read only
   * data, so the extra extents lookup per read would be wasted), true always, false never.
   */
  readHoles?: boolean | 'auto'
  /** Diagnostics (connections, protocol violations). */
  log?(level: 'error' | 'warning' | 'info' | 'debug', message: string): void
}

export type ResolvedOptions = Required<Omit<NbdServerOptions, 'log'>> & Pick<NbdServerOptions, 'log'>

export function resolveOptions(o: NbdServerOptions = {}): ResolvedOptions {
  const r: ResolvedOptions = {
    maxPayloadBytes: o.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES,
    maxInFlightRequests: o.maxInFlightRequests ?? 64,
    maxInFlightBytes: o.maxInFlightBytes ?? 128 * 1024 * 1024,
    maxOptionBytes: o.maxOptionBytes ?? 64 * 1024,
    maxOptions: o.maxOptions ?? 256,
    handshakeTimeoutMs: o.handshakeTimeoutMs ?? 30_000,
    maxQueuedReplyBytes: o.maxQueuedReplyBytes ?? 64 * 1024 * 1024,
    readHoles: o.readHoles ?? 'auto',
    log: o.log,
  }
  if (!(r.maxPayloadBytes >= 1 << 20 && r.maxPayloadBytes <= 0xffffffff)) {
    throw new RangeError(`maxPayloadBytes ${r.maxPayloadBytes} must be between 1 MiB and 4 GiB - 1`)
  }
  return r
}

/** Block size constraints advertised for an export: min = logical sector, preferred, max payload. */
export function blockSizes(exp: NbdExport, opts: ResolvedOptions): { min: number; preferred: number; max: number } {
  const min = exp.disk.logicalSectorSize
  const preferred = Math.max(min, exp.disk.physicalSectorSize, DEFAULT_PREFERRED_BLOCK_BYTES)
  return { min, preferred, max: opts.maxPayloadBytes }
}

export function isReadOnly(exp: NbdExport): boolean {
  return exp.readOnly === true || exp.disk.readOnly
}

/**
 * Transmission flags. CAN_MULTI_CONN holds because every connection to an export shares one VirtualDisk object
 * and answers FLUSH/FUA with that disk's flush(), which covers every completed write whichever connection made it.
 */
export function transmissionFlags(exp: NbdExport, structured: boolean): number {
  let f = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_CACHE | NBD_FLAG_CAN_MULTI_CONN
  if (isReadOnly(exp)) f |= NBD_FLAG_READ_ONLY
  else f |= NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES
  if (structured) f |= NBD_FLAG_SEND_DF
  return f
}

/** base:allocation plus the export's static contexts (base:allocation built once per export). */
export function staticContexts(exp: NbdExport, cache: WeakMap<NbdExport, MetaContextProvider[]>): MetaContextProvider[] {
  let list = cache.get(exp)
  if (!list) {
    list = [baseAllocationProvider(exp.disk), ...(exp.metaContexts ?? [])]
    cache.set(exp, list)
  }
  return list
}

/**
 * Contexts matching `queries`. For LIST (`wildcards` true) a query ending in ':' is a prefix wildcard ('base:',
 * 'qemu:', 'qemu:dirty-bitmap:') and no query means every context; for SET only exact names select.
 */
export async function matchContexts(
  exp: NbdExport,
  statics: MetaContextProvider[],
  queries: string[],
  wildcards: boolean,
): Promise<MetaContextProvider[]> {
  const found = new Map<string, MetaContextProvider>()
  const listers = exp.metaContextListers ?? []
  const matches = (name: string, q: string) => name === q || (wildcards && q.endsWith(':') && name.startsWith(q))
  const all = wildcards && queries.length === 0
  for (const p of statics) {
    if (all || queries.some(q => matches(p.name, q))) found.set(p.name, p)
  }
  for (const lister of listers) {
    const relevant = all || queries.some(q => q.startsWith(lister.prefix) || (wildcards && lister.prefix.startsWith(q)))
    if (!relevant) continue
    for (const p of await lister.list()) {
      if (!found.has(p.name) && (all || queries.some(q => matches(p.name, q)))) found.set(p.name, p)
    }
  }
  return [...found.values()]
}
