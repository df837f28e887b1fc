/**
 * A witness service in an etcd cluster: the glue between WitnessService (registrations, notifications) and
 * EtcdMembership (who is alive, moves, published registrations), used by `witness.serve --etcd`.
 *
 * - Moves requested on any node reach every node through etcd; each applies them to the registrations it holds
 *   and acknowledges with a count, so the asking node can report the cluster-wide total.
 * - Each node publishes its registrations (debounced after changes, and every 2 s for fresh counters and after a
 *   re-granted lease); `clients` merges this node's live list with the others' published ones.
 * - membershipView() is the status shape for both sources (static and etcd).
 */
import type { MembershipSource } from '../membership/membership.js'
import { EtcdMembership, type MoveCommand } from '../membership/etcd.js'
import type { RegistrationInfo, WitnessService } from './server.js'

type Log = (level: 'error' | 'warning' | 'info' | 'debug', m: string) => void

export interface MembershipView {
  /** 'static' or 'etcd'. */
  source: string
  cluster: string | null
  /** false while etcd is unreachable (degraded: the last view is served). */
  connected: boolean
  degradedSince: string | null
  leaseId: string | null
  leaseTtlSeconds: number | null
  endpoints: string[]
  nodes: Array<{ name: string; addresses: string[]; state: string }>
}

export function membershipView(m: MembershipSource): MembershipView {
  const nodes = m.nodes().map(n => ({ name: n.name, addresses: n.addresses, state: n.state }))
  if (m instanceof EtcdMembership) {
    const st = m.status()
    return {
      source: 'etcd', cluster: st.cluster, connected: st.connected, degradedSince: st.degradedSince, leaseId: st.leaseId,
      leaseTtlSeconds: st.leaseTtlSeconds, endpoints: st.endpoints, nodes,
    }
  }
  return { source: 'static', cluster: null, connected: true, degradedSince: null, leaseId: null, leaseTtlSeconds: null, endpoints: [], nodes }
}

/**
 * Ties a clustered service to etcd: moves requested on any node are applied here (and acknowledged with the number
 * of registrations told), and this node's registrations are published (debounced after each change, and every
 * few seconds so counters stay fresh and a re-granted lease gets them again). Returns the undo.
 */
export function clusterWiring(svc: WitnessService, cluster: EtcdMembership, log: Log): () => void {
  const onMove = (m: MoveCommand) => {
    let notified = 0
    try {
      notified = m.kind === 'client' ? svc.moveClient(m.name, m.to, m.networkName) : svc.moveShare(m.name, m.to)
    } catch (e) {
      log('warning', `witness cluster: move ${m.id} (${m.kind} ${m.name} -> ${m.to}) not applied: ${(e as Error).message}`)
    }
    if (notified) log('info', `witness cluster: ${m.kind} move of ${m.name} to ${m.to}: ${notified} registration(s) told`)
    cluster.ackMove(m.id, notified)
  }
  cluster.onMove(onMove)
  let timer: NodeJS.Timeout | null = null
  const publish = () => {
    timer = null
    cluster.publishRegistrations(svc.registrations())
  }
  const soon = () => {
    timer ??= setTimeout(publish, 100)
  }
  const events = ['registered', 'unregistered', 'notified'] as const
  for (const e of events) svc.on(e, soon)
  const refresh = setInterval(publish, 2000)
  refresh.unref()
  cluster.on('status', st => log(st.connected ? 'info' : 'warning', st.connected
    ? 'witness cluster: etcd reachable again'
    : 'witness cluster: etcd unreachable, serving the last known membership (degraded)'))
  publish()
  return () => {
    cluster.off('move', onMove)
    for (const e of events) svc.off(e, soon)
    clearInterval(refresh)
    if (timer) clearTimeout(timer)
  }
}

/** Every node's registrations: this node's own (current), the others' as published in etcd. */
export async function clusterClients(svc: WitnessService, cluster: EtcdMembership) {
  const own = svc.registrations()
  const me = svc.opts.nodeName.toUpperCase()
  let published: Array<{ node: string; registrations: unknown[] }>
  try {
    published = await cluster.clusterRegistrations()
  } catch (e) {
    throw new Error(`etcd unreachable, only this node's registrations are known (${own.length}): ${(e as Error).message}`)
  }
  const others = published.filter(x => x.node !== me).flatMap(x => x.registrations as RegistrationInfo[])
  return [...own, ...others]
}

/** A move through etcd; resolves once every node that is up has applied it (or after 5 s) with the total told. */
export async function clusterMove(
  svc: WitnessService, cluster: EtcdMembership, cmd: Omit<MoveCommand, 'id'>,
): Promise<{ notified: number; moveId: string; nodes: Array<{ node: string; notified: number }> }> {
  if (!svc.opts.membership.nodes().some(n => n.name.toUpperCase() === cmd.to.toUpperCase())) throw new Error(`no node named ${cmd.to}`)
  const m = await cluster.requestMove(cmd)
  const acks = await cluster.awaitMoveAcks(m.id)
  return { notified: acks.reduce((a, x) => a + x.notified, 0), moveId: m.id, nodes: acks }
}
