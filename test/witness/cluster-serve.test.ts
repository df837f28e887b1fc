// witness.serve with --etcd, in process: refused combinations, no silent single mode when etcd is unreachable,
// and the status / clients / node-state admin calls of a clustered node against a real etcd.
// This file owns 127.0.0.68-69.
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DefaultLeaseTtlSeconds, witnessMethods } from '../../src/engine/methods/witness.js'
import { stopService } from '../../src/engine/services.js'
import { adminCall } from '../../src/witness/swn/admin-channel.js'
import { which } from '../helpers/engine.js'
import { EtcdServer, freePort } from '../helpers/etcd.js'

const serve = witnessMethods.find(m => m.name === 'witness.serve')!
const ctx = { progress() {}, log() {}, signal: new AbortController().signal, interactive: false }
const base = { node: 'N68', netname: ['SOFS'], listen: ['127.0.0.68'], allowAnonymous: true, port: 0, epmPort: 0 }

t.test('refusals: --etcd with --static-node, cluster options without --etcd, bad URL, unreachable etcd', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'hvcbt-witness-cluster-serve-'))
  process.env.HVCBT_RUN_DIR = join(dir, 'run')
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  await t.rejects(serve.handler({ ...base, etcd: ['http://127.0.0.1:2379'], staticNode: ['N68=127.0.0.68'] }, ctx), /exclude each other/)
  await t.rejects(serve.handler({ ...base, leaseTtl: 2 }, ctx), /--lease-ttl and --cluster need --etcd/)
  await t.rejects(serve.handler({ ...base, cluster: 'x' }, ctx), /need --etcd/)
  await t.rejects(serve.handler({ ...base, etcd: ['127.0.0.1:2379'] }, ctx), /expected a client URL/)
  const port = await freePort()
  const started = Date.now()
  const err = await serve.handler({ ...base, etcd: [`http://127.0.0.1:${port}`] }, ctx).then(() => null, (e: Error) => e)
  t.match(err, { category: 'ConnectionError', message: new RegExp(`cannot join the witness cluster through etcd at http://127\\.0\\.0\\.1:${port}.*not started`) },
    'unreachable etcd: the service does not start (no silent single mode)')
  t.ok(Date.now() - started < 15_000, `and says so within ${Date.now() - started} ms`)
  await t.rejects(adminCall(join(dir, 'run', 'witness-127.0.0.68.sock'), 'status', {}), /no witness service is running/, 'nothing left listening')
})

t.test('a clustered node: status, clients, node-state through etcd', { skip: which('etcd') ? false : 'etcd not installed' }, async t => {
  const dir = mkdtempSync(join(tmpdir(), 'hvcbt-witness-cluster-serve-'))
  process.env.HVCBT_RUN_DIR = join(dir, 'run')
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const etcd = await EtcdServer.start()
  t.teardown(() => etcd.stop())
  const a = await serve.handler({ ...base, etcd: [`${etcd.url},${etcd.url}`], cluster: 'unit' }, ctx)
  t.teardown(() => stopService(a.id))
  const b = await serve.handler({ ...base, node: 'N69', listen: ['127.0.0.69'], etcd: [etcd.url], cluster: 'unit', leaseTtl: 5 }, ctx)
  t.teardown(() => stopService(b.id))
  t.match(a.membership, { source: 'etcd', cluster: 'unit', connected: true, leaseTtlSeconds: DefaultLeaseTtlSeconds })
  t.same(a.membership.endpoints, [etcd.url, etcd.url], 'comma-separated endpoints are split')
  type Status = { membership: { leaseTtlSeconds: number; leaseId: string; nodes: Array<{ name: string; state: string; addresses: string[] }> } }
  const status = async (sock: string) => (await adminCall(sock, 'status', {})) as Status
  let s = await status(a.adminSockets[0]!)
  for (let i = 0; i < 50 && s.membership.nodes.length < 2; i++) s = await new Promise(r => setTimeout(r, 100)).then(() => status(a.adminSockets[0]!))
  t.same(s.membership.nodes, [
    { name: 'N68', addresses: ['127.0.0.68'], state: 'up' }, { name: 'N69', addresses: ['127.0.0.69'], state: 'up' },
  ], 'both nodes, with their --listen addresses')
  t.equal((await status(b.adminSockets[0]!)).membership.leaseTtlSeconds, 5, '--lease-ttl')
  t.match(s.membership.leaseId, /^\d+$/)
  t.same(await adminCall(b.adminSockets[0]!, 'node-state', { node: 'N68', state: 'down' }), { node: 'N68', state: 'down' })
  for (let i = 0; i < 50 && s.membership.nodes[0]!.state !== 'down'; i++) s = await new Promise(r => setTimeout(r, 100)).then(() => status(a.adminSockets[0]!))
  t.equal(s.membership.nodes[0]!.state, 'down', 'the override set on N69 reaches N68')
  await adminCall(a.adminSockets[0]!, 'node-state', { node: 'N68', state: 'up' })
  t.same(await adminCall(a.adminSockets[0]!, 'clients', {}), [], 'no registrations anywhere yet')
  await t.rejects(adminCall(a.adminSockets[0]!, 'move-client', { client: 'X', to: 'NOPE' }), /no node named NOPE/)
  const mv = (await adminCall(a.adminSockets[0]!, 'move-client', { client: 'X', to: 'N69' })) as { notified: number; nodes: Array<{ node: string }> }
  t.equal(mv.notified, 0)
  t.same(mv.nodes.map(n => n.node).sort(), ['N68', 'N69'], 'every node acknowledged the move')
})
