// Membership views -> notifications, in process: exactly once per change per registration however the views
// arrive (repeated, unchanged), and IP_CHANGE when an address moves from one node to another (MS-SWN IPADDR_INFO
// flags: V4/V6 plus ONLINE 0x8 / OFFLINE 0x10, addresses in network order).
import t from 'tap'
import { EventEmitter } from 'node:events'
import { AssociationGroup } from '../../src/witness/dcerpc/association.js'
import type { RpcCall } from '../../src/witness/dcerpc/server.js'
import type { MembershipSource, NodeInfo } from '../../src/witness/membership/membership.js'
import { WitnessService } from '../../src/witness/swn/server.js'
import * as swn from '../../src/witness/swn/swn-idl.js'
import { decodeNotification, encodeNotification, type Notification } from '../../src/witness/swn/swn-messages.js'

/** A membership source a test drives view by view. */
class ScriptedMembership extends EventEmitter implements MembershipSource {
  constructor(private view: NodeInfo[]) {
    super()
  }
  nodes(): NodeInfo[] {
    return this.view.map(n => ({ ...n, addresses: [...n.addresses] }))
  }
  set(view: NodeInfo[]): void {
    this.view = view
    this.emit('change', this.nodes())
  }
}

const up = (name: string, ...addresses: string[]): NodeInfo => ({ name, addresses, state: 'up' })
const down = (name: string, ...addresses: string[]): NodeInfo => ({ name, addresses, state: 'down' })

function setup(t: Tap.Test, view: NodeInfo[]) {
  const membership = new ScriptedMembership(view)
  const svc = new WitnessService({ nodeName: 'W', netNames: ['SOFS'], membership, unavailableUnregisterMs: 60_000 })
  t.teardown(() => svc.close())
  const group = new AssociationGroup(7)
  let callId = 0
  const call = (opnum: number, stub: Uint8Array) => svc.rpcInterface().dispatch(opnum, stub, {
    callId: ++callId, opnum, group, signal: new AbortController().signal, remoteAddress: '10.0.0.9', localAddress: '10.0.0.10',
    authLevel: 5, principal: null,
  } satisfies RpcCall)
  const register = async (client: string, ipAddress: string, flags = 0) => swn.RegisterEx.decodeOut(await call(4, swn.RegisterEx.encodeIn({
    version: swn.WitnessVersion.v2, netName: 'SOFS', shareName: null, ipAddress, clientComputerName: client, flags, keepAliveTimeout: 0,
  }))).contextHandle
  /** AsyncNotify calls still held, per handle: the next drain collects what completes them. */
  const held = new Map<string, Promise<swn.RespAsyncNotify | null>>()
  /** Every notification queued for `h` (AsyncNotify until one stays held). */
  const drain = async (h: Uint8Array): Promise<Notification[]> => {
    const key = Buffer.from(h).toString('hex')
    const out: Notification[] = []
    for (;;) {
      const p = held.get(key) ?? call(3, swn.AsyncNotify.encodeIn({ contextHandle: h })).then(b => swn.AsyncNotify.decodeOut(b).response)
      held.set(key, p)
      const r = await Promise.race([p, new Promise<'held'>(r => setTimeout(() => r('held'), 30))])
      if (r === 'held') return out // the call stays held; the next notification completes it
      held.delete(key)
      out.push(decodeNotification(r!.messageType, r!.numberOfMessages, r!.messageBuffer!))
    }
  }
  return { membership, svc, register, drain }
}

t.test('exactly once per change per registration, whatever the views repeat', async t => {
  const { membership, register, drain, svc } = setup(t, [up('A', '10.0.0.1'), up('B', '10.0.0.2')])
  const h1 = await register('HV1', '10.0.0.1')
  const h2 = await register('HV2', '10.0.0.2')
  await drain(h1)
  await drain(h2)
  membership.set([down('A', '10.0.0.1'), up('B', '10.0.0.2')])
  membership.set([down('A', '10.0.0.1'), up('B', '10.0.0.2')]) // repeated view (e.g. a re-read after an outage)
  membership.set([down('A', '10.0.0.1'), up('B', '10.0.0.2'), up('C', '10.0.0.3')]) // another node joins
  const n1 = await drain(h1)
  t.same(n1, [{ type: 1, changes: [{ changeType: 0xff, resourceName: 'SOFS' }] }], 'HV1: one UNAVAILABLE')
  t.same(await drain(h2), [], 'HV2 (on B) told nothing')
  membership.set([up('A', '10.0.0.1'), up('B', '10.0.0.2'), up('C', '10.0.0.3')])
  t.same((await drain(h1)).map(n => n.type === 1 && n.changes[0]!.changeType), [1], 'HV1: one AVAILABLE')
  t.equal(svc.registrations().find(r => r.clientName === 'HV1')!.notificationsSent, 2)
})

t.test('an address moving between nodes: IP_CHANGE OFFLINE on the old node, ONLINE on the new one', async t => {
  const { membership, register, drain, svc } = setup(t, [up('A', '10.0.0.1', '10.0.0.11'), up('B', '10.0.0.2', 'fd00::2')])
  const ip = swn.RegisterExFlag.ipNotification
  const onA = await register('ONA', '10.0.0.1', ip)
  const onB = await register('ONB', '10.0.0.2', ip)
  const follows = await register('MOVER', '10.0.0.11', ip)
  const plain = await register('PLAIN', '10.0.0.1')
  for (const h of [onA, onB, follows, plain]) await drain(h)
  // 10.0.0.11 moves from A to B
  membership.set([up('A', '10.0.0.1'), up('B', '10.0.0.2', 'fd00::2', '10.0.0.11')])
  t.same(await drain(onA), [{ type: 4, lists: [[{ flags: 0x1 | 0x10, ipv4: '10.0.0.11', ipv6: '::' }]] }], 'A\'s registration: the address went OFFLINE')
  t.same(await drain(onB), [{ type: 4, lists: [[{ flags: 0x1 | 0x8, ipv4: '10.0.0.11', ipv6: '::' }]] }], 'B\'s registration: it came ONLINE')
  t.same(await drain(follows), [{ type: 4, lists: [[{ flags: 0x1 | 0x8, ipv4: '10.0.0.11', ipv6: '::' }]] }], 'the registration of the moved address: ONLINE at its new node')
  t.same(await drain(plain), [], 'no IP_CHANGE without WITNESS_REGISTER_IP_NOTIFICATION')
  t.equal(svc.registrations().find(r => r.clientName === 'MOVER')!.fileServerNodeName, 'B', 'and follows it to B')
  // the moved address's registration now follows B's state, not A's
  membership.set([down('A', '10.0.0.1'), up('B', '10.0.0.2', 'fd00::2', '10.0.0.11')])
  t.same(await drain(follows), [], 'A going down no longer concerns it')
  t.same((await drain(onA)).map(n => n.type), [1, 4], 'A\'s registration: RESOURCE_CHANGE, IP_CHANGE')
  membership.set([down('A', '10.0.0.1'), down('B', '10.0.0.2', 'fd00::2', '10.0.0.11')])
  const n = await drain(follows)
  t.same(n[0], { type: 1, changes: [{ changeType: 0xff, resourceName: 'SOFS' }] })
  t.same(n[1], { type: 4, lists: [[
    { flags: 0x1 | 0x10, ipv4: '10.0.0.2', ipv6: '::' }, { flags: 0x2 | 0x10, ipv4: '0.0.0.0', ipv6: 'fd00::2' },
    { flags: 0x1 | 0x10, ipv4: '10.0.0.11', ipv6: '::' },
  ]] }, 'B down: all of B\'s addresses OFFLINE, IPv6 flagged V6')
  // the wire layout: Length 12 + 24n, Reserved 0, count, then Flags | IPv4 | IPv6 in network order
  const wire = encodeNotification(n[1]!).buffer
  t.equal(wire.readUInt32LE(0), 12 + 24 * 3)
  t.equal(wire.readUInt32LE(4), 0)
  t.equal(wire.readUInt32LE(8), 3)
  t.same([...wire.subarray(16, 20)], [10, 0, 0, 2], 'IPv4 in network order')
})

t.test('an address that vanishes from every node makes its registrations UNAVAILABLE', async t => {
  const { membership, register, drain } = setup(t, [up('A', '10.0.0.1', '10.0.0.11'), up('B', '10.0.0.2')])
  const h = await register('HV', '10.0.0.11', swn.RegisterExFlag.ipNotification)
  await drain(h)
  membership.set([up('A', '10.0.0.1'), up('B', '10.0.0.2')])
  const n = await drain(h)
  t.same(n.map(x => x.type), [4, 1], 'IP_CHANGE (OFFLINE) then RESOURCE_CHANGE')
  t.same(n[0], { type: 4, lists: [[{ flags: 0x1 | 0x10, ipv4: '10.0.0.11', ipv6: '::' }]] })
  t.same(n[1], { type: 1, changes: [{ changeType: 0xff, resourceName: 'SOFS' }] })
})
