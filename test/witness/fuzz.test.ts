import t from 'tap'
import { fuzz } from './fuzz-core.js'

const fixtures = new URL('./fixtures/pdus.json', import.meta.url).pathname

t.test('decoders survive 20,000 mutated inputs (PDU, NDR, notifications, NTLMSSP, SPNEGO)', async t => {
  const seed = Number(process.env.WITNESS_FUZZ_SEED ?? 20261125)
  const heap0 = process.memoryUsage().heapUsed
  const r = fuzz(fixtures, 20000, seed, 1000) // 1 s: catches hangs, not GC pauses on a shared machine
  t.same(r.unexpected, [], `seed ${seed}`)
  t.ok(r.rejected > 1000 && r.accepted > 100, `both rejections (${r.rejected}) and acceptances (${r.accepted}) happen`)
  t.ok(r.slowest < 1000, `slowest input ${r.slowest.toFixed(1)} ms`)
  t.ok(process.memoryUsage().heapUsed - heap0 < 256 * 1024 * 1024, 'heap stays bounded')
})

t.test('a live server survives 200 connections of mutated PDUs and keeps serving', async t => {
  const { fuzzServer } = await import('./fuzz-core.js')
  const { StaticMembership } = await import('../../src/witness/membership/static.js')
  const { startWitnessHost } = await import('../../src/witness/swn/witness-host.js')
  const { RpcClient } = await import('../../src/witness/dcerpc/client.js')
  const swn = await import('../../src/witness/swn/swn-idl.js')
  const host = await startWitnessHost({
    nodeName: 'FS1', netNames: ['SOFS'], listen: ['127.0.0.1'], port: 0, epmPort: 0,
    membership: StaticMembership.parse(['FS1=127.0.0.1', 'FS2=127.0.0.2']), allowAnonymous: true,
  })
  t.teardown(() => host.close())
  const probe = async () => {
    const c = await RpcClient.connect({ host: '127.0.0.1', port: host.port, syntax: swn.WitnessSyntax })
    try {
      return swn.GetInterfaceList.decodeOut(await c.call(0, new Uint8Array())).interfaceList?.numberOfInterfaces === 2
    } finally {
      c.close()
    }
  }
  const r = await fuzzServer(fixtures, host.port, 200, 7, probe)
  t.equal(r.probeFailures, 0, 'served between and after the hostile connections')
  t.ok(r.answered > 0, `answers: ${r.answered}, closed: ${r.closed}`)
  await new Promise(res => setTimeout(res, 200))
  t.ok(host.rpc.connectionCount <= 1, `no connections left behind (${host.rpc.connectionCount})`)
})
