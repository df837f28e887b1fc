import t from 'tap'
import { AssociationGroup } from '../../src/witness/dcerpc/association.js'
import type { RpcCall } from '../../src/witness/dcerpc/server.js'
import { StaticMembership } from '../../src/witness/membership/static.js'
import { WitnessService } from '../../src/witness/swn/server.js'
import * as swn from '../../src/witness/swn/swn-idl.js'
import { decodeNotification } from '../../src/witness/swn/swn-messages.js'

const S = swn.WitnessStatus

function setup(t: Tap.Test, opts: Partial<ConstructorParameters<typeof WitnessService>[0]> = {}, nodes = ['FS1=10.0.0.1', 'FS2=10.0.0.2,fd00::2', 'FS3=10.0.0.3']) {
  const membership = StaticMembership.parse(nodes)
  const svc = new WitnessService({ nodeName: 'FS1', netNames: ['SOFS', 'sofs.lab'], membership, ...opts })
  t.teardown(() => svc.close())
  const iface = svc.rpcInterface()
  const group = new AssociationGroup(1)
  let callId = 0
  const call = (opnum: number, stub: Uint8Array, signal = new AbortController().signal) => iface.dispatch(opnum, stub, {
    callId: ++callId, opnum, group, signal, remoteAddress: '10.0.0.9', localAddress: '10.0.0.1', authLevel: 5, principal: 'LAB\\hv',
  } satisfies RpcCall)
  const registerEx = async (p: Partial<Parameters<typeof swn.RegisterEx.encodeIn>[0]> = {}) => swn.RegisterEx.decodeOut(await call(4, swn.RegisterEx.encodeIn({
    version: swn.WitnessVersion.v2, netName: 'SOFS', shareName: 'vms', ipAddress: '10.0.0.2', clientComputerName: 'HV1', flags: 0, keepAliveTimeout: 0, ...p,
  })))
  const notify = async (h: Uint8Array, signal?: AbortSignal) => swn.AsyncNotify.decodeOut(await call(3, swn.AsyncNotify.encodeIn({ contextHandle: h }), signal))
  return { membership, svc, call, registerEx, notify, group }
}

t.test('interface list: one entry per address, INTERFACE_WITNESS only off this node, IPv6', async t => {
  const { call } = setup(t)
  const out = swn.GetInterfaceList.decodeOut(await call(0, new Uint8Array()))
  t.equal(out.status, 0)
  const l = out.interfaceList!.interfaces!
  t.same(l.map(i => [i.interfaceGroupName, i.ipv4, i.ipv6, i.flags]), [
    ['FS1', '10.0.0.1', '::', 1], ['FS2', '10.0.0.2', '::', 5], ['FS2', '0.0.0.0', 'fd00::2', 6], ['FS3', '10.0.0.3', '::', 5],
  ])
  t.ok(l.every(i => i.state === swn.InterfaceState.available))
})

t.test('empty list -> ERROR_NO_MORE_ITEMS; no node available -> the call waits until one is', async t => {
  const empty = setup(t, {}, [])
  t.equal(swn.GetInterfaceList.decodeOut(await empty.call(0, new Uint8Array())).status, S.noMoreItems)
  const { membership, call } = setup(t, {}, ['FS1=10.0.0.1', 'FS2=10.0.0.2'])
  membership.setNodeState('FS1', 'down')
  membership.setNodeState('FS2', 'down')
  let answered = false
  const p = call(0, new Uint8Array()).then(b => ((answered = true), swn.GetInterfaceList.decodeOut(b)))
  await new Promise(r => setTimeout(r, 100))
  t.notOk(answered, 'held while nothing is available')
  membership.setNodeState('FS2', 'up')
  const out = await p
  t.same(out.interfaceList!.interfaces!.map(i => i.state), [0xff, 1])
})

t.test('register validation and status codes', async t => {
  const { call, registerEx } = setup(t, { shares: ['vms'] })
  const reg = async (p: object) => swn.Register.decodeOut(await call(1, swn.Register.encodeIn({
    version: swn.WitnessVersion.v1, netName: 'SOFS', ipAddress: '10.0.0.2', clientComputerName: 'HV1', ...p,
  }))).status
  t.equal(await reg({}), S.success)
  t.equal(await reg({ netName: 'sofs.LAB' }), S.success, 'second net name, case-insensitive')
  t.equal(await reg({ version: swn.WitnessVersion.v2 }), S.revisionMismatch)
  t.equal(await reg({ netName: null }), S.invalidParameter)
  t.equal(await reg({ ipAddress: null }), S.invalidParameter)
  t.equal(await reg({ clientComputerName: null }), S.invalidParameter)
  t.equal(await reg({ netName: 'OTHER' }), S.invalidParameter)
  t.equal(await reg({ ipAddress: '10.9.9.9' }), S.invalidState)
  t.equal(await reg({ ipAddress: 'FD00::2' }), S.success, 'IPv6 address, any case')
  t.equal((await registerEx({ version: swn.WitnessVersion.v1 })).status, S.revisionMismatch)
  t.equal((await registerEx({ shareName: 'nope' })).status, S.invalidState, 'unknown share')
  t.equal((await registerEx({ shareName: null })).status, S.success, 'no share')
  t.equal(swn.UnRegister.decodeOut(await call(2, swn.UnRegister.encodeIn({ contextHandle: new Uint8Array(20) }))).status, S.invalidParameter)
  t.equal((await setup(t).notify(new Uint8Array(20))).status, S.notFound)
})

t.test('notifications: resource change, IP change, share move, client move; queueing; unregister completes a held call', async t => {
  const { membership, svc, registerEx, notify, call } = setup(t, { unavailableUnregisterMs: 60_000 })
  const a = await registerEx({ clientComputerName: 'HVA', flags: swn.RegisterExFlag.ipNotification })
  const b = await registerEx({ clientComputerName: 'HVB', ipAddress: '10.0.0.3', shareName: 'other' })
  // queued while no AsyncNotify is held
  membership.setNodeState('FS2', 'down')
  const n1 = (await notify(a.contextHandle)).response!
  t.same(decodeNotification(n1.messageType, n1.numberOfMessages, n1.messageBuffer!), { type: 1, changes: [{ changeType: 0xff, resourceName: 'SOFS' }] })
  const n2 = (await notify(a.contextHandle)).response!
  t.same(decodeNotification(n2.messageType, n2.numberOfMessages, n2.messageBuffer!), {
    type: 4, lists: [[{ flags: 0x1 | 0x10, ipv4: '10.0.0.2', ipv6: '::' }, { flags: 0x2 | 0x10, ipv4: '0.0.0.0', ipv6: 'fd00::2' }]],
  }, 'IP_CHANGE with OFFLINE addresses for the IP-notification registration')
  const held = notify(a.contextHandle)
  t.equal((await notify(a.contextHandle)).status, S.invalidState, 'a second held AsyncNotify is refused')
  t.equal(svc.moveShare('vms', 'FS3'), 1)
  const n3 = (await held).response!
  t.same(decodeNotification(n3.messageType, n3.numberOfMessages, n3.messageBuffer!), { type: 3, lists: [[{ flags: 1, ipv4: '10.0.0.3', ipv6: '::' }]] })
  const heldB = notify(b.contextHandle)
  t.equal(svc.moveClient('hvb', 'FS2'), 1, 'client names compare case-insensitively')
  const n4 = (await heldB).response!
  t.equal(n4.messageType, swn.MessageType.clientMove)
  const info = svc.registrations().find(r => r.clientName === 'HVA')!
  t.match(info, { notificationsSent: 3, fileServerNodeName: 'FS2', shareName: 'vms', principal: 'LAB\\hv', version: swn.WitnessVersion.v2 })
  const heldA = notify(a.contextHandle)
  t.equal(swn.UnRegister.decodeOut(await call(2, swn.UnRegister.encodeIn({ contextHandle: a.contextHandle }))).status, S.success)
  t.equal((await heldA).status, S.notFound, 'held call completes with ERROR_NOT_FOUND')
  t.throws(() => svc.moveClient('HVB', 'FS9'), /no node named FS9/)
  t.equal(svc.forceUnregister('HVB'), 1)
  t.equal(svc.registrations().length, 0)
})

t.test('expiry: idle registrations go, held ones stay; UNAVAILABLE leads to a forced unregister', async t => {
  const { membership, svc, registerEx, notify, group } = setup(t, { idleExpiryMs: 200, unavailableUnregisterMs: 200 })
  const idle = await registerEx({ clientComputerName: 'IDLE', ipAddress: '10.0.0.3' })
  const busy = await registerEx({ clientComputerName: 'BUSY', ipAddress: '10.0.0.3' })
  const ac = new AbortController()
  const held = notify(busy.contextHandle, ac.signal)
  await new Promise(r => setTimeout(r, 500))
  t.same(svc.registrations().map(r => r.clientName), ['BUSY'], 'idle registration expired, held one kept')
  t.equal(group.handleCount, 1)
  ac.abort()
  await t.rejects(held, /cancelled/, 'cancel (orphaned / co_cancel) ends the held call')
  t.equal(svc.registrations()[0]!.notificationsCancelled, 1)
  const down = await registerEx({ clientComputerName: 'DOWN' })
  const p = notify(down.contextHandle)
  membership.setNodeState('FS2', 'down')
  t.equal((await p).response!.messageType, 1)
  await new Promise(r => setTimeout(r, 500))
  t.notOk(svc.registrations().some(r => r.clientName === 'DOWN'), 'forced unregister after UNAVAILABLE')
  // Association group ends -> rundown removes the rest.
  await registerEx({ clientComputerName: 'RUN' })
  group.rundown()
  t.equal(svc.registrations().length, 0)
})
