/**
 * SMB Witness methods: the server side (`witness.serve` and the admin commands that reach a running service over
 * its admin socket) and the client side (`witness.interfaces`, `witness.client.*`).
 *
 * `witness.serve` runs the DCE/RPC witness service plus the endpoint mapper, registered as a Service. Its admin
 * channel is a Unix socket per listen address (adminSocketPath, mode 0600, root-only for a system service):
 * `witness.clients / move-client / move-share / unregister / node-state --server IP` connect to it. Passwords never
 * travel on a command line: `witness.user.add` and the client methods take them in params over JSON-RPC, or read
 * them from stdin (`--password-stdin`) or a no-echo prompt when run from the CLI on a terminal.
 *
 * Membership: without --etcd a node runs alone (or with the --static-node list); with --etcd it joins the cluster
 * through EtcdMembership (publishing its --listen addresses) and never falls back to running alone: etcd unreachable
 * at start is an error, later outages are reported as degraded status. On a clustered node the admin commands act
 * on the whole cluster: move-client / move-share go through etcd so whichever node holds the registration delivers
 * the move, `clients` lists every node's registrations (published in etcd), node-state writes the shared override.
 */
import { readFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { createInterface } from 'node:readline'
import { Type, type Static } from 'typebox'
import { EngineError } from '../errors.js'
import { defineMethod, type CallContext } from '../method.js'
import { addService, getService, stopService } from '../services.js'
import { addUser } from '../../witness/dcerpc/auth/credentials.js'
import { ntHash } from '../../witness/dcerpc/auth/md4.js'
import { RpcClient, epmMap } from '../../witness/dcerpc/client.js'
import { EtcdMembership } from '../../witness/membership/etcd.js'
import type { MembershipSource } from '../../witness/membership/membership.js'
import { StaticMembership } from '../../witness/membership/static.js'
import { AdminChannel, adminCall, adminSocketPath } from '../../witness/swn/admin-channel.js'
import { WitnessClient, type WitnessClientStatus } from '../../witness/swn/client.js'
import * as swn from '../../witness/swn/swn-idl.js'
import { clusterClients, clusterMove, clusterWiring, membershipView } from '../../witness/swn/witness-cluster.js'
import { startWitnessHost } from '../../witness/swn/witness-host.js'

const Registration = Type.Object({
  id: Type.String({ description: 'registration (context handle GUID)' }),
  clientName: Type.String(),
  witnessNodeName: Type.String(),
  fileServerNodeName: Type.String(),
  networkName: Type.String(),
  shareName: Type.Union([Type.String(), Type.Null()]),
  ipAddress: Type.String(),
  version: Type.Integer(),
  flags: Type.Integer(),
  keepAliveSeconds: Type.Integer(),
  state: Type.String({ description: 'Waiting (AsyncNotify held), NotificationPending, Idle' }),
  principal: Type.Union([Type.String(), Type.Null()]),
  remoteAddress: Type.String(),
  registeredAt: Type.String(),
  notificationsSent: Type.Integer(),
  notificationsCancelled: Type.Integer(),
  queuedNotifications: Type.Integer(),
  lastNotification: Type.Union([Type.String(), Type.Null()]),
})

const ClientStatus = Type.Object({
  id: Type.String(),
  state: Type.String(),
  netName: Type.String(),
  clientName: Type.String(),
  fileServerAddress: Type.String(),
  fileServerNode: Type.Union([Type.String(), Type.Null()]),
  fileServerState: Type.String({ description: 'available, unavailable or unknown: the interface list at registration, then RESOURCE_CHANGE' }),
  witnessNode: Type.Union([Type.String(), Type.Null()]),
  witnessAddress: Type.Union([Type.String(), Type.Null()]),
  version: Type.Union([Type.Integer(), Type.Null()]),
  registeredAt: Type.Union([Type.String(), Type.Null()]),
  lastNotification: Type.Union([Type.Object({ at: Type.String(), type: Type.String(), detail: Type.String() }), Type.Null()]),
  notifications: Type.Integer(),
  reconnects: Type.Integer(),
  lastError: Type.Union([Type.String(), Type.Null()]),
})

const MoveResult = Type.Object({
  notified: Type.Integer({ description: 'registrations told (on a clustered node: by every node that acknowledged)' }),
  moveId: Type.Optional(Type.String({ description: 'the move command in etcd (clustered node)' })),
  nodes: Type.Optional(Type.Array(Type.Object({ node: Type.String(), notified: Type.Integer() }))),
})

const Server = Type.String({ minLength: 1, description: 'an address the witness service listens on (selects its admin socket)' })
const Creds = {
  user: Type.Optional(Type.String({ description: 'user in the witness credential store (NTLMSSP)' })),
  domain: Type.Optional(Type.String({ description: 'domain sent with the user (default: empty)' })),
  password: Type.Optional(Type.String({ description: 'password (JSON-RPC only; the CLI reads it from stdin or a prompt)' })),
  passwordStdin: Type.Optional(Type.Boolean({ description: 'read the password from standard input' })),
  seal: Type.Optional(Type.Boolean({ description: 'packet privacy (default: integrity)' })),
}

/** Read a password: from params, from stdin (--password-stdin), or from a no-echo prompt on a terminal. */
async function readPassword(p: { password?: string; passwordStdin?: boolean }, ctx: CallContext, what: string): Promise<string> {
  if (p.password !== undefined) {
    // A password on a command line is visible to every user (ps, shell history): the CLI must not take one.
    if (ctx.interactive) throw new EngineError('--password is not accepted on the command line: use --password-stdin or the prompt', 'SecurityError')
    return p.password
  }
  if (p.passwordStdin) {
    const rl = createInterface({ input: process.stdin })
    for await (const line of rl) {
      rl.close()
      return line.replace(/\r$/, '')
    }
    throw new EngineError('--password-stdin: standard input was empty', 'InvalidArgument')
  }
  if (ctx.interactive && process.stdin.isTTY) {
    process.stderr.write(`${what}: `)
    const stdin = process.stdin
    stdin.setRawMode(true)
    let pw = ''
    try {
      for await (const chunk of stdin) {
        for (const ch of String(chunk)) {
          if (ch === '\r' || ch === '\n') return pw
          if (ch === '\u0003') throw new EngineError('cancelled', 'OperationStopped')
          if (ch === '\u007f') pw = pw.slice(0, -1)
          else pw += ch
        }
      }
    } finally {
      stdin.setRawMode(false)
      stdin.pause()
      process.stderr.write('\n')
    }
    return pw
  }
  throw new EngineError(`${what}: give it in params.password (JSON-RPC) or use --password-stdin`, 'InvalidArgument')
}

async function clientAuth(p: Static<typeof CredsObj>, ctx: CallContext) {
  if (!p.user) return undefined
  const password = await readPassword(p, ctx, `password for ${p.user}`)
  return { user: p.user, domain: p.domain ?? '', ntHash: ntHash(password), level: (p.seal ? 6 : 5) as 5 | 6 }
}
const CredsObj = Type.Object(Creds)

function parseConfig(path: string | undefined): Record<string, unknown> {
  if (!path) return {}
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>
  } catch (e) {
    throw new EngineError(`${path}: not a JSON witness configuration: ${(e as Error).message}`, 'InvalidData')
  }
}

const clients = new Map<string, WitnessClient>()

/**
 * Default etcd lease TTL (seconds). The lease only decides for nodes that stop without their process dying (frozen,
 * powered off, cut off by a partition): a dead process is seen through the probe connections in milliseconds.
 * 3 s keeps that slow path inside Windows' "5 seconds or less" with room for delivery, while surviving what etcd
 * itself does: keep-alives go every TTL/3 = 1 s, so two can be lost, and a leader election (1 s election timeout by
 * default) renews every lease. etcd refuses TTLs under its minimum (about 2 s with default timings).
 */
export const DefaultLeaseTtlSeconds = 3

const NodeView = Type.Object({
  name: Type.String(), addresses: Type.Array(Type.String()), state: Type.String({ description: 'up, down or unknown' }),
})
const MembershipView = Type.Object({
  source: Type.String({ description: 'static or etcd' }),
  cluster: Type.Union([Type.String(), Type.Null()]),
  connected: Type.Boolean({ description: 'false while etcd is unreachable (degraded: the last view is served)' }),
  degradedSince: Type.Union([Type.String(), Type.Null()]),
  leaseId: Type.Union([Type.String(), Type.Null()]),
  leaseTtlSeconds: Type.Union([Type.Integer(), Type.Null()]),
  endpoints: Type.Array(Type.String()),
  nodes: Type.Array(NodeView),
})
const ServiceStatus = Type.Object({
  node: Type.String(), netNames: Type.Array(Type.String()), listen: Type.Array(Type.String()), port: Type.Integer(),
  registrations: Type.Integer({ description: 'registrations held by this node' }),
  membership: MembershipView,
})

const ServeParams = Type.Object({
  node: Type.Optional(Type.String({ minLength: 1, description: "this node's name" })),
  netname: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { description: "the file server's network name(s) clients register for" })),
  listen: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { description: 'IP address(es) to listen on' })),
  port: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535, description: 'witness TCP port (default: a free port, found through the endpoint mapper)' })),
  epmPort: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535, description: 'endpoint mapper port (default 135; 0 = none)' })),
  credentials: Type.Optional(Type.String({ description: 'credential store file (users and NT hashes, mode 0600)' })),
  allowAnonymous: Type.Optional(Type.Boolean({ description: 'allow calls below packet integrity (unauthenticated)' })),
  staticNode: Type.Optional(Type.Array(Type.String(), { description: 'cluster node NAME=IP[,IP...] (static membership)' })),
  share: Type.Optional(Type.Array(Type.String(), { description: 'shares RegisterEx accepts (default: any)' })),
  config: Type.Optional(Type.String({ description: 'JSON file with the same settings (command-line values win)' })),
  etcd: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { description: 'join the cluster through etcd: client URL(s), e.g. http://10.0.0.5:2379 (comma-separated or repeated)' })),
  leaseTtl: Type.Optional(Type.Integer({ minimum: 1, maximum: 3600, description: `etcd lease TTL in seconds (default ${DefaultLeaseTtlSeconds}): how long a frozen or cut-off node stays up` })),
  cluster: Type.Optional(Type.String({ minLength: 1, pattern: '^[A-Za-z0-9_.-]+$', description: 'cluster name in etcd (default: default)' })),
  unregisterAfterUnavailable: Type.Optional(Type.Integer({ minimum: 0, description: 'seconds after an UNAVAILABLE notification before the registration is removed (default 5)' })),
}, { additionalProperties: false })

export const witnessMethods = [
  defineMethod({
    name: 'witness.serve',
    summary: 'Run the SMB Witness service (MS-SWN over DCE/RPC) and the endpoint mapper for this file-server node',
    description: 'NTLMSSP/SPNEGO with packet integrity or privacy against --credentials; Kerberos is not supported. ' +
      'Admin commands reach the service through a root-only Unix socket.',
    params: ServeParams,
    result: Type.Object({
      id: Type.String(), node: Type.String(), netNames: Type.Array(Type.String()), listen: Type.Array(Type.String()),
      port: Type.Integer(), epmPort: Type.Integer(), adminSockets: Type.Array(Type.String()), allowAnonymous: Type.Boolean(),
      membership: MembershipView,
    }),
    cli: {
      command: ['witness', 'serve'],
      service: true,
      examples: [[
        'hvcbt witness serve --node FS1 --netname SOFS --listen 10.0.0.11 --credentials /etc/hvcbt/witness-users.json --static-node FS1=10.0.0.11 --static-node FS2=10.0.0.12',
        'serve the witness for node FS1 of a two-node scale-out file server (static membership)',
      ], [
        'hvcbt witness serve --node FS1 --netname SOFS --listen 10.0.0.11 --credentials /etc/hvcbt/witness-users.json --etcd http://10.0.0.5:2379,http://10.0.0.6:2379,http://10.0.0.7:2379',
        'serve the witness for node FS1, joining the cluster through etcd',
      ]],
    },
    async handler(given, ctx) {
      const p = { ...parseConfig(given.config), ...given } as Static<typeof ServeParams>
      if (!p.node) throw new EngineError('--node is required', 'InvalidArgument')
      if (!p.netname?.length) throw new EngineError('--netname is required', 'InvalidArgument')
      if (!p.listen?.length) throw new EngineError('at least one --listen address is required', 'InvalidArgument')
      if (!p.credentials && !p.allowAnonymous) {
        throw new EngineError('pass --credentials FILE (clients authenticate) or --allow-anonymous', 'InvalidArgument')
      }
      const epmPort = p.epmPort ?? 135
      if (p.port === undefined && epmPort === 0) {
        throw new EngineError('without --port the endpoint mapper is needed for clients to find the service', 'InvalidArgument')
      }
      const log = (level: 'error' | 'warning' | 'info' | 'debug', m: string) => {
        try {
          ctx.log(level, m)
        } catch {
          // the call that started the service is over
        }
      }
      const membership = await joinMembership(p as Static<typeof ServeParams> & { node: string; listen: string[] }, log)
      let host: Awaited<ReturnType<typeof startWitnessHost>>
      try {
        host = await startWitnessHost({
          nodeName: p.node, netNames: p.netname, listen: p.listen, port: p.port ?? 0, epmPort, membership,
          ...(p.credentials ? { credentials: p.credentials } : {}), allowAnonymous: p.allowAnonymous === true,
          ...(p.share ? { shares: p.share } : {}), log,
          ...(p.unregisterAfterUnavailable !== undefined ? { unavailableUnregisterMs: p.unregisterAfterUnavailable * 1000 } : {}),
        })
      } catch (e) {
        await membership.close?.()
        throw e
      }
      const svc = host.service
      const cluster = membership instanceof EtcdMembership ? membership : null
      const stopCluster = cluster ? clusterWiring(svc, cluster, log) : () => {}
      const status = (): Static<typeof ServiceStatus> => ({
        node: p.node!, netNames: p.netname!, listen: p.listen!, port: host.port, registrations: svc.registrations().length,
        membership: membershipView(membership),
      })
      const admins: AdminChannel[] = []
      try {
        const handlers = {
          status,
          clients: async () => (cluster ? clusterClients(svc, cluster) : svc.registrations()),
          'move-client': async (a: Record<string, unknown>) => {
            const networkName = a.networkName ? String(a.networkName) : undefined
            if (!cluster) return { notified: svc.moveClient(String(a.client), String(a.to), networkName) }
            return clusterMove(svc, cluster, { kind: 'client', name: String(a.client), to: String(a.to), ...(networkName ? { networkName } : {}) })
          },
          'move-share': async (a: Record<string, unknown>) => {
            if (!cluster) return { notified: svc.moveShare(String(a.share), String(a.to)) }
            return clusterMove(svc, cluster, { kind: 'share', name: String(a.share), to: String(a.to) })
          },
          unregister: (a: Record<string, unknown>) => ({ removed: svc.forceUnregister(String(a.client)) }),
          'node-state': async (a: Record<string, unknown>) => {
            const state = String(a.state)
            if (state !== 'up' && state !== 'down') throw new Error(`state must be up or down, not ${state}`)
            await svc.setNodeState(String(a.node), state)
            return { node: String(a.node), state }
          },
        }
        for (const ip of p.listen) admins.push(await AdminChannel.listen(adminSocketPath(ip), handlers))
      } catch (e) {
        for (const a of admins) await a.close()
        stopCluster()
        await host.close()
        await membership.close?.()
        throw e
      }
      svcEvents(host.service, log)
      const id = `witness:${p.node}`
      addService({
        id, kind: 'witness', description: `SMB Witness for node ${p.node} on ${p.listen.join(', ')} port ${host.port}`,
        stop: async () => {
          for (const a of admins) await a.close()
          stopCluster()
          await host.close()
          await membership.close?.()
        },
      })
      log('info', `witness for ${p.node} (${p.netname.join(', ')}) on ${p.listen.join(', ')} port ${host.port}` +
        (epmPort ? `, endpoint mapper on ${epmPort}` : '') +
        (cluster ? `, cluster '${cluster.status().cluster}' through etcd ${p.etcd!.join(', ')} (lease TTL ${cluster.status().leaseTtlSeconds} s)` : ''))
      return {
        id, node: p.node, netNames: p.netname, listen: p.listen, port: host.port, epmPort,
        adminSockets: admins.map(a => a.path), allowAnonymous: p.allowAnonymous === true, membership: membershipView(membership),
      }
    },
  }),
  defineMethod({
    name: 'witness.status',
    summary: 'State of a running witness service: its membership source (static or etcd), connected or degraded, lease, and the nodes with their states',
    params: Type.Object({ server: Server }, { additionalProperties: false }),
    result: ServiceStatus,
    cli: {
      human: s => [
        `Node          : ${s.node} (${s.netNames.join(', ')}) on ${s.listen.join(', ')} port ${s.port}`,
        `Membership    : ${s.membership.source}${s.membership.cluster ? ` cluster '${s.membership.cluster}' via ${s.membership.endpoints.join(', ')}` : ''}`,
        ...(s.membership.source === 'etcd' ? [
          `Connection    : ${s.membership.connected ? 'connected' : `DEGRADED since ${s.membership.degradedSince} (serving the last known view)`}`,
          `Lease         : ${s.membership.leaseId ?? '-'} (TTL ${s.membership.leaseTtlSeconds} s)`,
        ] : []),
        `Registrations : ${s.registrations} on this node`,
        ...s.membership.nodes.map(n => `  ${n.name.padEnd(12)} ${n.state.padEnd(8)} ${n.addresses.join(', ')}`),
      ].join('\n'),
    },
    async handler({ server }) {
      return (await adminCall(adminSocketPath(server), 'status', {})) as Static<typeof ServiceStatus>
    },
  }),
  defineMethod({
    name: 'witness.stop',
    summary: 'Stop a witness service started by witness.serve in this engine',
    params: Type.Object({ id: Type.String({ minLength: 1 }) }, { additionalProperties: false }),
    result: Type.Object({ id: Type.String(), stopped: Type.Boolean() }),
    cli: { positional: ['id'] },
    async handler({ id }) {
      if (getService(id)?.kind !== 'witness') throw new EngineError(`no witness service with id '${id}'`, 'ObjectNotFound', -32001)
      return { id, stopped: await stopService(id) }
    },
  }),
  defineMethod({
    name: 'witness.clients',
    summary: 'Registrations held by a running witness service, or by every node of its etcd cluster (like Get-SmbWitnessClient)',
    description: 'witnessNodeName is the node holding each registration. On a clustered node the other nodes\' ' +
      'registrations are as they last published them in etcd (within about 2 s).',
    params: Type.Object({ server: Server }, { additionalProperties: false }),
    result: Type.Array(Registration),
    cli: {
      human: r => r.length === 0 ? 'no witness registrations' : [
        `${'CLIENT'.padEnd(16)} ${'WITNESS NODE'.padEnd(12)} ${'FILE SERVER'.padEnd(11)} RESOURCE ADDRESS STATE SENT`,
        ...r.map(x => `${x.clientName.padEnd(16)} ${x.witnessNodeName.padEnd(12)} ${x.fileServerNodeName.padEnd(11)} ` +
          `${x.networkName}${x.shareName ? `\\${x.shareName}` : ''} ${x.ipAddress} ${x.state} ${x.notificationsSent}`),
      ].join('\n'),
    },
    async handler({ server }) {
      return (await adminCall(adminSocketPath(server), 'clients', {})) as Static<typeof Registration>[]
    },
  }),
  defineMethod({
    name: 'witness.move-client',
    summary: 'Tell a client (CLIENT_MOVE) to move to another node, like Move-SmbWitnessClient',
    params: Type.Object({
      client: Type.String({ minLength: 1 }), to: Type.String({ minLength: 1, description: 'destination node' }), server: Server,
      networkName: Type.Optional(Type.String()),
    }, { additionalProperties: false }),
    result: MoveResult,
    async handler(p) {
      return (await adminCall(adminSocketPath(p.server), 'move-client', p)) as Static<typeof MoveResult>
    },
  }),
  defineMethod({
    name: 'witness.move-share',
    summary: 'Tell the clients of a share (SHARE_MOVE, V2) to move to another node',
    params: Type.Object({ share: Type.String({ minLength: 1 }), to: Type.String({ minLength: 1 }), server: Server }, { additionalProperties: false }),
    result: MoveResult,
    async handler(p) {
      return (await adminCall(adminSocketPath(p.server), 'move-share', p)) as Static<typeof MoveResult>
    },
  }),
  defineMethod({
    name: 'witness.unregister',
    summary: 'Force the unregistration of a client (by name or registration id)',
    params: Type.Object({ client: Type.String({ minLength: 1 }), server: Server }, { additionalProperties: false }),
    result: Type.Object({ removed: Type.Integer() }),
    async handler(p) {
      return (await adminCall(adminSocketPath(p.server), 'unregister', p)) as { removed: number }
    },
  }),
  defineMethod({
    name: 'witness.node-state',
    summary: "Override a node's state (down sends RESOURCE_CHANGE to its clients); on a clustered node the override is stored in etcd for every node",
    params: Type.Object({ node: Type.String({ minLength: 1 }), state: Type.Union([Type.Literal('up'), Type.Literal('down')]), server: Server }, { additionalProperties: false }),
    result: Type.Object({ node: Type.String(), state: Type.String() }),
    async handler(p) {
      return (await adminCall(adminSocketPath(p.server), 'node-state', p)) as { node: string; state: string }
    },
  }),
  defineMethod({
    name: 'witness.user.add',
    summary: 'Add or replace a user in a witness credential store (the file keeps NT hashes, mode 0600)',
    params: Type.Object({
      name: Type.String({ minLength: 1 }), credentials: Type.String({ minLength: 1, description: 'credential store file' }),
      password: Creds.password, passwordStdin: Creds.passwordStdin,
    }, { additionalProperties: false }),
    result: Type.Object({ name: Type.String(), credentials: Type.String(), replaced: Type.Boolean() }),
    cli: { command: ['witness', 'user', 'add'], positional: ['name'], rpcOnlyParams: ['password'] },
    async handler(p, ctx) {
      const password = await readPassword(p, ctx, `password for ${p.name}`)
      return { name: p.name, credentials: p.credentials, replaced: addUser(p.credentials, p.name, password) }
    },
  }),
  defineMethod({
    name: 'witness.interfaces',
    summary: 'GetInterfaceList from a witness server (like Get-WitnessInterface)',
    params: Type.Object({
      server: Server, port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })), epmPort: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
      ...Creds,
    }, { additionalProperties: false }),
    result: Type.Array(Type.Object({
      name: Type.String(), state: Type.String(), ipv4: Type.String(), ipv6: Type.String(), witness: Type.Boolean(), version: Type.Integer(),
    })),
    cli: { rpcOnlyParams: ['password'] },
    async handler(p, ctx) {
      const auth = await clientAuth(p, ctx)
      const port = p.port ?? (await epmMap(p.server, swn.WitnessSyntax, p.epmPort ?? 135))
      const c = await RpcClient.connect({ host: p.server, port, syntax: swn.WitnessSyntax, ...(auth ? { auth } : {}) })
      try {
        const out = swn.GetInterfaceList.decodeOut(await c.call(swn.GetInterfaceList.opnum, swn.GetInterfaceList.encodeIn({}), ctx.signal))
        if (out.status !== 0) throw new EngineError(`GetInterfaceList failed with status 0x${out.status.toString(16)}`, 'InvalidResult')
        return (out.interfaceList?.interfaces ?? []).map(i => ({
          name: i.interfaceGroupName, state: i.state === 1 ? 'available' : i.state === 0xff ? 'unavailable' : 'unknown',
          ipv4: i.ipv4, ipv6: i.ipv6, witness: (i.flags & swn.InterfaceFlag.interfaceWitness) !== 0, version: i.version,
        }))
      } finally {
        c.close()
      }
    },
  }),
  defineMethod({
    name: 'witness.client.register',
    summary: 'Register this host with a witness (client side) and keep listening for notifications',
    params: Type.Object({
      netName: Type.String({ minLength: 1, description: "the file server's network name" }),
      fileServer: Type.String({ minLength: 1, description: 'address of the file-server node in use' }),
      clientName: Type.Optional(Type.String({ description: 'default: this host name' })),
      witness: Type.Optional(Type.Array(Type.String(), { description: 'other witness addresses to ask for the interface list' })),
      share: Type.Optional(Type.String()),
      port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
      epmPort: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
      keepAlive: Type.Optional(Type.Integer({ minimum: 0, description: 'keep-alive seconds (V2)' })),
      ...Creds,
    }, { additionalProperties: false }),
    result: ClientStatus,
    cli: { command: ['witness', 'client', 'register'], service: true, rpcOnlyParams: ['password'] },
    async handler(p, ctx) {
      const auth = await clientAuth(p, ctx)
      const clientName = (p.clientName ?? hostname().split('.')[0]!).toUpperCase()
      const id = `witness-client:${p.netName}:${clientName}`
      if (clients.has(id)) throw new EngineError(`${id} is already registered`, 'ResourceExists')
      const c = new WitnessClient({
        netName: p.netName, fileServerAddress: p.fileServer, clientName,
        ...(p.share ? { shareName: p.share } : {}), ...(p.witness ? { witnessServers: p.witness } : {}), ...(p.port ? { port: p.port } : {}), ...(p.epmPort ? { epmPort: p.epmPort } : {}),
        ...(auth ? { auth } : {}), keepAliveSeconds: p.keepAlive ?? 0,
      })
      const log = (level: 'info' | 'warning', m: string) => {
        try {
          ctx.log(level, m)
        } catch {
          // the registering call is over
        }
      }
      c.on('registered', s => log('info', `witness: registered with ${s.witnessNode} (${s.witnessAddress}) for ${s.fileServerAddress}`))
      c.on('notification', () => log('warning', `witness: ${c.status().lastNotification?.type}: ${c.status().lastNotification?.detail}`))
      c.on('error', e => log('warning', `witness: ${(e as Error).message}; retrying`))
      const first = new Promise<void>((resolve, reject) => {
        c.once('registered', () => resolve())
        setTimeout(() => reject(new EngineError(`no witness registration after 15 s: ${c.status().lastError ?? 'no answer'}`, 'OperationTimeout')), 15000).unref()
      })
      clients.set(id, c)
      c.start()
      try {
        await first
      } catch (e) {
        clients.delete(id)
        await c.stop()
        throw e
      }
      addService({ id, kind: 'witness-client', description: `witness registration of ${clientName} for ${p.netName}`, stop: async () => {
        clients.delete(id)
        await c.stop()
      } })
      return { id, ...c.status() }
    },
  }),
  defineMethod({
    name: 'witness.client.status',
    summary: 'Witness registrations of this engine (client side): witness node, file-server node, state, last notification',
    params: Type.Object({}, { additionalProperties: false }),
    result: Type.Array(ClientStatus),
    async handler() {
      return [...clients.entries()].map(([id, c]) => ({ id, ...c.status() }))
    },
  }),
  defineMethod({
    name: 'witness.client.unregister',
    summary: 'Stop a client-side witness registration',
    params: Type.Object({ id: Type.String({ minLength: 1 }) }, { additionalProperties: false }),
    result: Type.Object({ id: Type.String(), stopped: Type.Boolean() }),
    cli: { positional: ['id'] },
    async handler({ id }) {
      if (!clients.has(id)) throw new EngineError(`no witness registration '${id}'`, 'ObjectNotFound', -32001)
      return { id, stopped: await stopService(id) }
    },
  }),
]

type Log = (level: 'error' | 'warning' | 'info' | 'debug', m: string) => void

/** Static membership (alone, or the --static-node list), or the etcd cluster; never one in place of the other. */
async function joinMembership(p: Static<typeof ServeParams> & { node: string; listen: string[] }, log: Log): Promise<MembershipSource> {
  const endpoints = (p.etcd ?? []).flatMap(u => u.split(',')).map(u => u.trim()).filter(Boolean)
  if (endpoints.length === 0) {
    if (p.leaseTtl !== undefined || p.cluster !== undefined) throw new EngineError('--lease-ttl and --cluster need --etcd', 'InvalidArgument')
    const membership = StaticMembership.parse(p.staticNode?.length ? p.staticNode : [`${p.node}=${p.listen.join(',')}`])
    if (!membership.nodes().some(n => n.name.toUpperCase() === p.node.toUpperCase())) {
      throw new EngineError(`--static-node does not list this node (${p.node})`, 'InvalidArgument')
    }
    return membership
  }
  if (p.staticNode?.length) throw new EngineError('--static-node and --etcd exclude each other: with etcd the nodes announce themselves', 'InvalidArgument')
  for (const u of endpoints) {
    if (!/^https?:\/\/[^/\s]+\/?$/.test(u)) throw new EngineError(`--etcd ${u}: expected a client URL such as http://10.0.0.5:2379`, 'InvalidArgument')
  }
  try {
    return await EtcdMembership.join({
      endpoints, self: { name: p.node, addresses: p.listen }, leaseTtlSeconds: p.leaseTtl ?? DefaultLeaseTtlSeconds,
      ...(p.cluster ? { cluster: p.cluster } : {}),
      log: (level, m) => log(level, `witness cluster: ${m}`),
    })
  } catch (e) {
    // a cluster node never runs alone by mistake: no etcd, no service
    throw new EngineError(`${(e as Error).message} (the service is not started; without --etcd it would run alone)`, 'ConnectionError')
  }
}

function svcEvents(svc: import('../../witness/swn/server.js').WitnessService, log: (l: 'info', m: string) => void): void {
  svc.on('registered', r => log('info', `witness: ${r.clientName} registered for ${r.networkName} on ${r.fileServerNodeName} (${r.principal ?? 'anonymous'})`))
  svc.on('unregistered', r => log('info', `witness: ${r.clientName} unregistered`))
}

export type { WitnessClientStatus }
