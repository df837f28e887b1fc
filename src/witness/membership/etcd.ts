/**
 * Cluster membership through etcd (issue 7): which witness / file-server nodes are alive.
 *
 * Keys, all under `<prefix><cluster>/`:
 *   known/<NODE>     {name, addresses}                       no lease: remembers that the node exists
 *   live/<NODE>      {name, addresses, leaseId, probe, pid}  attached to the node's lease: present = alive
 *   override/<NODE>  "down" | "up"                           administrator's state (hvcbt witness node-state)
 *   registrations/<NODE>  [registration, ...]                on the node's lease: cluster-wide Get-WitnessClient
 *   moves/<ID>       {kind, name, to, networkName}           on a short lease: an administrator's client/share move;
 *                                                            every node applies it to the registrations it holds
 *   acks/<ID>/<NODE> {notified}                              on a short lease: how many registrations NODE told,
 *                                                            so the node that asked can report the cluster's total
 * A node's state is `down` when an override says so, else `up` while its live key exists, else `down`.
 *
 * Failure detection has two paths. The authoritative one is etcd's lease: a node that stops renewing (crash, power
 * loss, partition) loses its live key after the TTL and every node sees the delete. The fast one covers the common
 * case of a dead process: each node listens on a small TCP "probe" port and every peer keeps a connection to it;
 * when the kernel closes a dead process's sockets, peers see the close at once, confirm by reconnecting (refused =
 * dead), and revoke the dead node's lease in etcd, so the whole cluster agrees within milliseconds rather than a
 * TTL. A dropped connection to a live node reconnects and changes nothing.
 *
 * etcd unreachable: the node keeps serving the last view it had and reports itself degraded; the etcd client
 * resumes the watch from the last revision it saw, so nothing is lost, and the server only notifies on state
 * transitions, so nothing is duplicated. A node whose lease expired while cut off re-grants and republishes.
 */
import { EventEmitter } from 'node:events'
import net from 'node:net'
import { performance } from 'node:perf_hooks'
import { importEtcd3 } from './etcd-protos.js'
import type { MembershipSource, NodeInfo, NodeState } from './membership.js'

export interface EtcdMembershipOptions {
  /** etcd client URLs, e.g. ['http://127.0.0.1:2379']. */
  endpoints: string[]
  /** This node: its name and the addresses clients use for its file-server interfaces. */
  self: { name: string; addresses: string[] }
  /** Lease TTL in seconds (etcd rounds anything under its minimum, about 2 s with default timings, up). */
  leaseTtlSeconds?: number
  /** Key prefix; default '/hvcbt/witness/'. */
  prefix?: string
  /** Cluster name under the prefix; default 'default'. */
  cluster?: string
  /** Address the probe listener binds; default the first of self.addresses. */
  probeAddress?: string
  /** Called for diagnostics (connection lost/restored, peers declared dead). */
  log?: (level: 'info' | 'warning', message: string) => void
}

export interface MembershipStatus {
  source: 'etcd'
  cluster: string
  leaseTtlSeconds: number
  connected: boolean
  /** Set while etcd is unreachable: since when (ISO time). */
  degradedSince: string | null
  leaseId: string | null
  revision: string | null
  endpoints: string[]
}

/** An administrator's move, delivered by whichever node holds the affected registrations. */
export interface MoveCommand {
  id: string
  kind: 'client' | 'share'
  /** Client computer name (kind 'client') or share name (kind 'share'). */
  name: string
  /** Destination node. */
  to: string
  networkName?: string
}

/** How long a move command stays in etcd: long enough for every node, including one catching up after an outage. */
const moveTtlSeconds = 120

interface LiveRecord {
  name: string
  addresses: string[]
  leaseId: string
  probe: { host: string; port: number } | null
  pid: number
}

/** The view from the raw key values (pure: unit-tested without etcd). */
export function viewFrom(
  known: Map<string, { name: string; addresses: string[] }>,
  live: Map<string, LiveRecord>,
  overrides: Map<string, string>,
): NodeInfo[] {
  const names = new Set([...known.keys(), ...live.keys()])
  return [...names].sort().map(key => {
    const l = live.get(key)
    const k = known.get(key)
    const override = overrides.get(key)
    const state: NodeState = override === 'down' ? 'down' : l ? 'up' : 'down'
    return { name: (l ?? k)!.name, addresses: [...(l ?? k)!.addresses], state }
  })
}

type Etcd3 = import('etcd3').Etcd3
type Lease = import('etcd3').Lease
type Watcher = import('etcd3').Watcher
type KV = { key: Buffer; value: Buffer; mod_revision?: string }

export class EtcdMembership extends EventEmitter implements MembershipSource {
  private client!: Etcd3
  private lease: Lease | null = null
  private leaseId: string | null = null
  private watcher: Watcher | null = null
  private readonly known = new Map<string, { name: string; addresses: string[] }>()
  private readonly live = new Map<string, LiveRecord>()
  private readonly overrides = new Map<string, string>()
  /**
   * Leases of nodes this node found dead (probe refused) whose revoke may not have reached etcd (it was away):
   * their live records are ignored from then on, so a reload after an outage (etcd renews every lease when it
   * restarts) cannot bring the dead node back for a TTL and notify twice. Revokes are retried on reconnect.
   */
  private readonly deadLeases = new Map<string, { revoked: boolean }>()
  /** Moves already handed to listeners: a reload after an outage re-reads moves/ and must not repeat them. */
  private readonly appliedMoves = new Set<string>()
  private registrationsJson = ''
  private view: NodeInfo[] = []
  private revision: string | null = null
  private degradedSince: Date | null = null
  /** Health of the two etcd streams; the node is degraded while either is down. */
  private leaseOk = true
  private watchOk = true
  private probeServer: net.Server | null = null
  private probePort = 0
  private readonly probes = new Map<string, net.Socket>()
  private closed = false
  private rejoining = false
  private readonly root: string
  private readonly self: { name: string; addresses: string[] }
  private readonly ttl: number

  private constructor(private readonly opts: EtcdMembershipOptions) {
    super()
    this.root = `${opts.prefix ?? '/hvcbt/witness/'}${opts.cluster ?? 'default'}/`
    this.self = { name: opts.self.name, addresses: [...opts.self.addresses] }
    this.ttl = Math.max(1, Math.round(opts.leaseTtlSeconds ?? 5))
  }

  /**
   * Joins the cluster: starts the probe listener, grants the lease, publishes this node, reads the whole view and
   * starts watching. Rejects (with the endpoints named) if etcd cannot be reached: a cluster node never silently
   * runs alone.
   */
  static async join(opts: EtcdMembershipOptions): Promise<EtcdMembership> {
    const m = new EtcdMembership(opts)
    try {
      await m.start()
    } catch (err) {
      await m.close()
      throw new Error(`cannot join the witness cluster through etcd at ${opts.endpoints.join(', ')}: ${(err as Error).message}`)
    }
    return m
  }

  nodes(): NodeInfo[] {
    return this.view.map(n => ({ ...n, addresses: [...n.addresses] }))
  }

  status(): MembershipStatus {
    return {
      source: 'etcd',
      cluster: this.opts.cluster ?? 'default',
      leaseTtlSeconds: this.ttl,
      connected: this.degradedSince === null,
      degradedSince: this.degradedSince?.toISOString() ?? null,
      leaseId: this.leaseId,
      revision: this.revision,
      endpoints: [...this.opts.endpoints],
    }
  }

  /**
   * Administrator's override, stored in etcd so every node applies it; 'up' removes a 'down' override. Throws at
   * once for an unknown node; the promise rejects (naming etcd) when the override could not be stored.
   */
  setNodeState(name: string, state: NodeState): Promise<void> {
    const key = name.toUpperCase()
    if (!this.known.has(key) && !this.live.has(key)) throw new RangeError(`no node named ${name}`)
    const op: Promise<unknown> =
      state === 'down'
        ? this.client.put(`${this.root}override/${key}`).value('down').exec()
        : this.client.delete().key(`${this.root}override/${key}`).exec()
    const stored = withDeadline(op, 5000, 'etcd did not answer').then(() => undefined)
    stored.catch(err => this.log('warning', `node-state ${name} ${state} not stored in etcd: ${(err as Error).message}`))
    return stored.catch(err => {
      throw new Error(`node-state ${name} ${state} not stored in etcd (${this.opts.endpoints.join(', ')}): ${(err as Error).message}`)
    })
  }

  /** 'move' fires once per move command (from any node) with the command; the listener applies it locally. */
  onMove(listener: (cmd: MoveCommand) => void): void {
    this.on('move', listener)
  }

  /** Asks every node to deliver a CLIENT_MOVE / SHARE_MOVE to the registrations it holds. */
  async requestMove(cmd: Omit<MoveCommand, 'id'>): Promise<MoveCommand> {
    const full: MoveCommand = { ...cmd, id: `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}` }
    const lease = this.client.lease(moveTtlSeconds, { autoKeepAlive: false })
    await withDeadline(lease.put(`${this.root}moves/${full.id}`).value(JSON.stringify(full)).exec(), 5000, 'etcd did not answer')
    return full
  }

  /** Records how many registrations this node told about move `id` (read back by awaitMoveAcks on the asker). */
  ackMove(id: string, notified: number): void {
    const lease = this.client.lease(moveTtlSeconds, { autoKeepAlive: false })
    void lease
      .put(`${this.root}acks/${id}/${this.self.name.toUpperCase()}`)
      .value(JSON.stringify({ notified }))
      .exec()
      .catch(err => this.log('warning', `move ${id}: acknowledgement not stored: ${(err as Error).message}`))
  }

  /**
   * Waits until every node that is up has acknowledged move `id` (or `ms` passed) and returns the acknowledgements:
   * the cluster-wide count of registrations told. A node that is down cannot hold live registrations.
   */
  async awaitMoveAcks(id: string, ms = 5000): Promise<Array<{ node: string; notified: number }>> {
    const deadline = performance.now() + ms // monotonic: a clock step must not cut the wait short
    const prefix = `${this.root}acks/${id}/`
    for (;;) {
      const res = await this.client.getAll().prefix(prefix).exec()
      const acks = (res.kvs as KV[]).map(kv => ({
        node: kv.key.toString().slice(prefix.length),
        notified: Number((JSON.parse(kv.value.toString()) as { notified: number }).notified) || 0,
      }))
      const up = this.view.filter(n => n.state === 'up').map(n => n.name.toUpperCase())
      if (up.every(n => acks.some(a => a.node === n)) || performance.now() >= deadline) return acks
      await new Promise(r => setTimeout(r, 50))
    }
  }

  /** Publishes the registrations this node holds (bound to its lease, so they vanish with the node). */
  publishRegistrations(registrations: unknown[]): void {
    const json = JSON.stringify(registrations)
    if (json === this.registrationsJson || !this.lease || this.closed) return
    this.registrationsJson = json
    void this.lease
      .put(`${this.root}registrations/${this.self.name.toUpperCase()}`)
      .value(json)
      .exec()
      .catch(() => {
        this.registrationsJson = '' // published again on the next change or re-join
      })
  }

  /** Registrations held by every live node, as they published them. */
  async clusterRegistrations(): Promise<Array<{ node: string; registrations: unknown[] }>> {
    const res = await this.client.getAll().prefix(`${this.root}registrations/`).exec()
    return (res.kvs as KV[]).map(kv => ({
      node: kv.key.toString().slice(`${this.root}registrations/`.length),
      registrations: JSON.parse(kv.value.toString()) as unknown[],
    }))
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    for (const s of this.probes.values()) s.destroy()
    this.probes.clear()
    // bounded: with etcd away, a clean leave must not hang the process that is shutting down
    await withTimeout(this.watcher?.cancel(), 2000)
    // a clean leave: revoking the lease removes our live key at once, so peers see this node go down now
    await withTimeout(this.lease?.revoke(), 2000)
    await new Promise<void>(resolve => (this.probeServer ? this.probeServer.close(() => resolve()) : resolve()))
    this.client?.close()
  }

  private log(level: 'info' | 'warning', message: string): void {
    this.opts.log?.(level, message)
  }

  private async start(): Promise<void> {
    const [{ Etcd3 }, { noop, ExponentialBackoff }] = await Promise.all([importEtcd3(), import('cockatiel')])
    // etcd3's default circuit breaker stays open for a while after an outage and fails every call made meanwhile,
    // lease keep-alives included: this class does its own retrying (rejoin) and wants the watch back quickly.
    this.client = new Etcd3({
      hosts: this.opts.endpoints,
      dialTimeout: 3000,
      faultHandling: {
        host: () => noop,
        global: noop,
        // etcd3's typings name an older cockatiel's IBackoff; the object is the same at run time
        watchBackoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 1000 }) as never,
      },
    })
    await this.listenProbe()
    const me = this.self.name.toUpperCase()
    await this.client.put(`${this.root}known/${me}`).value(JSON.stringify(this.self))
    await this.publishLive()
    await this.reload()
    this.startWatch()
  }

  /** A TCP listener whose only job is to exist while this process lives. */
  private async listenProbe(): Promise<void> {
    const host = this.opts.probeAddress ?? this.self.addresses[0] ?? '127.0.0.1'
    this.probeServer = net.createServer(sock => {
      sock.on('error', () => {})
      sock.resume()
    })
    await new Promise<void>((resolve, reject) => {
      this.probeServer!.once('error', reject)
      this.probeServer!.listen(0, host, () => resolve())
    })
    this.probePort = (this.probeServer.address() as net.AddressInfo).port
  }

  private async publishLive(): Promise<void> {
    const lease = this.client.lease(this.ttl, { autoKeepAlive: true })
    this.lease = lease
    lease.on('lost', err => {
      if (this.closed || this.lease !== lease) return
      this.log('warning', `etcd lease lost (${err.message}); re-joining`)
      this.health('lease', false)
      void this.rejoin()
    })
    lease.on('keepaliveSucceeded', () => this.health('lease', true))
    lease.on('keepaliveFailed', () => this.health('lease', false))
    this.leaseId = await lease.grant()
    const probeHost = this.opts.probeAddress ?? this.self.addresses[0] ?? '127.0.0.1'
    const rec: LiveRecord = {
      ...this.self,
      leaseId: this.leaseId,
      probe: { host: probeHost, port: this.probePort },
      pid: process.pid,
    }
    await lease.put(`${this.root}live/${this.self.name.toUpperCase()}`).value(JSON.stringify(rec))
    this.registrationsJson = '' // the old lease took the published registrations with it
  }

  /** After a lost lease (etcd was away longer than the TTL): retry until etcd answers again. */
  private async rejoin(): Promise<void> {
    if (this.rejoining) return
    this.rejoining = true
    try {
      for (let delay = 200; !this.closed; delay = Math.min(delay * 2, 2000)) {
        try {
          await this.publishLive()
          await this.reload()
          this.health('lease', true)
          return
        } catch {
          await new Promise(r => setTimeout(r, delay))
        }
      }
    } finally {
      this.rejoining = false
    }
  }

  private health(stream: 'lease' | 'watch', ok: boolean): void {
    if (stream === 'lease') this.leaseOk = ok
    else this.watchOk = ok
    if (this.leaseOk && this.watchOk) this.markConnected()
    else this.markDegraded()
  }

  private markDegraded(): void {
    if (this.degradedSince || this.closed) return
    this.degradedSince = new Date()
    this.log('warning', 'etcd unreachable: serving the last known membership')
    this.emit('status', this.status())
  }

  private markConnected(): void {
    if (!this.degradedSince) return
    this.degradedSince = null
    this.log('info', 'etcd reachable again')
    void this.revokeDead()
    this.emit('status', this.status())
  }

  /** Reads the whole prefix and replaces the maps (start, and after a re-join). */
  private async reload(): Promise<void> {
    const res = await this.client.getAll().prefix(this.root).exec()
    this.known.clear()
    this.live.clear()
    this.overrides.clear()
    for (const kv of res.kvs as KV[]) this.apply('put', kv)
    this.revision = res.header.revision
    this.recompute()
  }

  private startWatch(): void {
    const next = (BigInt(this.revision ?? '0') + 1n).toString()
    void this.client
      .watch()
      .prefix(this.root)
      .startRevision(next)
      .create()
      .then(w => {
        if (this.closed) return void w.cancel()
        this.watcher = w
        w.on('put', kv => this.onEvent('put', kv as KV))
        w.on('delete', kv => this.onEvent('delete', kv as KV))
        w.on('disconnected', () => this.health('watch', false))
        w.on('connected', () => this.health('watch', true))
        w.on('error', () => this.health('watch', false))
      })
      .catch(err => this.log('warning', `etcd watch failed: ${(err as Error).message}`))
  }

  private onEvent(kind: 'put' | 'delete', kv: KV): void {
    this.apply(kind, kv)
    if (kv.mod_revision) this.revision = kv.mod_revision
    this.recompute()
  }

  private apply(kind: 'put' | 'delete', kv: KV): void {
    const key = kv.key.toString()
    if (!key.startsWith(this.root)) return
    const [kindOfKey, node] = key.slice(this.root.length).split('/', 2)
    if (!node) return
    try {
      if (kindOfKey === 'known') {
        if (kind === 'put') this.known.set(node, JSON.parse(kv.value.toString()))
        else this.known.delete(node)
      } else if (kindOfKey === 'live') {
        const rec = kind === 'put' ? (JSON.parse(kv.value.toString()) as LiveRecord) : null
        if (rec && !this.deadLeases.has(rec.leaseId)) this.live.set(node, rec)
        else this.live.delete(node)
      } else if (kindOfKey === 'override') {
        if (kind === 'put') this.overrides.set(node, kv.value.toString())
        else this.overrides.delete(node)
      } else if (kindOfKey === 'moves' && kind === 'put' && !this.appliedMoves.has(node)) {
        this.appliedMoves.add(node)
        this.emit('move', JSON.parse(kv.value.toString()) as MoveCommand)
      }
    } catch {
      this.log('warning', `ignoring a malformed membership record at ${key}`)
    }
  }

  private recompute(): void {
    const next = viewFrom(this.known, this.live, this.overrides)
    this.syncProbes()
    if (JSON.stringify(next) === JSON.stringify(this.view)) return
    this.view = next
    this.emit('change', this.nodes())
  }

  /** Keep one probe connection to every other live node; drop those of nodes that left. */
  private syncProbes(): void {
    const me = this.self.name.toUpperCase()
    for (const [node, sock] of this.probes) {
      const rec = this.live.get(node)
      if (!rec || !rec.probe) {
        this.probes.delete(node)
        sock.destroy()
      }
    }
    for (const [node, rec] of this.live) {
      if (node === me || !rec.probe || this.probes.has(node) || this.closed) continue
      this.connectProbe(node, rec)
    }
  }

  private connectProbe(node: string, rec: LiveRecord): void {
    const sock = net.connect(rec.probe!.port, rec.probe!.host)
    this.probes.set(node, sock)
    sock.setNoDelay(true)
    sock.on('error', () => {})
    sock.on('close', () => {
      if (this.closed || this.probes.get(node) !== sock) return
      this.probes.delete(node)
      void this.confirmDead(node, rec)
    })
  }

  /** The probe connection closed: dead if a fresh connection is refused, then revoke its lease for everyone. */
  private async confirmDead(node: string, rec: LiveRecord): Promise<void> {
    const alive = await new Promise<boolean>(resolve => {
      const s = net.connect(rec.probe!.port, rec.probe!.host)
      const done = (ok: boolean) => {
        s.destroy()
        resolve(ok)
      }
      s.setTimeout(1000, () => done(true)) // no answer is not proof of death: leave it to the lease
      s.once('connect', () => done(true))
      // Only a refusal proves the process is gone (its host answered, nothing listens). Unreachable host or net,
      // a reset by a middlebox: a partition between witness nodes, not a death; the lease decides.
      s.once('error', err => done((err as NodeJS.ErrnoException).code !== 'ECONNREFUSED'))
    })
    const current = this.live.get(node)
    if (!current || current.leaseId !== rec.leaseId) return // already gone or re-joined with a new lease
    if (alive) {
      this.syncProbes()
      return
    }
    this.log('info', `node ${rec.name} stopped (probe refused): revoking its etcd lease`)
    // Local view first, so this node notifies without waiting for etcd; the revoke tells the others.
    if (this.deadLeases.size >= 1024) this.deadLeases.delete(this.deadLeases.keys().next().value!)
    this.deadLeases.set(rec.leaseId, { revoked: false })
    this.live.delete(node)
    this.recompute()
    await this.revokeDead()
  }

  /** Revokes the leases of dead nodes not yet revoked (at once, and again whenever etcd is reachable again). */
  private async revokeDead(): Promise<void> {
    for (const [id, d] of this.deadLeases) {
      if (d.revoked || this.closed) continue
      try {
        await withDeadline(this.client.leaseClient.leaseRevoke({ ID: id }), 3000, 'etcd did not answer')
        d.revoked = true
      } catch (err) {
        // "lease not found": already expired or revoked by another peer, the delete event arrives either way
        if (/not found/i.test((err as Error).message)) d.revoked = true
      }
    }
  }
}

/** Rejects with `what` when `p` has not settled after `ms` (etcd3 retries quietly while etcd is away). */
function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms)
    p.then(
      v => (clearTimeout(t), resolve(v)),
      e => (clearTimeout(t), reject(e as Error)),
    )
  })
}

function withTimeout(p: Promise<unknown> | undefined, ms: number): Promise<void> {
  if (!p) return Promise.resolve()
  return new Promise(resolve => {
    const t = setTimeout(resolve, ms)
    p.then(
      () => (clearTimeout(t), resolve()),
      () => (clearTimeout(t), resolve()),
    )
  })
}
