import t from 'tap'
import { connect, type Socket } from 'node:net'
import { PduFramer } from '../../src/witness/dcerpc/framing.js'
import {
  ContextResult, FaultStatus, Ndr20Syntax, Ndr64Syntax, PType, Pfc, ProviderReason, decodePdu, encodePdu,
  type BindAckPdu, type Pdu, type SyntaxId,
} from '../../src/witness/dcerpc/pdu.js'
import { RpcClient } from '../../src/witness/dcerpc/client.js'
import { StaticMembership } from '../../src/witness/membership/static.js'
import { startWitnessHost } from '../../src/witness/swn/witness-host.js'
import * as swn from '../../src/witness/swn/swn-idl.js'

/** A raw DCE/RPC peer: send PDUs, read PDUs, see the connection close. */
class Raw {
  private framer = new PduFramer(65535)
  private queue: Buffer[] = []
  private wake: (() => void) | null = null
  closed = false
  constructor(readonly s: Socket) {
    s.on('data', d => {
      this.queue.push(...this.framer.push(d))
      this.wake?.()
    })
    s.on('close', () => {
      this.closed = true
      this.wake?.()
    })
    s.on('error', () => {})
  }
  static open(port: number): Promise<Raw> {
    return new Promise(r => {
      const s = connect(port, '127.0.0.1', () => r(new Raw(s)))
    })
  }
  send(p: Pdu | Buffer): void {
    this.s.write(Buffer.isBuffer(p) ? p : encodePdu(p))
  }
  async next(ms = 3000): Promise<Pdu | null> {
    const end = Date.now() + ms
    while (this.queue.length === 0 && !this.closed && Date.now() < end) {
      await new Promise<void>(r => {
        const timer = setTimeout(r, 50)
        this.wake = () => {
          clearTimeout(timer)
          r()
        }
      })
    }
    const b = this.queue.shift()
    return b ? decodePdu(b) : null
  }
  async closedSoon(ms = 2000): Promise<boolean> {
    const end = Date.now() + ms
    while (!this.closed && Date.now() < end) await new Promise(r => setTimeout(r, 20))
    return this.closed
  }
}

const bind = (contexts: { id: number; syntaxes: SyntaxId[] }[], assocGroupId = 0, callId = 1): Pdu => ({
  ptype: PType.bind, flags: Pfc.first | Pfc.last | Pfc.concMpx, callId, maxXmitFrag: 4280, maxRecvFrag: 4280, assocGroupId,
  contexts: contexts.map(c => ({ contextId: c.id, abstractSyntax: swn.WitnessSyntax, transferSyntaxes: c.syntaxes })),
})
const request = (callId: number, opnum: number, stub: Uint8Array, flags = Pfc.first | Pfc.last, contextId = 0): Pdu => ({
  ptype: PType.request, flags, callId, allocHint: stub.length, contextId, opnum, stub,
})

t.test('DCE/RPC runtime behaviour', async t => {
  const membership = StaticMembership.parse(['FS1=127.0.0.1', 'FS2=127.0.0.2'])
  const host = await startWitnessHost({
    nodeName: 'FS1', netNames: ['SOFS'], listen: ['127.0.0.1'], port: 0, epmPort: 0, membership, allowAnonymous: true,
    limits: { maxStubBytes: 8192, maxCallsPerConnection: 4 },
  })
  t.teardown(() => host.close())
  const port = host.port
  const registerStub = swn.Register.encodeIn({ version: swn.WitnessVersion.v1, netName: 'SOFS', ipAddress: '127.0.0.1', clientComputerName: 'RAW' })

  t.test('NDR64 is refused politely, NDR20 accepted, feature negotiation acknowledged', async t => {
    const c = await Raw.open(port)
    t.teardown(() => c.s.destroy())
    const btfn = { uuid: '6cb71c2c-9812-4540-0300-000000000000', major: 1, minor: 0 }
    c.send(bind([{ id: 0, syntaxes: [Ndr64Syntax] }, { id: 1, syntaxes: [Ndr64Syntax, Ndr20Syntax] }, { id: 2, syntaxes: [btfn] }]))
    const ack = (await c.next()) as BindAckPdu
    t.equal(ack.ptype, PType.bindAck)
    t.same(ack.results.map(r => [r.result, r.reason]), [
      [ContextResult.providerRejection, ProviderReason.proposedTransferSyntaxesNotSupported],
      [ContextResult.acceptance, 0],
      [ContextResult.negotiateAck, 2],
    ])
    t.equal(ack.results[1]!.transferSyntax.uuid, Ndr20Syntax.uuid)
    t.ok(ack.flags & Pfc.concMpx, 'CONC_MPX echoed')
    t.equal(ack.secondaryAddress, String(port))
    c.send(request(2, 0, new Uint8Array(), Pfc.first | Pfc.last, 0))
    const f = await c.next()
    t.equal(f?.ptype, PType.fault, 'call on the rejected NDR64 context faults')
    t.equal(f?.ptype === PType.fault && f.status, FaultStatus.unknownInterface)
    c.send(request(3, 0, new Uint8Array(), Pfc.first | Pfc.last, 1))
    t.equal((await c.next())?.ptype, PType.response, 'call on the NDR20 context answered')
  })

  t.test('request fragments are reassembled; unknown opnum faults; limits close the connection', async t => {
    const c = await Raw.open(port)
    t.teardown(() => c.s.destroy())
    c.send(bind([{ id: 0, syntaxes: [Ndr20Syntax] }]))
    await c.next()
    const a = registerStub.subarray(0, 10)
    const b = registerStub.subarray(10, 30)
    const d = registerStub.subarray(30)
    c.send(request(5, 1, a, Pfc.first))
    c.send(request(5, 1, b, 0))
    c.send(request(5, 1, d, Pfc.last))
    const r = await c.next()
    t.equal(r?.ptype, PType.response)
    t.equal(r?.ptype === PType.response && swn.Register.decodeOut(r.stub).status, 0, 'fragmented Register succeeded')
    c.send(request(6, 9, new Uint8Array()))
    const f = await c.next()
    t.equal(f?.ptype === PType.fault && f.status, FaultStatus.opRangeError, 'opnum 9 -> nca_s_op_rng_error')
    c.send(request(7, 1, new Uint8Array(8)))
    const ndr = await c.next()
    t.equal(ndr?.ptype === PType.fault && ndr.status, FaultStatus.ndrError, 'truncated stub -> nca_s_fault_ndr')
    // A reassembled stub beyond maxStubBytes (8192) closes the connection.
    for (let i = 0; i < 3; i++) c.send(request(8, 1, new Uint8Array(4000), i === 0 ? Pfc.first : 0))
    t.ok(await c.closedSoon(), 'oversized reassembly closes the connection')
    t.equal(host.service.registrations().length, 0, 'its registration was run down with the association group')
  })

  t.test('a signal shared by many calls keeps no listener once each call has ended', async t => {
    const { getEventListeners } = await import('node:events')
    const client = await RpcClient.connect({ host: '127.0.0.1', port, syntax: swn.WitnessSyntax })
    t.teardown(() => client.close())
    const ac = new AbortController()
    for (let i = 0; i < 20; i++) await client.call(0, new Uint8Array(), ac.signal)
    t.equal(getEventListeners(ac.signal, 'abort').length, 0, 'no abort listener left behind by 20 finished calls')
  })

  t.test('CONC_MPX: a held AsyncNotify does not block later calls; calls-in-flight limit', async t => {
    const client = await RpcClient.connect({ host: '127.0.0.1', port, syntax: swn.WitnessSyntax })
    t.teardown(() => client.close())
    const reg = swn.Register.decodeOut(await client.call(1, registerStub))
    const held = client.call(3, swn.AsyncNotify.encodeIn({ contextHandle: reg.contextHandle }))
    const list = swn.GetInterfaceList.decodeOut(await client.call(0, new Uint8Array()))
    t.equal(list.interfaceList?.numberOfInterfaces, 2, 'GetInterfaceList answered while AsyncNotify is held')
    membership.setNodeState('FS1', 'down')
    const n = swn.AsyncNotify.decodeOut(await held)
    t.equal(n.response?.messageType, swn.MessageType.resourceChange)
    membership.setNodeState('FS1', 'up')
    // Second connection in the same association group can use the handle.
    const second = await RpcClient.connect({ host: '127.0.0.1', port, syntax: swn.WitnessSyntax, assocGroupId: client.assocGroupId })
    t.teardown(() => second.close())
    t.equal(second.assocGroupId, client.assocGroupId)
    const un = swn.UnRegister.decodeOut(await second.call(2, swn.UnRegister.encodeIn({ contextHandle: reg.contextHandle })))
    t.equal(un.status, 0, 'handle usable from another connection of the group')
    // Limit: 4 calls in flight per connection.
    const regs = await Promise.all([0, 1, 2, 3].map(() => client.call(1, registerStub)))
    const holds = regs.map(r => client.call(3, swn.AsyncNotify.encodeIn({ contextHandle: swn.Register.decodeOut(r).contextHandle })).catch(e => e))
    await new Promise(r => setTimeout(r, 100))
    const busy = await client.call(0, new Uint8Array()).catch(e => e)
    t.equal((busy as { status?: number }).status, FaultStatus.serverTooBusy, 'fifth call in flight refused')
    host.service.forceUnregister('RAW')
    for (const h of await Promise.all(holds)) t.equal(swn.AsyncNotify.decodeOut(h as Buffer).status, swn.WitnessStatus.notFound)
  })

  t.test('unknown association group, second bind, request before bind', async t => {
    const a = await Raw.open(port)
    t.teardown(() => a.s.destroy())
    a.send(bind([{ id: 0, syntaxes: [Ndr20Syntax] }], 0x1234567))
    t.equal((await a.next())?.ptype, PType.bindNak)
    const b = await Raw.open(port)
    t.teardown(() => b.s.destroy())
    b.send(bind([{ id: 0, syntaxes: [Ndr20Syntax] }]))
    await b.next()
    b.send(bind([{ id: 0, syntaxes: [Ndr20Syntax] }], 0, 2))
    t.equal((await b.next())?.ptype, PType.bindNak)
    t.ok(await b.closedSoon())
    const c = await Raw.open(port)
    t.teardown(() => c.s.destroy())
    c.send(request(1, 0, new Uint8Array()))
    t.ok(await c.closedSoon(), 'request before bind closes')
    const d = await Raw.open(port)
    t.teardown(() => d.s.destroy())
    d.send(Buffer.from('GET / HTTP/1.1\r\n\r\n'))
    t.ok(await d.closedSoon(), 'garbage closes')
  })

  t.test('keep-alive expiry and idle registrations', async t => {
    const client = await RpcClient.connect({ host: '127.0.0.1', port, syntax: swn.WitnessSyntax })
    t.teardown(() => client.close())
    const r = swn.RegisterEx.decodeOut(await client.call(4, swn.RegisterEx.encodeIn({
      version: swn.WitnessVersion.v2, netName: 'SOFS', shareName: null, ipAddress: '127.0.0.2', clientComputerName: 'KA', flags: 0, keepAliveTimeout: 1,
    })))
    t.equal(r.status, 0)
    const t0 = Date.now()
    const n = swn.AsyncNotify.decodeOut(await client.call(3, swn.AsyncNotify.encodeIn({ contextHandle: r.contextHandle })))
    t.equal(n.status, swn.WitnessStatus.timeout, 'ERROR_TIMEOUT after the keep-alive')
    t.equal(n.response, null)
    t.ok(Date.now() - t0 >= 900)
    const ex = swn.UnRegisterEx.decodeOut(await client.call(5, swn.UnRegisterEx.encodeIn({ contextHandle: r.contextHandle })))
    t.equal(ex.status, 0, 'UnRegisterEx')
    t.ok(ex.contextHandle.every(b => b === 0), 'handle set to NULL')
    const again = swn.AsyncNotify.decodeOut(await client.call(3, swn.AsyncNotify.encodeIn({ contextHandle: r.contextHandle })))
    t.equal(again.status, swn.WitnessStatus.notFound)
  })
})

t.test('sealed and signed calls fragmented both ways at the smallest fragment size', async t => {
  const { mkdtempSync, rmSync } = await import('node:fs')
  const { tmpdir } = await import('node:os')
  const { join } = await import('node:path')
  const { addUser } = await import('../../src/witness/dcerpc/auth/credentials.js')
  const { ntHash } = await import('../../src/witness/dcerpc/auth/md4.js')
  const dir = mkdtempSync(join(tmpdir(), 'hvcbt-witness-frag-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  addUser(join(dir, 'u.json'), 'carol', 'pw')
  const membership = StaticMembership.parse(Array.from({ length: 12 }, (_, i) => `FS${i + 1}=127.0.1.${i + 1}`))
  const host = await startWitnessHost({
    nodeName: 'FS1', netNames: ['SOFS'], listen: ['127.0.0.1'], port: 0, epmPort: 0, membership, credentials: join(dir, 'u.json'),
  })
  t.teardown(() => host.close())
  for (const level of [5, 6]) {
    const c = await RpcClient.connect({
      host: '127.0.0.1', port: host.port, syntax: swn.WitnessSyntax, maxFragment: 1432,
      auth: { user: 'carol', domain: 'X', ntHash: ntHash('pw'), level },
    })
    t.teardown(() => c.close())
    const list = swn.GetInterfaceList.decodeOut(await c.call(0, new Uint8Array()))
    t.equal(list.interfaceList?.numberOfInterfaces, 12, `level ${level}: 6.6 KB answer in 1432-byte fragments`)
    const longName = 'H'.repeat(1000)
    const r = swn.RegisterEx.decodeOut(await c.call(4, swn.RegisterEx.encodeIn({
      version: swn.WitnessVersion.v2, netName: 'SOFS', shareName: 's'.repeat(500), ipAddress: '127.0.1.2', clientComputerName: longName, flags: 0, keepAliveTimeout: 0,
    })))
    t.equal(r.status, 0, `level ${level}: 3 KB request in protected fragments`)
    t.ok(host.service.registrations().some(x => x.clientName === longName))
  }
  const wrong = await RpcClient.connect({ host: '127.0.0.1', port: host.port, syntax: swn.WitnessSyntax, auth: { user: 'carol', domain: '', ntHash: ntHash('bad'), level: 5 } })
  t.teardown(() => wrong.close())
  t.equal(((await wrong.call(0, new Uint8Array()).catch(e => e)) as { status?: number }).status, FaultStatus.accessDenied, 'wrong password: calls fault access denied')
})
