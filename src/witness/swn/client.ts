/**
 * HvCbt's witness client (MS-SWN 3.2): find a witness node other than the file-server node in use, register,
 * and keep an AsyncNotify outstanding; surface notifications as events and re-register after moves and failures.
 *
 *   GetInterfaceList (asked of any reachable address: the file server first, then known interfaces)
 *     -> pick an AVAILABLE interface with INTERFACE_WITNESS on a node other than the file server's
 *     -> RegisterEx (V2); on ERROR_REVISION_MISMATCH or an opnum range fault, Register (V1)
 *     -> AsyncNotify loop: RESOURCE_CHANGE / CLIENT_MOVE / SHARE_MOVE / IP_CHANGE -> events;
 *        CLIENT_MOVE and SHARE_MOVE switch the file-server address to the new node and re-register;
 *        ERROR_TIMEOUT (keep-alive) -> ask again; ERROR_NOT_FOUND or a broken connection -> start over,
 *        avoiding the witness node that failed, after `retryDelayMs`.
 */
import { EventEmitter } from 'node:events'
import { FaultStatus } from '../dcerpc/pdu.js'
import { RpcClient, RpcFaultError, epmMap } from '../dcerpc/client.js'
import type { NtlmClientOptions } from '../dcerpc/auth/ntlmssp.js'
import { ntHash } from '../dcerpc/auth/md4.js'
import * as swn from './swn-idl.js'
import { ChangeType, decodeNotification, type Notification } from './swn-messages.js'

const S = swn.WitnessStatus

export interface WitnessClientOptions {
  /** The scale-out file server's network name (Register NetName). */
  netName: string
  shareName?: string
  /** Address of the file-server node in use (Register IpAddress). */
  fileServerAddress: string
  /** This computer's name (Register ClientComputerName). */
  clientName: string
  /** More addresses to ask for the interface list when the file-server node does not answer. */
  witnessServers?: string[]
  /** Witness port on every node; undefined = ask the endpoint mapper. */
  port?: number
  epmPort?: number
  auth?: { user: string; domain?: string; password?: string; ntHash?: Uint8Array; level: 5 | 6 }
  /** V2 keep-alive in seconds (0 = none). */
  keepAliveSeconds?: number
  /** Ask for IP_CHANGE notifications (V2 flag). */
  ipNotification?: boolean
  retryDelayMs?: number
}

export type WitnessClientState = 'starting' | 'registered' | 'reconnecting' | 'stopped'

export interface WitnessClientStatus {
  state: WitnessClientState
  netName: string
  clientName: string
  fileServerAddress: string
  fileServerNode: string | null
  /** The file-server node's state: from the interface list at registration, then from RESOURCE_CHANGE. */
  fileServerState: 'available' | 'unavailable' | 'unknown'
  witnessNode: string | null
  witnessAddress: string | null
  version: number | null
  registeredAt: string | null
  lastNotification: { at: string; type: string; detail: string } | null
  notifications: number
  reconnects: number
  lastError: string | null
}

const typeName: Record<number, string> = { 1: 'resource-change', 2: 'client-move', 3: 'share-move', 4: 'ip-change' }

export class WitnessClient extends EventEmitter {
  private stopped = false
  private rpc: RpcClient | null = null
  private abort = new AbortController()
  private readonly st: WitnessClientStatus
  private avoid = new Set<string>()
  private loop: Promise<void> | null = null

  constructor(readonly opts: WitnessClientOptions) {
    super()
    this.st = {
      state: 'starting', netName: opts.netName, clientName: opts.clientName, fileServerAddress: opts.fileServerAddress,
      fileServerNode: null, fileServerState: 'unknown', witnessNode: null, witnessAddress: null, version: null, registeredAt: null,
      lastNotification: null, notifications: 0, reconnects: 0, lastError: null,
    }
  }

  status(): WitnessClientStatus {
    return { ...this.st, lastNotification: this.st.lastNotification ? { ...this.st.lastNotification } : null }
  }

  start(): void {
    this.loop ??= this.run()
  }

  async stop(): Promise<void> {
    this.stopped = true
    this.abort.abort()
    this.rpc?.close()
    await this.loop
    this.setState('stopped')
  }

  private setState(s: WitnessClientState): void {
    if (this.st.state === s) return
    this.st.state = s
    this.emit('state', s)
  }

  private authFor(): (NtlmClientOptions & { level: number }) | undefined {
    const a = this.opts.auth
    if (!a) return undefined
    const hash = a.ntHash ?? (a.password !== undefined ? ntHash(a.password) : undefined)
    if (!hash) throw new RangeError('witness client auth needs a password or an NT hash')
    return { user: a.user, domain: a.domain ?? '', ntHash: hash, level: a.level }
  }

  private async connect(address: string): Promise<RpcClient> {
    const port = this.opts.port ?? (await epmMap(address, swn.WitnessSyntax, this.opts.epmPort ?? 135))
    const auth = this.authFor()
    return RpcClient.connect({ host: address, port, syntax: swn.WitnessSyntax, ...(auth ? { auth } : {}) })
  }

  private async interfaceList(): Promise<swn.WitnessInterfaceInfo[]> {
    const known = this.lastList.map(i => i.ipv4).filter(a => a !== '0.0.0.0')
    let lastError: unknown = null
    for (const address of [...new Set([this.st.fileServerAddress, ...(this.opts.witnessServers ?? []), ...known])]) {
      try {
        const c = await this.connect(address)
        try {
          const out = swn.GetInterfaceList.decodeOut(await this.callStoppable(c, swn.GetInterfaceList.opnum, swn.GetInterfaceList.encodeIn({})))
          if (out.status !== S.success) throw new Error(`GetInterfaceList: status 0x${out.status.toString(16)}`)
          return out.interfaceList?.interfaces ?? []
        } finally {
          c.close()
        }
      } catch (e) {
        lastError = e
      }
    }
    throw lastError ?? new Error('no address to ask for the interface list')
  }

  private lastList: swn.WitnessInterfaceInfo[] = []

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        await this.registerAndListen()
      } catch (e) {
        if (this.stopped) break
        this.st.lastError = (e as Error).message
        this.emit('error', e)
      }
      if (this.stopped) break
      this.rpc?.close()
      this.rpc = null
      this.st.reconnects++
      this.setState('reconnecting')
      await new Promise(r => setTimeout(r, this.opts.retryDelayMs ?? 1000))
    }
  }

  private async registerAndListen(): Promise<void> {
    const list = await this.interfaceList()
    this.lastList = list
    const fsEntry = list.find(i => i.ipv4 === this.st.fileServerAddress || i.ipv6 === this.st.fileServerAddress)
    const fsNode = fsEntry?.interfaceGroupName ?? null
    this.st.fileServerNode = fsNode
    this.st.fileServerState = stateName(fsEntry?.state ?? swn.InterfaceState.unknown)
    // Interfaces flagged INTERFACE_WITNESS first; when the list came from a node other than the file server, that
    // node's own interfaces are not flagged but are still a witness for this file server.
    const others = list.filter(i =>
      i.state === swn.InterfaceState.available && i.interfaceGroupName.toUpperCase() !== (fsNode ?? '').toUpperCase())
    const flagged = others.filter(i => i.flags & swn.InterfaceFlag.interfaceWitness)
    const candidates = [...flagged, ...others.filter(i => !flagged.includes(i))]
    const ordered = [...candidates.filter(i => !this.avoid.has(i.interfaceGroupName)), ...candidates.filter(i => this.avoid.has(i.interfaceGroupName))]
    if (ordered.length === 0) throw new Error(`no witness interface available on a node other than ${fsNode ?? this.st.fileServerAddress}`)
    // Try the candidates in turn: a node that does not answer is skipped (and avoided next time).
    let chosen: { pick: swn.WitnessInterfaceInfo; address: string; rpc: RpcClient; handle: Uint8Array; version: number } | null = null
    let lastError: unknown = null
    for (const pick of ordered) {
      const address = pick.flags & swn.InterfaceFlag.ipv4 ? pick.ipv4 : pick.ipv6
      let rpc: RpcClient | null = null
      try {
        rpc = await this.connect(address)
        const r = await this.register(rpc, pick.version)
        chosen = { pick, address, rpc, ...r }
        break
      } catch (e) {
        rpc?.close()
        lastError = e
        this.avoid.add(pick.interfaceGroupName)
        if (this.stopped) throw e
      }
    }
    if (!chosen) throw lastError
    const { pick, address, rpc, handle, version } = chosen
    this.rpc = rpc
    this.avoid.delete(pick.interfaceGroupName)
    Object.assign(this.st, {
      witnessNode: pick.interfaceGroupName, witnessAddress: address, version, registeredAt: new Date().toISOString(), lastError: null,
    })
    this.setState('registered')
    this.emit('registered', this.status())
    try {
      await this.listen(rpc, handle)
    } catch (e) {
      if (rpc.closed) this.avoid.add(pick.interfaceGroupName)
      throw e
    }
  }

  private async register(rpc: RpcClient, interfaceVersion: number): Promise<{ handle: Uint8Array; version: number }> {
    const o = this.opts
    if (interfaceVersion !== swn.WitnessVersion.v1) {
      try {
        const out = swn.RegisterEx.decodeOut(await rpc.call(swn.RegisterEx.opnum, swn.RegisterEx.encodeIn({
          version: swn.WitnessVersion.v2, netName: o.netName, shareName: o.shareName ?? null, ipAddress: this.st.fileServerAddress,
          clientComputerName: o.clientName, flags: o.ipNotification ? swn.RegisterExFlag.ipNotification : 0,
          keepAliveTimeout: o.keepAliveSeconds ?? 0,
        })))
        if (out.status === S.success) return { handle: out.contextHandle, version: swn.WitnessVersion.v2 }
        if (out.status !== S.revisionMismatch) throw new Error(`RegisterEx: status 0x${out.status.toString(16)}`)
      } catch (e) {
        if (!(e instanceof RpcFaultError && e.status === FaultStatus.opRangeError)) throw e
      }
    }
    const out = swn.Register.decodeOut(await rpc.call(swn.Register.opnum, swn.Register.encodeIn({
      version: swn.WitnessVersion.v1, netName: o.netName, ipAddress: this.st.fileServerAddress, clientComputerName: o.clientName,
    })))
    if (out.status !== S.success) throw new Error(`Register: status 0x${out.status.toString(16)}`)
    return { handle: out.contextHandle, version: swn.WitnessVersion.v1 }
  }

  private async listen(rpc: RpcClient, handle: Uint8Array): Promise<void> {
    while (!this.stopped) {
      const out = swn.AsyncNotify.decodeOut(await this.callStoppable(rpc, swn.AsyncNotify.opnum, swn.AsyncNotify.encodeIn({ contextHandle: handle })))
      if (out.status === S.timeout) continue
      if (out.status !== S.success || !out.response) throw new Error(`AsyncNotify: status 0x${out.status.toString(16)}`)
      const r = out.response
      const n = decodeNotification(r.messageType, r.numberOfMessages, r.messageBuffer ?? new Uint8Array())
      this.st.notifications++
      if (n.type === swn.MessageType.resourceChange && n.changes[0]) {
        const c = n.changes[0].changeType
        this.st.fileServerState = c === ChangeType.available ? 'available' : c === ChangeType.unavailable ? 'unavailable' : 'unknown'
      }
      this.st.lastNotification = { at: new Date().toISOString(), type: typeName[n.type] ?? String(n.type), detail: describe(n) }
      this.emit('notification', n)
      this.emit(typeName[n.type]!, n)
      if (n.type === swn.MessageType.clientMove || n.type === swn.MessageType.shareMove) {
        const next = n.lists[0]?.find(a => a.ipv4 !== '0.0.0.0')?.ipv4 ?? n.lists[0]?.[0]?.ipv6
        if (next) this.st.fileServerAddress = next
        await this.unregister(rpc, handle)
        return
      }
    }
    await this.unregister(rpc, handle)
  }

  /**
   * A call that stop() cancels. Each call gets its own signal, unhooked from the client's when the call ends: the
   * RPC runtime leaves its abort listener on the signal it is given, and a long-lived client makes thousands of calls.
   */
  private async callStoppable(rpc: RpcClient, opnum: number, stub: Uint8Array): Promise<Buffer> {
    const ac = new AbortController()
    const onStop = () => ac.abort()
    this.abort.signal.addEventListener('abort', onStop, { once: true })
    try {
      return await rpc.call(opnum, stub, ac.signal)
    } finally {
      this.abort.signal.removeEventListener('abort', onStop)
    }
  }

  private async unregister(rpc: RpcClient, handle: Uint8Array): Promise<void> {
    try {
      await rpc.call(swn.UnRegister.opnum, swn.UnRegister.encodeIn({ contextHandle: handle }))
    } catch {
      // the registration goes with the connection anyway
    }
    rpc.close()
  }
}

function stateName(state: number): WitnessClientStatus['fileServerState'] {
  return state === swn.InterfaceState.available ? 'available' : state === swn.InterfaceState.unavailable ? 'unavailable' : 'unknown'
}

function describe(n: Notification): string {
  if (n.type === swn.MessageType.resourceChange) {
    return n.changes.map(c => `${c.resourceName} ${c.changeType === ChangeType.available ? 'available' : c.changeType === ChangeType.unavailable ? 'unavailable' : 'unknown'}`).join(', ')
  }
  return n.lists.map(l => l.map(a => (a.ipv4 !== '0.0.0.0' ? a.ipv4 : a.ipv6)).join(' ')).join('; ')
}
