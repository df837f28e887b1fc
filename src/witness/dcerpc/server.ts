/**
 * DCE/RPC connection-oriented server runtime over TCP (ncacn_ip_tcp): one Connection per socket, a small state
 * machine over PDUs (C706 12.6, MS-RPCE 3.3.3):
 *
 *   bind -> bind_ack | bind_nak          negotiate fragment sizes, association group, presentation contexts, auth
 *   auth3 / alter_context               finish the security context (NTLMSSP 3rd leg; SPNEGO's extra round trip)
 *   request fragments -> reassembly -> dispatch (async) -> response fragments | fault
 *   co_cancel / orphaned                abort the call (orphaned: no answer); the connection stays (feature 0x2)
 *
 * Calls run concurrently (CONC_MPX): a held WitnessrAsyncNotify never blocks later calls on the connection.
 * Limits bound every resource a peer controls: fragment size (framing), reassembled stub bytes per call, calls in
 * flight per connection, partial calls per connection, connections per server. Breaking them gets a fault or a
 * closed connection, never a large allocation. NDR64 is refused in the bind_ack result list (provider rejection,
 * proposed transfer syntaxes not supported); bind-time feature negotiation is answered with negotiate_ack.
 */
import { createServer, type Server, type Socket } from 'node:net'
import { ProtocolError } from '../../engine/errors.js'
import { AssociationGroups, type AssociationGroup } from './association.js'
import { PduFramer } from './framing.js'
import {
  AuthLevel, BindNakReason, BindTimeFeature, BindTimeFeaturePrefix, ContextResult, FaultStatus, HeaderBytes,
  Ndr20Syntax, NullSyntax, PType, Pfc, ProviderReason, SecTrailerBytes, decodeHeader, decodePdu, encodePdu,
  type BindPdu, type Pdu, type PresentationResult, type RequestPdu, type SyntaxId,
} from './pdu.js'
import { AuthFailure, type SecurityContext, type SecurityProviderFactory } from './security.js'

/** An interface the server offers, with its dispatcher. */
export interface RpcInterface {
  name: string
  syntax: SyntaxId
  /** Calls on bindings below this auth level fault with access denied, unless the server allows anonymous. */
  minAuthLevel?: number
  /** Decode the stub, run operation `opnum`, return the encoded out stub. Throw RpcFault for a fault PDU. */
  dispatch(opnum: number, stub: Uint8Array, call: RpcCall): Promise<Uint8Array>
}

export interface RpcCall {
  callId: number
  opnum: number
  group: AssociationGroup
  /** Aborted when the client cancels or orphans the call, or the connection closes. */
  signal: AbortSignal
  remoteAddress: string
  localAddress: string
  authLevel: number
  principal: string | null
}

/** Thrown by dispatchers: answered with a fault PDU carrying `status`. */
export class RpcFault extends Error {
  override readonly name = 'RpcFault'
  constructor(readonly status: number, message = `fault 0x${status.toString(16)}`) {
    super(message)
  }
}

export interface RpcServerOptions {
  interfaces: RpcInterface[]
  security?: SecurityProviderFactory
  /** Let calls below an interface's minAuthLevel through (the operator's explicit choice). */
  allowAnonymous?: boolean
  /** Largest fragment we send or accept (Samba: 5840). */
  maxFragment?: number
  /** Largest reassembled request stub. */
  maxStubBytes?: number
  maxCallsPerConnection?: number
  maxConnections?: number
  log?: (level: 'error' | 'warning' | 'info' | 'debug', message: string) => void
}

/** The smallest fragment a peer must accept (C706 12.6.3.1 MustRecvFragSize). */
const MinFragment = 1432
const ResponseHeaderBytes = 24

const sameUuid = (a: SyntaxId, b: SyntaxId) => a.uuid.toLowerCase() === b.uuid.toLowerCase()

export class RpcServer {
  private readonly servers: Server[] = []
  private readonly connections = new Set<Connection>()
  readonly groups = new AssociationGroups()
  readonly opts: Required<Omit<RpcServerOptions, 'security'>> & Pick<RpcServerOptions, 'security'>

  constructor(options: RpcServerOptions) {
    this.opts = {
      allowAnonymous: false,
      maxFragment: 5840,
      maxStubBytes: 256 * 1024,
      maxCallsPerConnection: 256,
      maxConnections: 4096,
      log: () => {},
      ...options,
    }
  }

  /** Listen on host:port (0 = any free port); resolves to the bound port. */
  listen(host: string, port: number): Promise<number> {
    const srv = createServer(s => this.accept(s))
    srv.maxConnections = this.opts.maxConnections
    this.servers.push(srv)
    return new Promise((resolve, reject) => {
      srv.once('error', reject)
      srv.listen(port, host, () => {
        srv.off('error', reject)
        resolve((srv.address() as { port: number }).port)
      })
    })
  }

  get connectionCount(): number {
    return this.connections.size
  }

  private accept(socket: Socket): void {
    if (this.connections.size >= this.opts.maxConnections) {
      socket.destroy()
      return
    }
    const c = new Connection(this, socket)
    this.connections.add(c)
    socket.on('close', () => {
      this.connections.delete(c)
      c.closed()
    })
  }

  async close(): Promise<void> {
    for (const c of this.connections) c.socket.destroy()
    await Promise.all(this.servers.map(s => new Promise<void>(r => s.close(() => r()))))
    this.servers.length = 0
  }
}

interface Auth {
  ctx: SecurityContext
  authType: number
  level: number
  contextId: number
  failed: boolean
}

interface PartialCall {
  first: RequestPdu
  chunks: Uint8Array[]
  bytes: number
}

class Connection {
  private readonly framer: PduFramer
  private bound = false
  private maxXmit = MinFragment
  private group: AssociationGroup | null = null
  private readonly contexts = new Map<number, RpcInterface>()
  private auth: Auth | null = null
  private readonly partial = new Map<number, PartialCall>()
  private readonly calls = new Map<number, { abort: AbortController; orphaned: boolean }>()
  private isClosed = false

  constructor(private readonly server: RpcServer, readonly socket: Socket) {
    this.framer = new PduFramer(server.opts.maxFragment)
    socket.setNoDelay(true)
    socket.on('data', d => this.onData(d))
    socket.on('error', () => {})
  }

  private get log() {
    return this.server.opts.log
  }

  private onData(data: Buffer): void {
    let pdus: Buffer[]
    try {
      pdus = this.framer.push(data)
    } catch (e) {
      this.abortConnection(e)
      return
    }
    for (const raw of pdus) {
      if (this.isClosed) return
      try {
        this.onPdu(raw)
      } catch (e) {
        this.abortConnection(e)
        return
      }
    }
  }

  private abortConnection(e: unknown): void {
    this.log('warning', `DCE/RPC ${this.socket.remoteAddress}: closing connection: ${(e as Error).message}`)
    this.socket.destroy()
  }

  closed(): void {
    this.isClosed = true
    for (const c of this.calls.values()) c.abort.abort()
    this.calls.clear()
    this.partial.clear()
    if (this.group) this.server.groups.release(this.group)
    this.group = null
  }

  private send(p: Pdu): void {
    if (!this.isClosed) this.socket.write(encodePdu(p))
  }

  private onPdu(raw: Buffer): void {
    const h = decodeHeader(raw)
    if (h.ptype === PType.request) return this.onRequest(raw)
    const pdu = decodePdu(raw)
    switch (pdu.ptype) {
      case PType.bind:
        return this.onBind(pdu)
      case PType.alterContext:
        return this.onAlterContext(pdu)
      case PType.auth3:
        return this.onAuth3(pdu.auth?.value)
      case PType.coCancel:
      case PType.orphaned: {
        const c = this.calls.get(pdu.callId)
        if (c) {
          c.orphaned ||= pdu.ptype === PType.orphaned
          c.abort.abort()
        }
        this.partial.delete(pdu.callId)
        return
      }
      case PType.shutdown:
        return
      default:
        throw new ProtocolError('DCE/RPC', `unexpected PDU type ${pdu.ptype} from a client`)
    }
  }

  private bindNak(callId: number, reason: number): void {
    this.send({ ptype: PType.bindNak, flags: Pfc.first | Pfc.last, callId, rejectReason: reason, versions: [[5, 0]] })
  }

  private onBind(b: BindPdu): void {
    if (this.bound) {
      this.bindNak(b.callId, BindNakReason.notSpecified)
      throw new ProtocolError('DCE/RPC', 'second bind on a bound connection')
    }
    if (b.maxXmitFrag < MinFragment || b.maxRecvFrag < MinFragment) {
      return this.bindNak(b.callId, BindNakReason.localLimitExceeded)
    }
    let group: AssociationGroup | undefined
    if (b.assocGroupId === 0) group = this.server.groups.create()
    else group = this.server.groups.get(b.assocGroupId)
    if (!group) return this.bindNak(b.callId, BindNakReason.notSpecified)
    let authToken: Uint8Array | null = null
    if (b.auth) {
      const r = this.startAuth(b)
      if (r === false) return this.bindNak(b.callId, BindNakReason.authenticationTypeNotRecognized)
      authToken = r
    }
    group.connections++
    this.group = group
    this.bound = true
    const maxFragment = this.server.opts.maxFragment
    this.maxXmit = Math.min(b.maxRecvFrag, maxFragment)
    const maxRecv = Math.min(b.maxXmitFrag, maxFragment)
    this.framer.maxFragment = maxFragment
    let flags = Pfc.first | Pfc.last
    if (b.flags & Pfc.concMpx) flags |= Pfc.concMpx
    if (b.flags & Pfc.pendingCancelOrHeaderSign && this.auth) flags |= Pfc.pendingCancelOrHeaderSign
    this.send({
      ptype: PType.bindAck, flags, callId: b.callId,
      maxXmitFrag: this.maxXmit, maxRecvFrag: maxRecv, assocGroupId: group.id,
      secondaryAddress: String(this.socket.localPort ?? 0),
      results: this.negotiateContexts(b),
      ...(this.auth ? { auth: this.verifier(authToken ?? new Uint8Array()) } : {}),
    })
  }

  private onAlterContext(b: BindPdu): void {
    if (!this.bound) throw new ProtocolError('DCE/RPC', 'alter_context before bind')
    let authToken: Uint8Array | null = null
    if (b.auth) {
      if (!this.auth) {
        const r = this.startAuth(b)
        if (r === false) throw new ProtocolError('DCE/RPC', `unsupported auth type ${b.auth.authType} in alter_context`)
        authToken = r
      } else if (!this.auth.ctx.complete) {
        authToken = this.continueAuth(b.auth.value)
      }
      if (this.auth?.failed) return this.fault(b.callId, 0, FaultStatus.accessDenied)
    }
    this.send({
      ptype: PType.alterContextResp, flags: Pfc.first | Pfc.last | (b.flags & Pfc.concMpx), callId: b.callId,
      maxXmitFrag: this.maxXmit, maxRecvFrag: this.maxXmit, assocGroupId: this.group!.id, secondaryAddress: '',
      results: this.negotiateContexts(b),
      ...(this.auth && authToken ? { auth: this.verifier(authToken) } : {}),
    })
  }

  /** Start a security context from a bind/alter_context verifier: the reply token, or false if unsupported. */
  private startAuth(b: BindPdu): Uint8Array | null | false {
    const a = b.auth!
    if (a.authLevel !== AuthLevel.connect && a.authLevel !== AuthLevel.integrity && a.authLevel !== AuthLevel.privacy) {
      return false
    }
    const ctx = this.server.opts.security?.(a.authType) ?? null
    if (!ctx) return false
    this.auth = { ctx, authType: a.authType, level: a.authLevel, contextId: a.contextId, failed: false }
    return this.continueAuth(a.value)
  }

  private continueAuth(token: Uint8Array): Uint8Array | null {
    const auth = this.auth!
    try {
      const r = auth.ctx.accept(token)
      if (r.complete) this.log('info', `DCE/RPC ${this.socket.remoteAddress}: authenticated ${auth.ctx.principal ?? '(anonymous)'}`)
      return r.token
    } catch (e) {
      if (!(e instanceof AuthFailure) && !(e instanceof ProtocolError)) throw e
      auth.failed = true
      this.log('warning', `DCE/RPC ${this.socket.remoteAddress}: authentication failed: ${e.message}`)
      return null
    }
  }

  private onAuth3(token: Uint8Array | undefined): void {
    if (!this.auth || this.auth.ctx.complete || !token) throw new ProtocolError('DCE/RPC', 'unexpected auth3')
    this.continueAuth(token)
  }

  private verifier(value: Uint8Array) {
    const a = this.auth!
    return { authType: a.authType, authLevel: a.level, padLength: 0, reserved: 0, contextId: a.contextId, value }
  }

  private negotiateContexts(b: BindPdu): PresentationResult[] {
    return b.contexts.map(c => {
      const btfn = c.transferSyntaxes.find(s => s.uuid.toLowerCase().startsWith(BindTimeFeaturePrefix))
      if (btfn) {
        // The requested feature bits are the first two bytes of the UUID's fourth group.
        const requested = parseInt(btfn.uuid.slice(19, 21), 16) | (parseInt(btfn.uuid.slice(21, 23), 16) << 8)
        return { result: ContextResult.negotiateAck, reason: requested & BindTimeFeature.keepConnectionOnOrphan, transferSyntax: NullSyntax }
      }
      const iface = this.server.opts.interfaces.find(i => sameUuid(i.syntax, c.abstractSyntax) && i.syntax.major === c.abstractSyntax.major)
      if (!iface) {
        return { result: ContextResult.providerRejection, reason: ProviderReason.abstractSyntaxNotSupported, transferSyntax: NullSyntax }
      }
      const ndr = c.transferSyntaxes.find(s => sameUuid(s, Ndr20Syntax) && s.major === Ndr20Syntax.major)
      if (!ndr) {
        return {
          result: ContextResult.providerRejection, reason: ProviderReason.proposedTransferSyntaxesNotSupported,
          transferSyntax: NullSyntax,
        }
      }
      this.contexts.set(c.contextId, iface)
      return { result: ContextResult.acceptance, reason: 0, transferSyntax: Ndr20Syntax }
    })
  }

  private fault(callId: number, contextId: number, status: number): void {
    this.send({
      ptype: PType.fault, flags: Pfc.first | Pfc.last | Pfc.didNotExecute, callId, allocHint: 32, contextId,
      cancelCount: 0, status,
    })
  }

  private onRequest(raw: Buffer): void {
    if (!this.bound) throw new ProtocolError('DCE/RPC', 'request before bind')
    const h = decodeHeader(raw)
    const auth = this.auth
    const protectedLevel = auth && auth.level >= AuthLevel.integrity
    if (protectedLevel) {
      if (!auth.ctx.complete || auth.failed || h.authLength !== auth.ctx.signatureBytes) {
        this.log('warning', `DCE/RPC ${this.socket.remoteAddress}: call ${h.callId} refused: ${auth.failed ? 'authentication failed' : !auth.ctx.complete ? 'authentication incomplete' : `auth_length ${h.authLength}`}`)
        return this.fault(h.callId, 0, FaultStatus.accessDenied)
      }
      const trailerStart = raw.length - h.authLength - SecTrailerBytes
      const bodyStart = HeaderBytes + 8 + (h.flags & Pfc.objectUuid ? 16 : 0)
      const t = decodePdu(raw).auth!
      if (t.authType !== auth.authType || t.authLevel !== auth.level || t.contextId !== auth.contextId || trailerStart < bodyStart) {
        throw new ProtocolError('DCE/RPC', 'request verifier does not match the security context')
      }
      if (!auth.ctx.unwrap(raw, bodyStart, trailerStart, auth.level)) {
        this.fault(h.callId, 0, FaultStatus.accessDenied)
        throw new ProtocolError('DCE/RPC', `bad signature on call ${h.callId}`)
      }
    }
    const req = decodePdu(raw) as RequestPdu
    let stub = req.stub
    if (!(req.flags & Pfc.first) || !(req.flags & Pfc.last)) {
      const assembled = this.reassemble(req)
      if (!assembled) return
      stub = assembled.stub
      req.contextId = assembled.first.contextId
      req.opnum = assembled.first.opnum
    }
    this.dispatch(req, stub)
  }

  /** Collect request fragments; returns the whole stub on the last fragment. */
  private reassemble(req: RequestPdu): { first: RequestPdu; stub: Uint8Array } | null {
    const opts = this.server.opts
    let p = this.partial.get(req.callId)
    if (req.flags & Pfc.first) {
      if (p) throw new ProtocolError('DCE/RPC', `call ${req.callId}: a second first fragment`)
      if (this.partial.size >= opts.maxCallsPerConnection) throw new ProtocolError('DCE/RPC', 'too many partial calls')
      p = { first: req, chunks: [], bytes: 0 }
      this.partial.set(req.callId, p)
    } else if (!p) {
      throw new ProtocolError('DCE/RPC', `call ${req.callId}: a middle fragment with no first fragment`)
    }
    p.bytes += req.stub.length
    if (p.bytes > opts.maxStubBytes) {
      this.partial.delete(req.callId)
      throw new ProtocolError('DCE/RPC', `call ${req.callId}: request stub exceeds ${opts.maxStubBytes} bytes`)
    }
    p.chunks.push(req.stub)
    if (!(req.flags & Pfc.last)) return null
    this.partial.delete(req.callId)
    return { first: p.first, stub: Buffer.concat(p.chunks) }
  }

  private dispatch(req: RequestPdu, stub: Uint8Array): void {
    const iface = this.contexts.get(req.contextId)
    if (!iface) return this.fault(req.callId, req.contextId, FaultStatus.unknownInterface)
    const level = this.auth && !this.auth.failed && this.auth.ctx.complete ? this.auth.level : AuthLevel.none
    if ((iface.minAuthLevel ?? 0) > level && !this.server.opts.allowAnonymous) {
      return this.fault(req.callId, req.contextId, FaultStatus.accessDenied)
    }
    if (this.calls.has(req.callId)) throw new ProtocolError('DCE/RPC', `call id ${req.callId} already in progress`)
    if (this.calls.size >= this.server.opts.maxCallsPerConnection) {
      return this.fault(req.callId, req.contextId, FaultStatus.serverTooBusy)
    }
    const state = { abort: new AbortController(), orphaned: false }
    this.calls.set(req.callId, state)
    const call: RpcCall = {
      callId: req.callId, opnum: req.opnum, group: this.group!, signal: state.abort.signal,
      remoteAddress: this.socket.remoteAddress ?? '', localAddress: this.socket.localAddress ?? '',
      authLevel: level, principal: this.auth?.ctx.principal ?? null,
    }
    iface.dispatch(req.opnum, stub, call).then(
      out => {
        this.calls.delete(req.callId)
        if (!state.orphaned) this.respond(req.callId, req.contextId, out)
      },
      (e: unknown) => {
        this.calls.delete(req.callId)
        if (state.orphaned) return
        if (e instanceof RpcFault) return this.fault(req.callId, req.contextId, e.status)
        if (e instanceof ProtocolError || e instanceof RangeError) {
          this.log('warning', `DCE/RPC ${iface.name} opnum ${req.opnum}: ${(e as Error).message}`)
          return this.fault(req.callId, req.contextId, FaultStatus.ndrError)
        }
        this.log('error', `DCE/RPC ${iface.name} opnum ${req.opnum}: ${(e as Error).stack ?? e}`)
        this.fault(req.callId, req.contextId, FaultStatus.unspecifiedReject)
      },
    )
  }

  /** Send a response stub as fragments no larger than the negotiated size, each protected if the binding is. */
  private respond(callId: number, contextId: number, stub: Uint8Array): void {
    if (this.isClosed) return
    const auth = this.auth && this.auth.level >= AuthLevel.integrity && this.auth.ctx.complete ? this.auth : null
    const sig = auth ? auth.ctx.signatureBytes : 0
    let room = this.maxXmit - ResponseHeaderBytes - (auth ? SecTrailerBytes + sig : 0)
    if (auth) room -= room % 16
    let off = 0
    do {
      const chunk = stub.subarray(off, off + room)
      const flags = (off === 0 ? Pfc.first : 0) | (off + chunk.length >= stub.length ? Pfc.last : 0)
      const padLength = auth ? (16 - (chunk.length % 16)) % 16 : 0
      const pdu = encodePdu({
        ptype: PType.response, flags, callId, allocHint: stub.length - off, contextId, cancelCount: 0, stub: chunk,
        ...(auth ? { auth: { ...this.verifier(new Uint8Array(sig)), padLength } } : {}),
      })
      if (auth) auth.ctx.wrap(pdu, ResponseHeaderBytes, pdu.length - sig - SecTrailerBytes, auth.level)
      this.socket.write(pdu)
      off += chunk.length
    } while (off < stub.length)
  }
}
