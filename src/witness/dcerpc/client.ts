/**
 * DCE/RPC connection-oriented client over TCP, for HvCbt's own witness client, the endpoint mapper lookup and
 * tests: bind (optionally with NTLMSSP: bind -> bind_ack -> auth3), concurrent calls on one connection
 * (CONC_MPX) matched by call_id, request fragmentation to the negotiated size, response reassembly with limits.
 */
import { EventEmitter } from 'node:events'
import { connect, type Socket } from 'node:net'
import { ProtocolError } from '../../engine/errors.js'
import { NtlmClient, type NtlmClientOptions } from './auth/ntlmssp.js'
import type { NtlmSession } from './auth/ntlm-session.js'
import { EptMap, EptStatus, EpmSyntax, decodeTower, encodeTower } from './epm.js'
import { PduFramer } from './framing.js'
import {
  AuthLevel, AuthType, ContextResult, HeaderBytes, Ndr20Syntax, PType, Pfc, SecTrailerBytes, decodeHeader,
  decodePdu, encodePdu, type AuthVerifier, type BindAckPdu, type SyntaxId,
} from './pdu.js'

/** A fault PDU answered a call. */
export class RpcFaultError extends Error {
  override readonly name = 'RpcFaultError'
  constructor(readonly status: number) {
    super(`DCE/RPC fault 0x${status.toString(16).padStart(8, '0')}`)
  }
}

export interface RpcClientOptions {
  host: string
  port: number
  syntax: SyntaxId
  /** NTLMSSP credentials and level (5 integrity, 6 privacy); none = unauthenticated bind. */
  auth?: NtlmClientOptions & { level: number }
  maxFragment?: number
  maxResponseBytes?: number
  connectTimeoutMs?: number
  /** Join an existing association group (0 = new). */
  assocGroupId?: number
}

interface Pending {
  resolve(stub: Buffer): void
  reject(e: Error): void
  chunks: Uint8Array[]
  bytes: number
}

export class RpcClient extends EventEmitter {
  private readonly framer: PduFramer
  private nextCallId = 1
  private readonly pending = new Map<number, Pending>()
  private waiter: ((pdu: Buffer) => void) | null = null
  private session: NtlmSession | null = null
  private maxXmit = 1432
  assocGroupId = 0
  private closedError: Error | null = null

  private constructor(private readonly socket: Socket, private readonly opts: RpcClientOptions) {
    super()
    this.framer = new PduFramer(opts.maxFragment ?? 5840)
    socket.setNoDelay(true)
    socket.on('data', d => this.onData(d))
    socket.on('error', e => this.fail(e))
    socket.on('close', () => this.fail(new Error(`connection to ${opts.host}:${opts.port} closed`)))
  }

  static async connect(opts: RpcClientOptions): Promise<RpcClient> {
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = connect({ host: opts.host, port: opts.port })
      const timer = setTimeout(() => {
        s.destroy()
        reject(new Error(`connect to ${opts.host}:${opts.port} timed out`))
      }, opts.connectTimeoutMs ?? 5000)
      s.once('connect', () => {
        clearTimeout(timer)
        resolve(s)
      })
      s.once('error', e => {
        clearTimeout(timer)
        reject(e)
      })
    })
    const c = new RpcClient(socket, opts)
    try {
      await c.bind()
    } catch (e) {
      c.close()
      throw e
    }
    return c
  }

  private fail(e: Error): void {
    if (this.closedError) return
    this.closedError = e
    for (const p of this.pending.values()) p.reject(e)
    this.pending.clear()
    this.waiter = null
    this.emit('close', e)
  }

  get closed(): boolean {
    return this.closedError !== null
  }

  close(): void {
    this.socket.destroy()
    this.fail(new Error('connection closed by the client'))
  }

  private onData(d: Buffer): void {
    let pdus: Buffer[]
    try {
      pdus = this.framer.push(d)
    } catch (e) {
      this.fail(e as Error)
      this.socket.destroy()
      return
    }
    for (const raw of pdus) {
      try {
        this.onPdu(raw)
      } catch (e) {
        this.fail(e as Error)
        this.socket.destroy()
        return
      }
    }
  }

  private nextPdu(): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      if (this.closedError) return reject(this.closedError)
      const t = setTimeout(() => reject(new Error('no answer to bind')), 10000)
      this.waiter = pdu => {
        clearTimeout(t)
        resolve(pdu)
      }
    })
  }

  private verifier(value: Uint8Array, padLength = 0): AuthVerifier {
    return { authType: AuthType.ntlmssp, authLevel: this.opts.auth!.level, padLength, reserved: 0, contextId: 0, value }
  }

  private async bind(): Promise<void> {
    const auth = this.opts.auth
    const ntlm = auth ? new NtlmClient(auth) : null
    const frag = this.opts.maxFragment ?? 5840
    this.socket.write(encodePdu({
      ptype: PType.bind, flags: Pfc.first | Pfc.last | Pfc.concMpx | (auth ? Pfc.pendingCancelOrHeaderSign : 0),
      callId: this.nextCallId++, maxXmitFrag: frag, maxRecvFrag: frag, assocGroupId: this.opts.assocGroupId ?? 0,
      contexts: [{ contextId: 0, abstractSyntax: this.opts.syntax, transferSyntaxes: [Ndr20Syntax] }],
      ...(ntlm ? { auth: this.verifier(ntlm.negotiate()) } : {}),
    }))
    const ack = decodePdu(await this.nextPdu())
    if (ack.ptype === PType.bindNak) throw new ProtocolError('DCE/RPC', `bind refused (reason ${ack.rejectReason})`)
    if (ack.ptype !== PType.bindAck) throw new ProtocolError('DCE/RPC', `expected bind_ack, got PDU type ${ack.ptype}`)
    const a = ack as BindAckPdu
    if (a.results[0]?.result !== ContextResult.acceptance) {
      throw new ProtocolError('DCE/RPC', `presentation context rejected (reason ${a.results[0]?.reason})`)
    }
    this.maxXmit = a.maxXmitFrag > 0 ? Math.min(a.maxRecvFrag, frag) : 1432
    this.assocGroupId = a.assocGroupId
    if (ntlm) {
      if (!a.auth) throw new ProtocolError('DCE/RPC', 'bind_ack without an NTLMSSP challenge')
      const msg = ntlm.authenticate(a.auth.value)
      this.socket.write(encodePdu({
        ptype: PType.auth3, flags: Pfc.first | Pfc.last, callId: this.nextCallId++, body: new Uint8Array(4),
        auth: this.verifier(msg),
      }))
      this.session = ntlm.session
    }
  }

  private onPdu(raw: Buffer): void {
    if (this.waiter) {
      const w = this.waiter
      this.waiter = null
      return w(raw)
    }
    const h = decodeHeader(raw)
    const p = this.pending.get(h.callId)
    if (!p) return
    if (this.session && (h.ptype === PType.response) && this.opts.auth!.level >= AuthLevel.integrity) {
      const trailer = raw.length - h.authLength - SecTrailerBytes
      if (h.authLength !== 16) throw new ProtocolError('DCE/RPC', 'unsigned response on a protected binding')
      if (this.opts.auth!.level >= AuthLevel.privacy) this.session.unsealIn(raw.subarray(HeaderBytes + 8, trailer))
      if (!this.session.verify(raw.subarray(0, raw.length - 16), raw.subarray(raw.length - 16))) {
        throw new ProtocolError('DCE/RPC', `bad signature on the response to call ${h.callId}`)
      }
    }
    const pdu = decodePdu(raw)
    if (pdu.ptype === PType.fault) {
      this.pending.delete(h.callId)
      return p.reject(new RpcFaultError(pdu.status))
    }
    if (pdu.ptype !== PType.response) throw new ProtocolError('DCE/RPC', `unexpected PDU type ${pdu.ptype}`)
    p.bytes += pdu.stub.length
    if (p.bytes > (this.opts.maxResponseBytes ?? 4 << 20)) throw new ProtocolError('DCE/RPC', 'response too large')
    p.chunks.push(pdu.stub)
    if (pdu.flags & Pfc.last) {
      this.pending.delete(h.callId)
      p.resolve(Buffer.concat(p.chunks))
    }
  }

  /** Call `opnum` with an encoded in stub; resolves with the out stub. `signal` sends orphaned and rejects. */
  call(opnum: number, stub: Uint8Array, signal?: AbortSignal): Promise<Buffer> {
    if (this.closedError) return Promise.reject(this.closedError)
    const callId = this.nextCallId++
    const level = this.session ? this.opts.auth!.level : AuthLevel.none
    const sig = this.session ? 16 : 0
    let room = this.maxXmit - 24 - (sig ? SecTrailerBytes + sig : 0)
    if (sig) room -= room % 16
    return new Promise<Buffer>((resolve, reject) => {
      const onAbort = (): void => {
        if (!this.pending.delete(callId)) return
        if (!this.closedError) this.socket.write(encodePdu({ ptype: PType.orphaned, flags: Pfc.first | Pfc.last, callId }))
        reject(signal!.reason instanceof Error ? signal!.reason : new Error('call aborted'))
      }
      // the listener goes when the call ends either way: a long-lived signal shared by many calls must not collect one per call
      const settled = (): void => signal?.removeEventListener('abort', onAbort)
      this.pending.set(callId, {
        resolve: (b: Buffer) => (settled(), resolve(b)),
        reject: (e: Error) => (settled(), reject(e)),
        chunks: [],
        bytes: 0,
      })
      let off = 0
      do {
        const chunk = stub.subarray(off, off + room)
        const flags = (off === 0 ? Pfc.first : 0) | (off + chunk.length >= stub.length ? Pfc.last : 0)
        const padLength = sig ? (16 - (chunk.length % 16)) % 16 : 0
        const pdu = encodePdu({
          ptype: PType.request, flags, callId, allocHint: stub.length - off, contextId: 0, opnum, stub: chunk,
          ...(sig ? { auth: this.verifier(new Uint8Array(16), padLength) } : {}),
        })
        if (this.session) {
          const plain = Buffer.from(pdu.subarray(0, pdu.length - 16))
          if (level >= AuthLevel.privacy) this.session.sealOut(pdu.subarray(24, pdu.length - 16 - SecTrailerBytes))
          this.session.sign(plain).copy(pdu, pdu.length - 16)
        }
        this.socket.write(pdu)
        off += chunk.length
      } while (off < stub.length)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }
}

/** Ask the endpoint mapper at host:epmPort for the TCP port of `syntax`. */
export async function epmMap(host: string, syntax: SyntaxId, epmPort = 135): Promise<number> {
  const c = await RpcClient.connect({ host, port: epmPort, syntax: EpmSyntax })
  try {
    const tower = encodeTower({ interface: syntax, transfer: Ndr20Syntax, port: 0, address: '0.0.0.0' })
    const out = EptMap.decodeOut(await c.call(EptMap.opnum, EptMap.encodeIn({
      object: null, mapTower: { towerLength: tower.length, towerOctets: tower }, entryHandle: new Uint8Array(20), maxTowers: 4,
    })))
    const first = out.towers.items.find(x => x !== null)
    if (out.status !== EptStatus.ok || !first) throw new Error(`${syntax.uuid} is not registered with the endpoint mapper on ${host}`)
    return decodeTower(first.towerOctets).port
  } finally {
    c.close()
  }
}
