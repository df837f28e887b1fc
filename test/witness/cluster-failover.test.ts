// A witness cluster end to end: a real etcd started here, three witness nodes A, B, C as separate engine processes
// (`hvcbt witness serve --etcd ...`), and two clients registered with node B for the file server on node A: HvCbt's
// own witness client and Samba's rpcclient. SIGKILL of A -> RESOURCE_CHANGE unavailable; A restarted ->
// available; an etcd outage with A killed during it -> exactly one notification each way; admin moves issued on
// node C -> CLIENT_MOVE delivered by B; `witness clients` on C lists B's registrations.
// This file owns 127.0.0.61-63 (endpoint mapper on port 135 of each).
import t from 'tap'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { WitnessClient } from '../../src/witness/swn/client.js'
import type { Notification } from '../../src/witness/swn/swn-messages.js'
import { repoRoot, which } from '../helpers/engine.js'
import { EtcdServer } from '../helpers/etcd.js'
import { WitnessNodeProcess, hvcbtJson, stateOf, statusWhere } from './cluster-helpers.js'
import { RpcclientSession, haveRpcclient } from './rpcclient-session.js'

const ip = { A: '127.0.0.61', B: '127.0.0.62', C: '127.0.0.63' } as const
const skip = !which('etcd') ? 'etcd not installed (apt-get install etcd-server)'
  : !existsSync(path.join(repoRoot, 'dist', 'main.js')) ? 'dist/main.js missing: run npx tsc -p tsconfig.json' : false

/** Resolves once `pred` holds, polling every 20 ms. */
async function until(pred: () => boolean, what: string, ms = 15_000): Promise<void> {
  const end = Date.now() + ms
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise(r => setTimeout(r, 20))
  }
}

t.test('witness cluster through etcd: failure, restart, etcd outage, cross-node moves', { skip, timeout: 120_000 }, async t => {
  const dir = mkdtempSync(path.join(tmpdir(), 'hvcbt-witness-cluster-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const env = { HVCBT_RUN_DIR: path.join(dir, 'run') }
  const etcd = await EtcdServer.start()
  t.teardown(() => etcd.stop())
  const common = ['--netname', 'SOFS', '--allow-anonymous', '--etcd', etcd.url, '--cluster', 'test', '--unregister-after-unavailable', '120']
  const nodes = Object.fromEntries(Object.entries(ip).map(([name, address]) =>
    [name, new WitnessNodeProcess({ name, address }, common, env)])) as Record<keyof typeof ip, WitnessNodeProcess>
  t.teardown(async () => {
    for (const n of Object.values(nodes)) {
      await n.kill('SIGCONT')
      await n.kill('SIGKILL')
    }
  })
  await Promise.all(Object.values(nodes).map(n => n.start()))
  const all = await statusWhere(ip.B, env, s => s.membership.nodes.filter(n => n.state === 'up').length === 3)
  t.match(all.membership, { source: 'etcd', connected: true, leaseTtlSeconds: 3 }, 'default lease TTL 3 s, connected')
  t.same(all.membership.nodes.map(n => [n.name, n.addresses]), [['A', [ip.A]], ['B', [ip.B]], ['C', [ip.C]]], 'each node publishes its --listen address')

  // HvCbt's client: file server A; the witness it picks is B (first available node other than A)
  const client = new WitnessClient({ netName: 'SOFS', fileServerAddress: ip.A, clientName: 'HVCL', witnessServers: [ip.B], retryDelayMs: 200 })
  const got: Array<{ n: Notification; at: number }> = []
  client.on('notification', (n: Notification) => got.push({ n, at: Date.now() }))
  client.on('error', () => {})
  t.teardown(() => client.stop())
  client.start()
  await until(() => client.status().state === 'registered', 'the HvCbt client to register')
  t.equal(client.status().witnessNode, 'B', 'HvCbt client registered with B')
  t.equal(client.status().fileServerNode, 'A', 'for the file server on A')
  const changes = (type: number, changeType?: number) => got.filter(g => g.n.type === type &&
    (changeType === undefined || (g.n.type === 1 && g.n.changes.some(c => c.changeType === changeType)))).length

  const rc = haveRpcclient ? new RpcclientSession(`ncacn_ip_tcp:${ip.B}`) : null
  if (rc) t.teardown(() => rc.close())
  let handle: string | undefined
  if (rc) {
    const reg = await rc.cmd(`RegisterEx -n SOFS -i ${ip.A} -c RPCCL -t 0`)
    handle = /0:[0-9a-f-]{36}/.exec(reg)?.[0]
    t.ok(handle, `rpcclient RegisterEx with B for A: ${reg}`)
  } else t.comment('rpcclient not installed: its part is skipped')

  t.test('witness clients on node C lists the registrations held by B', async t => {
    type Reg = { clientName: string; witnessNodeName: string; fileServerNodeName: string }
    let regs: Reg[] = []
    const want = rc ? 2 : 1
    await until(() => (regs = hvcbtJson<Reg[]>(['witness', 'clients', '--server', ip.C], env)).length >= want, 'C to list the registrations', 10_000)
    t.same(regs.map(r => [r.clientName, r.witnessNodeName, r.fileServerNodeName]).sort(),
      [['HVCL', 'B', 'A'], ...(rc ? [['RPCCL', 'B', 'A']] : [])], 'held by B, for A')
  })

  t.test('SIGKILL of A: RESOURCE_CHANGE unavailable; A restarted: available', async t => {
    const held = rc?.start(`AsyncNotify ${handle}`, 30_000)
    await new Promise(r => setTimeout(r, 300))
    const killed = Date.now()
    await nodes.A.kill('SIGKILL')
    await until(() => changes(1, 0xff) === 1, 'RESOURCE_CHANGE unavailable')
    const ms = got.at(-1)!.at - killed
    t.ok(ms < 1500, `HvCbt client told ${ms} ms after the SIGKILL (lease TTL 3 s: the probe path)`)
    t.equal(client.status().fileServerState, 'unavailable', 'client status shows the file server unavailable')
    if (held) t.match(await held.result(), /SOFS -> Unavailable/, 'rpcclient AsyncNotify: RESOURCE_CHANGE unavailable')
    const held2 = rc?.start(`AsyncNotify ${handle}`, 30_000)
    await nodes.A.start()
    await until(() => changes(1, 1) === 1, 'RESOURCE_CHANGE available')
    if (held2) t.match(await held2.result(), /SOFS -> Available/, 'rpcclient AsyncNotify: RESOURCE_CHANGE available')
    t.equal(changes(1), 2, 'one notification each way')
    t.equal(client.status().fileServerState, 'available')
  })

  t.test('etcd outage with A killed during it: one notification each way, none lost or repeated', async t => {
    const before = got.length
    const held = rc?.start(`AsyncNotify ${handle}`, 30_000)
    await etcd.pause()
    await new Promise(r => setTimeout(r, 500))
    await nodes.A.kill('SIGKILL')
    await until(() => changes(1, 0xff) === 2, 'RESOURCE_CHANGE unavailable during the outage')
    if (held) t.match(await held.result(), /SOFS -> Unavailable/, 'rpcclient told during the outage')
    const held2 = rc?.start(`AsyncNotify ${handle}`, 40_000)
    let held2Done = false
    void held2?.result().then(() => (held2Done = true), () => {})
    const degraded = await statusWhere(ip.B, env, s => !s.membership.connected, 15_000)
    t.ok(degraded.membership.degradedSince, `B reports degraded status since ${degraded.membership.degradedSince}`)
    t.equal(stateOf(degraded, 'C'), 'up', 'and keeps serving its last view')
    await new Promise(r => setTimeout(r, 4000 - (Date.now() % 1000))) // longer than the 3 s lease TTL
    await etcd.resume()
    for (const n of ['B', 'C'] as const) await statusWhere(ip[n], env, s => s.membership.connected, 30_000)
    await new Promise(r => setTimeout(r, 4000)) // A's old lease (renewed by etcd's restart) expires meanwhile
    t.equal(got.length - before, 1, 'exactly one notification (unavailable) across the outage')
    t.notOk(held2Done, 'rpcclient: nothing more queued')
    const s = await statusWhere(ip.C, env, x => stateOf(x, 'A') === 'down')
    t.equal(stateOf(s, 'B'), 'up', 'B still up in C\'s view after the outage')
    await nodes.A.start()
    await until(() => changes(1, 1) === 2, 'RESOURCE_CHANGE available after the outage')
    if (held2) t.match(await held2.result(), /SOFS -> Available/, 'rpcclient told A is back')
    await new Promise(r => setTimeout(r, 1000))
    t.equal(got.length - before, 2, 'exactly two notifications in all')
  })

  t.test('admin moves issued on node C are delivered by B', async t => {
    if (rc) {
      const held = rc.start(`AsyncNotify ${handle}`, 30_000)
      await new Promise(r => setTimeout(r, 300))
      const mv = hvcbtJson<{ notified: number; nodes: Array<{ node: string; notified: number }> }>(
        ['witness', 'move-client', '--client', 'RPCCL', '--to', 'C', '--server', ip.C], env)
      t.equal(mv.notified, 1, 'one registration told, cluster-wide')
      t.same(mv.nodes.filter(n => n.notified > 0).map(n => n.node), ['B'], 'by B')
      const out = await held.result()
      t.match(out, /Client move/i, 'rpcclient AsyncNotify: CLIENT_MOVE')
      t.match(out, /127\.0\.0\.63/, 'to C\'s address')
    }
    const mv = hvcbtJson<{ notified: number }>(['witness', 'move-client', '--client', 'HVCL', '--to', 'C', '--server', ip.C], env)
    t.equal(mv.notified, 1)
    await until(() => changes(2) === 1, 'CLIENT_MOVE')
    const n = got.find(g => g.n.type === 2)!.n
    t.same(n.type === 2 && n.lists[0]!.map(a => a.ipv4), [ip.C], 'CLIENT_MOVE carries C\'s address')
    await until(() => client.status().state === 'registered' && client.status().fileServerAddress === ip.C, 'the client to follow the move')
    t.equal(client.status().fileServerNode, 'C')
    t.not(client.status().witnessNode, 'C', 'and to register with a node other than C')
  })
})
