/**
 * The witness service (MS-SWN 3.1): registrations, held AsyncNotify calls and the notifications that complete
 * them, plus the administrative operations behind `hvcbt witness clients / move-client / node-state`.
 *
 * Policy choices where MS-SWN leaves room (the reference's table of status codes is followed exactly):
 * - UnRegister of an unknown handle answers ERROR_INVALID_PARAMETER (Windows); AsyncNotify of an unknown handle
 *   ERROR_NOT_FOUND (Samba). A second AsyncNotify while one is held answers ERROR_INVALID_STATE.
 * - KeepAliveTimeout is in seconds (as Samba and Windows clients use it); 0 = the call waits indefinitely.
 * - A registration with no AsyncNotify outstanding for `idleExpiryMs` (30 s) is removed; after an UNAVAILABLE
 *   RESOURCE_CHANGE has been delivered it is removed after `unavailableUnregisterMs` (5 s), so the client re-runs
 *   GetInterfaceList and registers again with a surviving node.
 * - Registrations are context handles of their association group: when the client's last connection in the group
 *   closes, its registrations are run down.
 * - Opnum 5 is WitnessrUnRegisterEx as Windows Server 2025 has it ([in,out] handle set to NULL).
 * - Notifications come from the membership view, diffed per registration, so each registration hears of each
 *   change exactly once however the view is delivered (a repeated or reordered 'change' with the same state sends
 *   nothing): RESOURCE_CHANGE when the state of the node owning its file-server address changes; IP_CHANGE (V2,
 *   WITNESS_REGISTER_IP_NOTIFICATION) with the node's addresses OFFLINE/ONLINE on such a change, and with an
 *   address OFFLINE when it leaves the registration's node / ONLINE when it joins it (an address moving between
 *   nodes). A registration whose own address moves follows it to the new node.
 * - Timers use the monotonic clock (performance.now), so a wall-clock step neither expires nor prolongs anything.
 */
import { EventEmitter } from 'node:events'
import { isIP } from 'node:net'
import { performance } from 'node:perf_hooks'
import { handleGuid, isNullHandle, type AssociationGroup } from '../dcerpc/association.js'
import { AuthLevel, FaultStatus } from '../dcerpc/pdu.js'
import { RpcFault, type RpcCall, type RpcInterface } from '../dcerpc/server.js'
import type { MembershipSource, NodeInfo, NodeState } from '../membership/membership.js'
import * as swn from './swn-idl.js'
import { ChangeType, IpAddrFlag, encodeNotification, type IpAddrInfo, type Notification } from './swn-messages.js'

const S = swn.WitnessStatus

export interface WitnessServiceOptions {
  /** This node's name (its interfaces never carry INTERFACE_WITNESS). */
  nodeName: string
  /** Network names clients may register for (the scale-out file server's name), compared case-insensitively. */
  netNames: string[]
  membership: MembershipSource
  /** Shares RegisterEx accepts; undefined = any share name. */
  shares?: string[]
  idleExpiryMs?: number
  unavailableUnregisterMs?: number
  /** Calls below this level are refused with ERROR_ACCESS_DENIED by the RPC runtime (default: integrity). */
  minAuthLevel?: number
}

export interface RegistrationInfo {
  id: string
  clientName: string
  witnessNodeName: string
  fileServerNodeName: string
  networkName: string
  shareName: string | null
  ipAddress: string
  version: number
  flags: number
  keepAliveSeconds: number
  state: 'Waiting' | 'NotificationPending' | 'Idle'
  principal: string | null
  remoteAddress: string
  registeredAt: string
  notificationsSent: number
  notificationsCancelled: number
  queuedNotifications: number
  lastNotification: string | null
}

interface Held {
  resolve(n: Notification | null, status: number): void
}

interface Registration {
  info: RegistrationInfo
  handle: Uint8Array
  group: AssociationGroup
  queue: Notification[]
  held: Held | null
  /** Monotonic ms (performance.now). */
  idleSince: number
  removeAt: number | null
  /** State of the file-server node last notified to (or seen at registration by) this registration. */
  lastState: NodeState
}

export class WitnessService extends EventEmitter {
  private readonly regs = new Map<string, Registration>()
  /** Address (lower case) -> owning node name (upper case) in the last view, to detect addresses that move. */
  private lastOwners = new Map<string, string>()
  private readonly sweepTimer: NodeJS.Timeout
  private readonly onChange = (nodes: NodeInfo[]) => this.membershipChanged(nodes)
  private readonly availableWaiters = new Set<() => void>()
  readonly idleExpiryMs: number
  readonly unavailableUnregisterMs: number

  constructor(readonly opts: WitnessServiceOptions) {
    super()
    this.idleExpiryMs = opts.idleExpiryMs ?? 30_000
    this.unavailableUnregisterMs = opts.unavailableUnregisterMs ?? 5_000
    this.lastOwners = ownersOf(opts.membership.nodes())
    opts.membership.on('change', this.onChange)
    this.sweepTimer = setInterval(() => this.sweep(), Math.max(50, Math.min(1000, this.idleExpiryMs / 10, this.unavailableUnregisterMs / 5)))
    this.sweepTimer.unref()
  }

  close(): void {
    clearInterval(this.sweepTimer)
    this.opts.membership.off('change', this.onChange)
    for (const r of [...this.regs.values()]) this.remove(r, S.notFound)
    for (const w of this.availableWaiters) w()
  }

  /** The RPC interface to register with the DCE/RPC runtime. */
  rpcInterface(): RpcInterface {
    return {
      name: 'witness',
      syntax: swn.WitnessSyntax,
      minAuthLevel: this.opts.minAuthLevel ?? AuthLevel.integrity,
      dispatch: (opnum, stub, call) => this.dispatch(opnum, stub, call),
    }
  }

  private async dispatch(opnum: number, stub: Uint8Array, call: RpcCall): Promise<Uint8Array> {
    switch (opnum) {
      case swn.GetInterfaceList.opnum: {
        swn.GetInterfaceList.decodeIn(stub)
        const list = await this.interfaceList(call.signal)
        if (list.length === 0) return swn.GetInterfaceList.encodeOut({ interfaceList: null, status: S.noMoreItems })
        return swn.GetInterfaceList.encodeOut({
          interfaceList: { numberOfInterfaces: list.length, interfaces: list }, status: S.success,
        })
      }
      case swn.Register.opnum: {
        const p = swn.Register.decodeIn(stub)
        const r = this.register(call, { ...p, shareName: null, flags: 0, keepAliveTimeout: 0 }, swn.WitnessVersion.v1)
        return swn.Register.encodeOut(r)
      }
      case swn.RegisterEx.opnum: {
        const r = this.register(call, swn.RegisterEx.decodeIn(stub), swn.WitnessVersion.v2)
        return swn.RegisterEx.encodeOut(r)
      }
      case swn.UnRegister.opnum: {
        const { contextHandle } = swn.UnRegister.decodeIn(stub)
        return swn.UnRegister.encodeOut({ status: this.unregister(call.group, contextHandle) })
      }
      case swn.UnRegisterEx.opnum: {
        const { contextHandle } = swn.UnRegisterEx.decodeIn(stub)
        const status = this.unregister(call.group, contextHandle)
        return swn.UnRegisterEx.encodeOut({
          contextHandle: status === S.success ? new Uint8Array(20) : contextHandle, status,
        })
      }
      case swn.AsyncNotify.opnum: {
        const { contextHandle } = swn.AsyncNotify.decodeIn(stub)
        return swn.AsyncNotify.encodeOut(await this.asyncNotify(call, contextHandle))
      }
      default:
        throw new RpcFault(FaultStatus.opRangeError)
    }
  }

  /** WITNESS_INTERFACE_INFO entries: one per node address; waits while no node is available. */
  private async interfaceList(signal: AbortSignal): Promise<swn.WitnessInterfaceInfo[]> {
    for (;;) {
      const nodes = this.opts.membership.nodes()
      if (nodes.length === 0 || nodes.some(n => n.state === 'up')) return this.buildList(nodes)
      await new Promise<void>((resolve, reject) => {
        const done = () => {
          this.availableWaiters.delete(done)
          signal.removeEventListener('abort', done)
          if (signal.aborted) reject(new RpcFault(FaultStatus.unspecifiedReject, 'call cancelled'))
          else resolve()
        }
        this.availableWaiters.add(done)
        signal.addEventListener('abort', done)
      })
    }
  }

  buildList(nodes = this.opts.membership.nodes()): swn.WitnessInterfaceInfo[] {
    const out: swn.WitnessInterfaceInfo[] = []
    for (const n of nodes) {
      const local = n.name.toUpperCase() === this.opts.nodeName.toUpperCase()
      const state = n.state === 'up' ? swn.InterfaceState.available : n.state === 'down' ? swn.InterfaceState.unavailable : swn.InterfaceState.unknown
      for (const a of n.addresses) {
        const v4 = isIP(a) === 4
        out.push({
          interfaceGroupName: n.name,
          version: swn.WitnessVersion.v2,
          state,
          ipv4: v4 ? a : '0.0.0.0',
          ipv6: v4 ? '::' : a,
          flags: (v4 ? swn.InterfaceFlag.ipv4 : swn.InterfaceFlag.ipv6) | (local ? 0 : swn.InterfaceFlag.interfaceWitness),
        })
      }
    }
    return out
  }

  private nodeOfAddress(ip: string): NodeInfo | undefined {
    const norm = (s: string) => s.toLowerCase()
    return this.opts.membership.nodes().find(n => n.addresses.some(a => norm(a) === norm(ip)))
  }

  private register(
    call: RpcCall,
    p: {
      version: number; netName: string | null; shareName: string | null; ipAddress: string | null
      clientComputerName: string | null; flags: number; keepAliveTimeout: number
    },
    expectedVersion: number,
  ): { contextHandle: Uint8Array; status: number } {
    const fail = (status: number) => ({ contextHandle: new Uint8Array(20), status })
    if (p.version !== expectedVersion) return fail(S.revisionMismatch)
    if (p.netName === null || p.ipAddress === null || p.clientComputerName === null) return fail(S.invalidParameter)
    if (!this.opts.netNames.some(n => n.toUpperCase() === p.netName!.toUpperCase())) return fail(S.invalidParameter)
    const node = this.nodeOfAddress(p.ipAddress)
    if (!node) return fail(S.invalidState)
    if (p.shareName !== null && this.opts.shares && !this.opts.shares.some(s => s.toUpperCase() === p.shareName!.toUpperCase())) {
      return fail(S.invalidState)
    }
    const reg: Registration = {
      info: {
        id: '', clientName: p.clientComputerName, witnessNodeName: this.opts.nodeName, fileServerNodeName: node.name,
        networkName: p.netName, shareName: p.shareName, ipAddress: p.ipAddress, version: p.version, flags: p.flags,
        keepAliveSeconds: p.keepAliveTimeout, state: 'Idle', principal: call.principal, remoteAddress: call.remoteAddress,
        registeredAt: new Date().toISOString(), notificationsSent: 0, notificationsCancelled: 0, queuedNotifications: 0,
        lastNotification: null,
      },
      handle: new Uint8Array(),
      group: call.group,
      queue: [],
      held: null,
      idleSince: performance.now(),
      removeAt: null,
      lastState: node.state,
    }
    reg.handle = call.group.createHandle(reg, () => this.remove(reg, S.notFound, false))
    reg.info.id = handleGuid(reg.handle)
    this.regs.set(reg.info.id, reg)
    this.emit('registered', { ...reg.info })
    return { contextHandle: reg.handle, status: S.success }
  }

  private lookup(group: AssociationGroup, h: Uint8Array): Registration | undefined {
    if (isNullHandle(h)) return undefined
    const reg = group.getHandle<Registration>(h)
    return reg && this.regs.get(reg.info.id) === reg ? reg : undefined
  }

  private unregister(group: AssociationGroup, h: Uint8Array): number {
    const reg = this.lookup(group, h)
    if (!reg) return S.invalidParameter
    this.remove(reg, S.notFound)
    return S.success
  }

  /** Drop a registration; a held AsyncNotify completes with `status`. */
  private remove(reg: Registration, status: number, closeHandle = true): void {
    if (this.regs.get(reg.info.id) !== reg) return
    this.regs.delete(reg.info.id)
    if (closeHandle) reg.group.closeHandle(reg.handle)
    const held = reg.held
    reg.held = null
    held?.resolve(null, status)
    this.emit('unregistered', { ...reg.info })
  }

  private asyncNotify(call: RpcCall, h: Uint8Array): Promise<{ response: swn.RespAsyncNotify | null; status: number }> {
    const reg = this.lookup(call.group, h)
    if (!reg) return Promise.resolve({ response: null, status: S.notFound })
    if (reg.held) return Promise.resolve({ response: null, status: S.invalidState })
    const next = reg.queue.shift()
    if (next) return Promise.resolve(this.deliver(reg, next))
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined
      const finish = () => {
        if (timer) clearTimeout(timer)
        call.signal.removeEventListener('abort', onAbort)
        if (reg.held === held) reg.held = null
        reg.info.state = 'Idle'
        reg.idleSince = performance.now()
      }
      const held: Held = {
        resolve: (n, status) => {
          finish()
          resolve(n ? this.deliver(reg, n) : { response: null, status })
        },
      }
      const onAbort = () => {
        finish()
        reg.info.notificationsCancelled++
        reject(new RpcFault(FaultStatus.unspecifiedReject, 'AsyncNotify cancelled'))
      }
      if (reg.info.version === swn.WitnessVersion.v2 && reg.info.keepAliveSeconds > 0) {
        timer = setTimeout(() => held.resolve(null, S.timeout), reg.info.keepAliveSeconds * 1000)
      }
      call.signal.addEventListener('abort', onAbort)
      reg.held = held
      reg.info.state = 'Waiting'
    })
  }

  private deliver(reg: Registration, n: Notification): { response: swn.RespAsyncNotify; status: number } {
    const e = encodeNotification(n)
    reg.info.notificationsSent++
    reg.info.queuedNotifications = reg.queue.length
    reg.info.lastNotification = new Date().toISOString()
    if (n.type === swn.MessageType.resourceChange && n.changes.some(c => c.changeType !== ChangeType.available)) {
      reg.removeAt = performance.now() + this.unavailableUnregisterMs
    }
    this.emit('notified', { id: reg.info.id, clientName: reg.info.clientName, notification: n })
    return {
      response: { messageType: e.messageType, length: e.buffer.length, numberOfMessages: e.numberOfMessages, messageBuffer: e.buffer },
      status: S.success,
    }
  }

  /** Queue a notification for a registration, completing its held AsyncNotify at once if there is one. */
  private notify(reg: Registration, n: Notification): void {
    if (reg.held) reg.held.resolve(n, S.success)
    else {
      reg.queue.push(n)
      reg.info.queuedNotifications = reg.queue.length
      reg.info.state = 'NotificationPending'
    }
  }

  private membershipChanged(nodes: NodeInfo[]): void {
    if (nodes.some(n => n.state === 'up')) for (const w of [...this.availableWaiters]) w()
    const byName = new Map(nodes.map(n => [n.name.toUpperCase(), n]))
    const owners = ownersOf(nodes)
    // addresses whose owner changed (moved, appeared or vanished): old owner, new owner
    const moved: Array<{ address: string; from: string | undefined; to: string | undefined }> = []
    for (const a of new Set([...this.lastOwners.keys(), ...owners.keys()])) {
      if (this.lastOwners.get(a) !== owners.get(a)) moved.push({ address: a, from: this.lastOwners.get(a), to: owners.get(a) })
    }
    this.lastOwners = owners
    for (const reg of this.regs.values()) {
      const wantsIp = (reg.info.flags & swn.RegisterExFlag.ipNotification) !== 0
      const before = reg.info.fileServerNodeName.toUpperCase()
      // the registration follows its own address; an address nobody owns any more is unavailable
      const ownerKey = owners.get(reg.info.ipAddress.toLowerCase())
      const owner = ownerKey ? byName.get(ownerKey) : byName.get(before)
      if (owner && owner.name.toUpperCase() !== before) reg.info.fileServerNodeName = owner.name
      const state: NodeState = ownerKey && owner ? owner.state : 'down'
      const now = reg.info.fileServerNodeName.toUpperCase()
      if (wantsIp) {
        // addresses that left the node this registration was on, and addresses that joined the node it is on now
        const offline = moved.filter(m => m.from === before && m.to !== now)
        const online = moved.filter(m => m.to === now && m.from !== now)
        const list = [
          ...addressList(offline.map(m => m.address), IpAddrFlag.offline),
          ...addressList(online.map(m => m.address), state === 'up' ? IpAddrFlag.online : IpAddrFlag.offline),
        ]
        if (list.length) this.notify(reg, { type: swn.MessageType.ipChange, lists: [list] })
      }
      if (state === reg.lastState) continue
      reg.lastState = state
      const changeType = state === 'up' ? ChangeType.available : state === 'down' ? ChangeType.unavailable : ChangeType.unknown
      this.notify(reg, { type: swn.MessageType.resourceChange, changes: [{ changeType, resourceName: reg.info.networkName }] })
      if (wantsIp && ownerKey && owner) {
        this.notify(reg, { type: swn.MessageType.ipChange, lists: [addressList(owner.addresses, state === 'up' ? IpAddrFlag.online : IpAddrFlag.offline)] })
      }
    }
  }

  private sweep(): void {
    const now = performance.now()
    for (const reg of [...this.regs.values()]) {
      if (reg.removeAt !== null && now >= reg.removeAt) this.remove(reg, S.notFound)
      else if (!reg.held && now - reg.idleSince >= this.idleExpiryMs) this.remove(reg, S.notFound)
    }
  }

  // ---- administration --------------------------------------------------------------------------------------

  registrations(): RegistrationInfo[] {
    return [...this.regs.values()].map(r => ({ ...r.info }))
  }

  private nodeByName(name: string): NodeInfo {
    const n = this.opts.membership.nodes().find(x => x.name.toUpperCase() === name.toUpperCase())
    if (!n) throw new RangeError(`no node named ${name}`)
    return n
  }

  /** CLIENT_MOVE to `toNode`'s addresses for every registration of `clientName`; returns how many were told. */
  moveClient(clientName: string, toNode: string, networkName?: string): number {
    const dest = this.nodeByName(toNode)
    let count = 0
    for (const reg of this.regs.values()) {
      if (reg.info.clientName.toUpperCase() !== clientName.toUpperCase()) continue
      if (networkName && reg.info.networkName.toUpperCase() !== networkName.toUpperCase()) continue
      this.notify(reg, { type: swn.MessageType.clientMove, lists: [addressList(dest.addresses, 0)] })
      count++
    }
    return count
  }

  /** SHARE_MOVE (V2 registrations of `shareName`) to `toNode`'s addresses. */
  moveShare(shareName: string, toNode: string): number {
    const dest = this.nodeByName(toNode)
    let count = 0
    for (const reg of this.regs.values()) {
      if (reg.info.version !== swn.WitnessVersion.v2 || reg.info.shareName?.toUpperCase() !== shareName.toUpperCase()) continue
      this.notify(reg, { type: swn.MessageType.shareMove, lists: [addressList(dest.addresses, 0)] })
      count++
    }
    return count
  }

  /** Remove registrations by id or client name; a held AsyncNotify completes with ERROR_NOT_FOUND. */
  forceUnregister(idOrClient: string): number {
    let count = 0
    for (const reg of [...this.regs.values()]) {
      if (reg.info.id === idOrClient.toLowerCase() || reg.info.clientName.toUpperCase() === idOrClient.toUpperCase()) {
        this.remove(reg, S.notFound)
        count++
      }
    }
    return count
  }

  /** Administrator's override; with etcd the promise settles once the override is stored. */
  async setNodeState(node: string, state: NodeState): Promise<void> {
    if (!this.opts.membership.setNodeState) throw new RangeError('this membership source does not take manual node states')
    this.nodeByName(node)
    await this.opts.membership.setNodeState(node, state)
  }
}

function ownersOf(nodes: NodeInfo[]): Map<string, string> {
  const m = new Map<string, string>()
  for (const n of nodes) for (const a of n.addresses) m.set(a.toLowerCase(), n.name.toUpperCase())
  return m
}

function addressList(addresses: string[], extraFlags: number): IpAddrInfo[] {
  return addresses.map(a => {
    const v4 = isIP(a) === 4
    return { flags: (v4 ? IpAddrFlag.v4 : IpAddrFlag.v6) | extraFlags, ipv4: v4 ? a : '0.0.0.0', ipv6: v4 ? '::' : a }
  })
}
