#!/usr/bin/env node
// Witness failover latency: node bench/witness-failover.mjs [--trials 30] [--modes kill,stop] [--configs default,tuned]
//
// A real etcd and three witness nodes A, B, C (`node dist/main.js witness serve --etcd ...`, separate processes on
// 127.0.0.71-73, fixed port, no endpoint mapper); HvCbt's witness client (dist/) registered with B for the file
// server on A, an AsyncNotify always held. Each trial stops A and measures the time from the signal to the client's
// AsyncNotify returning RESOURCE_CHANGE unavailable, then restarts A and waits for AVAILABLE.
//   mode kill: SIGKILL (the process dies, its sockets close: the probe path finds it)
//   mode stop: SIGSTOP (frozen: sockets stay open, only the etcd lease expiry can find it)
//   config default: etcd with default timings, lease TTL 3 s (the serve default)
//   config tuned:   etcd with --heartbeat-interval 50 --election-timeout 500, lease TTL 1 s
// Build first: npx tsc -p tsconfig.json.
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const { values: opt } = parseArgs({
  options: {
    trials: { type: 'string', default: '30' },
    modes: { type: 'string', default: 'kill,stop' },
    configs: { type: 'string', default: 'default,tuned' },
  },
})
const trials = Number(opt.trials)
const { WitnessClient } = await import(pathToFileURL(join(root, 'dist/witness/swn/client.js')).href)
const configs = {
  default: { ttl: 3, etcdArgs: [] },
  tuned: { ttl: 1, etcdArgs: ['--heartbeat-interval', '50', '--election-timeout', '500'] },
}
const ip = { A: '127.0.0.71', B: '127.0.0.72', C: '127.0.0.73' }
const port = 41135
const dir = mkdtempSync(join(tmpdir(), 'hvcbt-witness-failover-'))
const env = { ...process.env, NODE_OPTIONS: '', HVCBT_RUN_DIR: join(dir, 'run') }
const sleep = ms => new Promise(r => setTimeout(r, ms))

function freePort() {
  return new Promise((res, rej) => {
    const s = net.createServer().once('error', rej).listen(0, '127.0.0.1', () => {
      const p = s.address().port
      s.close(() => res(p))
    })
  })
}

async function startEtcd(name, extra) {
  const [cp, pp] = [await freePort(), await freePort()]
  const url = `http://127.0.0.1:${cp}`
  const peer = `http://127.0.0.1:${pp}`
  const proc = spawn('etcd', ['--name', name, '--data-dir', join(dir, name), '--listen-client-urls', url, '--advertise-client-urls', url,
    '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `${name}=${peer}`, '--log-level', 'warn', ...extra],
  { stdio: 'ignore' })
  for (let i = 0; i < 150; i++) {
    const r = await fetch(`${url}/health`).catch(() => null)
    if (r?.ok) return { url, stop: () => new Promise(r => (proc.once('exit', r), proc.kill('SIGTERM'))) }
    await sleep(100)
  }
  throw new Error('etcd did not start')
}

function startNode(name, etcdUrl, ttl) {
  const child = spawn(process.execPath, [join(root, 'dist/main.js'), 'witness', 'serve', '--node', name, '--netname', 'SOFS',
    '--listen', ip[name], '--port', String(port), '--epm-port', '0', '--allow-anonymous', '--etcd', etcdUrl, '--cluster', 'bench',
    '--lease-ttl', String(ttl), '--unregister-after-unavailable', '600', '--verbose'], { env })
  let out = ''
  child.stdout.on('data', d => (out += d))
  child.stderr.on('data', d => (out += d))
  return new Promise((res, rej) => {
    const t = setInterval(() => {
      if (/Admin sockets/.test(out)) (clearInterval(t), res(child))
      else if (child.exitCode !== null) (clearInterval(t), rej(new Error(`node ${name}: ${out}`)))
    }, 20)
  })
}

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]
}

const results = []
for (const cfgName of opt.configs.split(',')) {
  const cfg = configs[cfgName]
  const etcd = await startEtcd(`bench-${cfgName}`, cfg.etcdArgs)
  const nodes = {}
  for (const n of ['A', 'B', 'C']) nodes[n] = await startNode(n, etcd.url, cfg.ttl)
  const client = new WitnessClient({ netName: 'SOFS', fileServerAddress: ip.A, clientName: 'BENCH', witnessServers: [ip.B], port, retryDelayMs: 100 })
  let waiter = null
  client.on('resource-change', n => waiter?.(n.changes[0].changeType))
  client.on('error', () => {})
  client.start()
  while (client.status().state !== 'registered') await sleep(20)
  if (client.status().witnessNode !== 'B') throw new Error(`client registered with ${client.status().witnessNode}`)
  const next = want => new Promise((res, rej) => {
    const t = setTimeout(() => rej(new Error(`no change ${want} within 30 s`)), 30_000)
    waiter = ct => ct === want && (clearTimeout(t), (waiter = null), res(performance.now()))
  })
  for (const mode of opt.modes.split(',')) {
    const lat = []
    for (let i = 0; i < trials; i++) {
      await sleep(300 + Math.random() * 700) // desynchronise from keep-alive ticks
      const told = next(0xff)
      const a = nodes.A
      const t0 = performance.now()
      a.kill(mode === 'kill' ? 'SIGKILL' : 'SIGSTOP')
      lat.push((await told) - t0)
      if (mode === 'stop') a.kill('SIGKILL')
      await new Promise(r => (a.exitCode !== null || a.signalCode !== null ? r() : a.once('exit', r)))
      const back = next(1)
      nodes.A = await startNode('A', etcd.url, cfg.ttl)
      await back
    }
    const r = {
      config: cfgName, ttlSeconds: cfg.ttl, mode, trials,
      p50: Math.round(pct(lat, 50)), p99: Math.round(pct(lat, 99)), min: Math.round(Math.min(...lat)), max: Math.round(Math.max(...lat)),
    }
    results.push(r)
    console.log(JSON.stringify(r))
  }
  await client.stop()
  for (const c of Object.values(nodes)) c.kill('SIGKILL')
  await etcd.stop()
}
console.log('\nconfig   TTL  mode  trials  p50 ms  p99 ms  min  max')
for (const r of results) {
  console.log(`${r.config.padEnd(8)} ${String(r.ttlSeconds).padStart(3)}  ${r.mode.padEnd(4)}  ${String(r.trials).padStart(6)}  ${String(r.p50).padStart(6)}  ${String(r.p99).padStart(6)}  ${String(r.min).padStart(3)}  ${r.max}`)
}
rmSync(dir, { recursive: true, force: true })
process.exit(0)
