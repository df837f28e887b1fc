#!/usr/bin/env node
// Witness scale and latency: node bench/witness-scale.mjs [registrations=10000] [connections=100] [probes=200]
// A witness server runs in a child process (so its RSS is its own). The parent opens `connections` DCE/RPC
// connections, makes `registrations` RegisterEx calls spread over them and keeps an AsyncNotify held for every
// one (CONC_MPX), then reports the server's RSS. Latency: with all of those held, a probe registration on another
// node measures state change -> RESOURCE_CHANGE received by the client (`probes` times, node toggled down/up);
// finally one node change fans out to every held call. Sources are bundled with esbuild.
import { build } from 'esbuild'
import { fork } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const total = Number(process.argv[2] ?? 10000)
const nconn = Number(process.argv[3] ?? 100)
const probes = Number(process.argv[4] ?? 200)
const dir = mkdtempSync(join(tmpdir(), 'hvcbt-witness-scale-'))
const src = f => JSON.stringify(join(root, f))
const bundle = async (name, contents) => {
  const outfile = join(dir, name)
  await build({
    stdin: { contents, resolveDir: root, loader: 'ts' }, bundle: true, platform: 'node', format: 'esm', target: 'node20',
    outfile, logLevel: 'error',
  })
  return outfile
}

const serverFile = await bundle('server.mjs', `
import { startWitnessHost } from ${src('src/witness/swn/witness-host.ts')}
import { StaticMembership } from ${src('src/witness/membership/static.ts')}
const membership = StaticMembership.parse(['FS1=127.0.0.1', 'FS2=127.0.0.2', 'FS3=127.0.0.3'])
const host = await startWitnessHost({
  nodeName: 'FS1', netNames: ['SOFS'], listen: ['127.0.0.1'], port: 0, epmPort: 0, membership, allowAnonymous: true,
  idleExpiryMs: 3600000, unavailableUnregisterMs: 3600000,
  limits: { maxCallsPerConnection: 100000, maxConnections: 100000 },
})
const now = () => performance.timeOrigin + performance.now()
process.on('message', m => {
  if (m.cmd === 'state') {
    const t = now()
    membership.setNodeState(m.node, m.state)
    process.send({ id: m.id, t })
  } else if (m.cmd === 'stats') {
    global.gc?.()
    const regs = host.service.registrations()
    process.send({ id: m.id, rss: process.memoryUsage().rss, heap: process.memoryUsage().heapUsed, regs: regs.length, waiting: regs.filter(r => r.state === 'Waiting').length })
  }
})
process.send({ port: host.port })
`)
const clientFile = await bundle('client.mjs', `
export { RpcClient } from ${src('src/witness/dcerpc/client.ts')}
export * as swn from ${src('src/witness/swn/swn-idl.ts')}
`)
const { RpcClient, swn } = await import(pathToFileURL(clientFile).href)

const child = fork(serverFile, [], { execArgv: ['--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
let seq = 0
const waiting = new Map()
child.on('message', m => {
  if (m.id !== undefined) {
    waiting.get(m.id)?.(m)
    waiting.delete(m.id)
  }
})
const ask = msg => new Promise(r => {
  const id = ++seq
  waiting.set(id, r)
  child.send({ ...msg, id })
})
const { port } = await new Promise(r => child.once('message', r))
const now = () => performance.timeOrigin + performance.now()
const mib = b => (b / 2 ** 20).toFixed(1)
const pct = (a, p) => a.slice().sort((x, y) => x - y)[Math.min(a.length - 1, Math.floor(a.length * p))]

try {
  const base = await ask({ cmd: 'stats' })
  const conns = await Promise.all(Array.from({ length: nconn }, () => RpcClient.connect({ host: '127.0.0.1', port, syntax: swn.WitnessSyntax })))
  const t0 = Date.now()
  const handles = []
  for (let i = 0; i < total; i += 500) {
    const batch = []
    for (let k = i; k < Math.min(total, i + 500); k++) {
      const stub = swn.RegisterEx.encodeIn({
        version: swn.WitnessVersion.v2, netName: 'SOFS', shareName: 'vms', ipAddress: '127.0.0.2',
        clientComputerName: `HV${k}`, flags: 0, keepAliveTimeout: 0,
      })
      batch.push(conns[k % nconn].call(4, stub).then(out => ({ c: conns[k % nconn], h: swn.RegisterEx.decodeOut(out).contextHandle })))
    }
    handles.push(...(await Promise.all(batch)))
  }
  const regMs = Date.now() - t0
  const held = handles.map(({ c, h }) => c.call(3, swn.AsyncNotify.encodeIn({ contextHandle: h })))
  let st
  for (;;) {
    st = await ask({ cmd: 'stats' })
    if (st.waiting >= total) break
    await new Promise(r => setTimeout(r, 100))
  }
  console.log(`registrations: ${st.regs} (${(total / (regMs / 1000)).toFixed(0)}/s), AsyncNotify held: ${st.waiting}`)
  console.log(`server RSS: ${mib(base.rss)} MiB idle -> ${mib(st.rss)} MiB with ${st.waiting} held (heap ${mib(st.heap)} MiB; ` +
    `${((st.rss - base.rss) / st.waiting).toFixed(0)} bytes per registration)`)

  // Latency probe on FS3 while everything above stays held.
  const probe = await RpcClient.connect({ host: '127.0.0.1', port, syntax: swn.WitnessSyntax })
  const reg = swn.RegisterEx.decodeOut(await probe.call(4, swn.RegisterEx.encodeIn({
    version: swn.WitnessVersion.v2, netName: 'SOFS', shareName: null, ipAddress: '127.0.0.3', clientComputerName: 'PROBE', flags: 0, keepAliveTimeout: 0,
  })))
  const e2e = []
  const fromServer = []
  for (let i = 0; i < probes; i++) {
    const call = probe.call(3, swn.AsyncNotify.encodeIn({ contextHandle: reg.contextHandle }))
    await new Promise(r => setTimeout(r, 5))
    const start = now()
    const stamp = ask({ cmd: 'state', node: 'FS3', state: i % 2 ? 'up' : 'down' })
    const out = swn.AsyncNotify.decodeOut(await call)
    const end = now()
    if (out.response?.messageType !== 1) throw new Error('probe: expected RESOURCE_CHANGE')
    e2e.push(end - start)
    fromServer.push(end - (await stamp).t)
  }
  console.log(`notification latency over ${probes} changes (with ${st.waiting} other calls held): ` +
    `state change -> client p50 ${pct(fromServer, 0.5).toFixed(2)} ms, p99 ${pct(fromServer, 0.99).toFixed(2)} ms, max ${Math.max(...fromServer).toFixed(2)} ms; ` +
    `including the admin IPC p50 ${pct(e2e, 0.5).toFixed(2)} ms`)

  // Fan-out: FS2 goes down, every held call completes.
  const f0 = now()
  await ask({ cmd: 'state', node: 'FS2', state: 'down' })
  const outs = await Promise.all(held)
  const fanMs = now() - f0
  const ok = outs.filter(o => swn.AsyncNotify.decodeOut(o).response?.messageType === 1).length
  console.log(`fan-out: ${ok}/${total} RESOURCE_CHANGE delivered in ${fanMs.toFixed(0)} ms`)
  const result = {
    date: new Date().toISOString(), registrations: total, connections: nconn, rssIdleMiB: +mib(base.rss), rssHeldMiB: +mib(st.rss),
    latencyP50Ms: +pct(fromServer, 0.5).toFixed(3), latencyP99Ms: +pct(fromServer, 0.99).toFixed(3), fanOutMs: Math.round(fanMs),
  }
  console.log(JSON.stringify(result))
  for (const c of conns) c.close()
  probe.close()
} finally {
  child.kill()
  rmSync(dir, { recursive: true, force: true })
}
