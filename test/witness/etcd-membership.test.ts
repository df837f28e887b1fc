// Witness cluster membership through a real etcd (started by the test): joining, process death seen through the
// probe fast path, a stopped node seen through lease expiry, administrator overrides, an etcd outage.
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import path from 'node:path'
import { EtcdMembership, viewFrom } from '../../src/witness/membership/etcd.js'
import type { NodeInfo } from '../../src/witness/membership/membership.js'
import { EtcdServer, freePort } from '../helpers/etcd.js'
import { repoRoot, which } from '../helpers/engine.js'

t.test('viewFrom: live wins, overrides force down, known-but-not-live is down', async t => {
  const known = new Map([
    ['A', { name: 'A', addresses: ['10.0.0.1'] }],
    ['B', { name: 'B', addresses: ['10.0.0.2'] }],
  ])
  const live = new Map([
    ['A', { name: 'A', addresses: ['10.0.0.9'], leaseId: '1', probe: null, pid: 1 }],
    ['C', { name: 'C', addresses: ['10.0.0.3'], leaseId: '2', probe: null, pid: 2 }],
  ])
  t.same(viewFrom(known, live, new Map()), [
    { name: 'A', addresses: ['10.0.0.9'], state: 'up' },
    { name: 'B', addresses: ['10.0.0.2'], state: 'down' },
    { name: 'C', addresses: ['10.0.0.3'], state: 'up' },
  ])
  t.equal(viewFrom(known, live, new Map([['A', 'down']]))[0]!.state, 'down')
})

const skip = which('etcd') ? false : 'etcd not installed (apt-get install etcd-server)'

/** Resolves with the first view `m` reports for which `pred` holds (the current one counts). */
function viewWhere(m: EtcdMembership, pred: (nodes: NodeInfo[]) => boolean, ms = 15_000): Promise<NodeInfo[]> {
  return new Promise((resolve, reject) => {
    if (pred(m.nodes())) return resolve(m.nodes())
    const timer = setTimeout(() => {
      m.off('change', on)
      reject(new Error(`view never matched; last: ${JSON.stringify(m.nodes())}`))
    }, ms)
    const on = (nodes: NodeInfo[]) => {
      if (!pred(nodes)) return
      clearTimeout(timer)
      m.off('change', on)
      resolve(nodes)
    }
    m.on('change', on)
  })
}
const stateOf = (nodes: NodeInfo[], name: string) => nodes.find(n => n.name === name)?.state

function startChild(url: string, name: string, address: string, ttl: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, [path.join(repoRoot, 'test/witness/etcd-node-child.mjs'), url, name, address, String(ttl)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  return new Promise((resolve, reject) => {
    child.stdout!.once('data', () => resolve(child))
    child.once('exit', code => reject(new Error(`child ${name} exited ${code}`)))
  })
}

t.test('membership through a real etcd', { skip }, async t => {
  const etcd = await EtcdServer.start()
  t.teardown(() => etcd.stop())
  const children: ChildProcess[] = []
  t.teardown(() => children.forEach(c => c.kill('SIGKILL')))
  const a = await EtcdMembership.join({ endpoints: [etcd.url], self: { name: 'A', addresses: ['127.0.0.1'] }, leaseTtlSeconds: 2 })
  t.teardown(() => a.close())
  const b = await EtcdMembership.join({ endpoints: [etcd.url], self: { name: 'B', addresses: ['127.0.0.2'] }, leaseTtlSeconds: 2 })
  t.teardown(() => b.close())

  t.test('nodes see each other up', async t => {
    const v = await viewWhere(a, n => stateOf(n, 'B') === 'up')
    t.same(v.map(n => [n.name, n.state]), [['A', 'up'], ['B', 'up']])
    t.same(v.find(n => n.name === 'B')!.addresses, ['127.0.0.2'])
    t.match(a.status(), { source: 'etcd', connected: true })
  })

  t.test('SIGKILL of a node process is seen by every node well under the lease TTL', async t => {
    const c = await startChild(etcd.url, 'C', '127.0.0.3', 30)
    children.push(c)
    await viewWhere(a, n => stateOf(n, 'C') === 'up')
    await viewWhere(b, n => stateOf(n, 'C') === 'up')
    const killed = Date.now()
    c.kill('SIGKILL')
    await Promise.all([viewWhere(a, n => stateOf(n, 'C') === 'down'), viewWhere(b, n => stateOf(n, 'C') === 'down')])
    const ms = Date.now() - killed
    // the lease TTL is 30 s here: only the probe path can have been this quick
    t.ok(ms < 10_000, `C seen down by A and B after ${ms} ms (TTL 30 s)`)
    t.equal(stateOf(a.nodes(), 'C'), 'down', 'a dead node stays listed, as down')
  })

  t.test('a frozen node (probe open, no keep-alives) goes down by lease expiry and comes back', async t => {
    const d = await startChild(etcd.url, 'D', '127.0.0.4', 2)
    children.push(d)
    await viewWhere(a, n => stateOf(n, 'D') === 'up')
    d.kill('SIGSTOP')
    await viewWhere(a, n => stateOf(n, 'D') === 'down', 20_000)
    d.kill('SIGCONT')
    await viewWhere(a, n => stateOf(n, 'D') === 'up', 20_000)
    t.pass('D went down on lease expiry and re-joined after it resumed')
    d.kill('SIGKILL')
  })

  t.test('an administrator override reaches every node', async t => {
    a.setNodeState('B', 'down')
    await viewWhere(b, n => stateOf(n, 'B') === 'down')
    await viewWhere(a, n => stateOf(n, 'B') === 'down')
    b.setNodeState('B', 'up')
    await viewWhere(a, n => stateOf(n, 'B') === 'up')
    t.throws(() => a.setNodeState('NOPE', 'down'), /no node named NOPE/)
  })

  t.test('moves reach every node once; registrations are published cluster-wide', async t => {
    const seenA: string[] = []
    const seenB: string[] = []
    a.onMove(m => seenA.push(`${m.kind}:${m.name}->${m.to}`))
    b.onMove(m => seenB.push(`${m.kind}:${m.name}->${m.to}`))
    const cmd = await a.requestMove({ kind: 'client', name: 'HV1', to: 'B' })
    t.match(cmd.id, /^[a-z0-9]+-[a-z0-9]+$/)
    const deadline = Date.now() + 10_000
    while ((seenA.length < 1 || seenB.length < 1) && Date.now() < deadline) await new Promise(r => setTimeout(r, 50))
    t.same(seenA, ['client:HV1->B'])
    t.same(seenB, ['client:HV1->B'])
    a.publishRegistrations([{ id: 'r1', clientName: 'HV1' }])
    b.publishRegistrations([{ id: 'r2', clientName: 'HV2' }])
    let all: Array<{ node: string; registrations: unknown[] }> = []
    while (Date.now() < deadline) {
      all = await b.clusterRegistrations()
      if (all.length === 2) break
      await new Promise(r => setTimeout(r, 50))
    }
    t.same(all.sort((x, y) => x.node.localeCompare(y.node)), [
      { node: 'A', registrations: [{ id: 'r1', clientName: 'HV1' }] },
      { node: 'B', registrations: [{ id: 'r2', clientName: 'HV2' }] },
    ])
  })

  t.test('etcd outage: the last view is kept, status is degraded, and changes during it arrive once after', async t => {
    const e = await startChild(etcd.url, 'E', '127.0.0.5', 2)
    children.push(e)
    await viewWhere(a, n => stateOf(n, 'E') === 'up')
    const changes: NodeInfo[][] = []
    a.on('change', v => changes.push(v))
    await etcd.pause()
    // the probe path still works without etcd: A sees E die at once
    e.kill('SIGKILL')
    await viewWhere(a, n => stateOf(n, 'E') === 'down')
    await new Promise(r => setTimeout(r, 3000))
    t.equal(a.status().connected, false, 'degraded while etcd is down')
    t.equal(stateOf(a.nodes(), 'B'), 'up', 'the last known view is served')
    await etcd.resume()
    await viewWhere(b, n => stateOf(n, 'E') === 'down', 20_000)
    const back = Date.now()
    while (!a.status().connected && Date.now() - back < 30_000) await new Promise(r => setTimeout(r, 200))
    t.equal(a.status().connected, true, `connected again ${Date.now() - back} ms after etcd returned`)
    t.equal(stateOf(a.nodes(), 'A'), 'up')
    t.equal(stateOf(a.nodes(), 'B'), 'up')
    const eDowns = changes.filter((v, i) => stateOf(v, 'E') === 'down' && (i === 0 || stateOf(changes[i - 1]!, 'E') !== 'down'))
    t.equal(eDowns.length, 1, 'E went down exactly once in A\'s view')
    const moves: string[] = []
    a.onMove(m => moves.push(m.name))
    await b.requestMove({ kind: 'share', name: 'VMS', to: 'A' })
    const deadline = Date.now() + 10_000
    while (moves.length === 0 && Date.now() < deadline) await new Promise(r => setTimeout(r, 50))
    t.same(moves, ['VMS'], 'a move after the outage arrives; none from before is repeated')
  })
})

t.test('joining fails clearly when etcd cannot be reached', { skip }, async t => {
  const port = await freePort()
  await t.rejects(
    EtcdMembership.join({ endpoints: [`http://127.0.0.1:${port}`], self: { name: 'X', addresses: ['127.0.0.1'] }, leaseTtlSeconds: 2 }),
    new RegExp(`cannot join the witness cluster through etcd at http://127.0.0.1:${port}`),
  )
})
