// Start-up and round-trip cost of the engine, the numbers that decide how the PowerShell module feels.
//
//   cold start       `build/out/hvcbt --version` (single executable) and `node dist/main.js --version` (unbundled),
//                    spawn to exit, against the peer `node -e 0` measured in the same run, interleaved so that noise
//                    from other load on the machine hits every case alike. The first run of each is reported apart.
//   first response   a fresh `hvcbt rpc`: spawn to the first engine.version response (what the first cmdlet of a
//                    session waits for).
//   warm round trip  one `hvcbt rpc` process, N sequential engine.version requests, each sent after the previous
//                    answer; latency per request.
//
// Usage: node bench/startup.mjs [--runs 30] [--requests 2000] [--exe build/out/hvcbt] [--main dist/main.js]
//                               [--out bench/results/startup.json]
// Prints a table and writes the figures as JSON. NODE_OPTIONS is cleared for every child (a SEA honours it).
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const { values: opts } = parseArgs({
  options: {
    runs: { type: 'string', default: '30' },
    requests: { type: 'string', default: '2000' },
    exe: { type: 'string', default: path.join(root, 'build', 'out', 'hvcbt') },
    main: { type: 'string', default: path.join(root, 'dist', 'main.js') },
    out: { type: 'string', default: path.join(root, 'bench', 'results', 'startup.json') },
  },
})
const runs = positiveInt(opts.runs, '--runs')
const requests = positiveInt(opts.requests, '--requests')
const exe = path.resolve(opts.exe)
const main = path.resolve(opts.main)
const env = { ...process.env }
delete env.NODE_OPTIONS

for (const [file, how] of [[exe, 'npm run build'], [main, 'npm run build:ts']]) {
  if (!fs.existsSync(file)) fail(`${file} does not exist (run ${how})`)
}

/** The commands whose spawn-to-exit time is measured. */
const coldCases = [
  { name: 'node -e 0 (peer)', cmd: process.execPath, args: ['-e', '0'] },
  { name: 'hvcbt --version (SEA)', cmd: exe, args: ['--version'] },
  { name: 'node dist/main.js --version', cmd: process.execPath, args: [main, '--version'] },
]
/** The engines whose JSON-RPC side is measured. */
const rpcCases = [
  { name: 'hvcbt rpc (SEA)', cmd: exe, args: ['rpc'] },
  { name: 'node dist/main.js rpc', cmd: process.execPath, args: [main, 'rpc'] },
]

const results = { cold: {}, firstResponse: {}, warm: {} }

// Cold start: round-robin over the cases, rotating which goes first.
const cold = new Map(coldCases.map(c => [c.name, []]))
for (let i = 0; i <= runs; i++) {
  for (let k = 0; k < coldCases.length; k++) {
    const c = coldCases[(i + k) % coldCases.length]
    cold.get(c.name).push(timeExit(c))
  }
}
for (const c of coldCases) {
  const [first, ...rest] = cold.get(c.name)
  results.cold[c.name] = { first, ...stats(rest) }
}

// First response of a fresh engine, interleaved the same way.
const fresh = new Map(rpcCases.map(c => [c.name, []]))
for (let i = 0; i <= runs; i++) {
  for (let k = 0; k < rpcCases.length; k++) {
    const c = rpcCases[(i + k) % rpcCases.length]
    fresh.get(c.name).push(await timeFirstResponse(c))
  }
}
for (const c of rpcCases) {
  const [first, ...rest] = fresh.get(c.name)
  results.firstResponse[c.name] = { first, ...stats(rest) }
}

// Warm round trips, one engine at a time.
for (const c of rpcCases) results.warm[c.name] = await warmRoundTrips(c, requests)

const peer = results.cold['node -e 0 (peer)'].median
printTable(peer)
const report = {
  date: new Date().toISOString(),
  node: process.version,
  platform: `${process.platform}-${process.arch}`,
  cpus: os.cpus().length,
  cpuModel: os.cpus()[0]?.model ?? 'unknown',
  loadavg: os.loadavg(),
  runs,
  requests,
  executable: { path: exe, bytes: fs.statSync(exe).size },
  unit: 'ms',
  peerMedian: peer,
  ...results,
}
fs.mkdirSync(path.dirname(path.resolve(opts.out)), { recursive: true })
fs.writeFileSync(path.resolve(opts.out), JSON.stringify(report, null, 2) + '\n')
console.log(`\nwritten ${path.resolve(opts.out)}`)

/** Spawn to exit, in ms; the command must exit 0. */
function timeExit(c) {
  const t0 = performance.now()
  const r = spawnSync(c.cmd, c.args, { env, stdio: ['ignore', 'pipe', 'pipe'] })
  const ms = performance.now() - t0
  if (r.status !== 0) fail(`${c.name} exited with ${r.status ?? r.signal}: ${String(r.stderr).trim()}`)
  return ms
}

/** An rpc engine as a child, with a function that sends one request and resolves with its response. */
function startEngine(c) {
  const child = spawn(c.cmd, c.args, { env, stdio: ['pipe', 'pipe', 'pipe'] })
  const waiting = new Map()
  let buffered = ''
  let stderr = ''
  child.stderr.on('data', d => (stderr += d))
  child.stdout.setEncoding('utf8')
  child.stdout.on('data', chunk => {
    buffered += chunk
    for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
      const msg = JSON.parse(buffered.slice(0, nl))
      buffered = buffered.slice(nl + 1)
      if (msg.id === undefined) continue // a notification ($/log)
      const w = waiting.get(msg.id)
      waiting.delete(msg.id)
      if (!w) fail(`${c.name} answered unknown id ${msg.id}`)
      else if (msg.error) w.reject(new Error(`${c.name}: ${msg.error.message}`))
      else w.resolve(msg.result)
    }
  })
  const exited = new Promise(resolve => child.on('exit', (code, signal) => resolve(code ?? signal)))
  child.on('exit', code => {
    for (const w of waiting.values()) w.reject(new Error(`${c.name} exited (${code}) before answering: ${stderr.trim()}`))
  })
  return {
    request(id) {
      return new Promise((resolve, reject) => {
        waiting.set(id, { resolve, reject })
        child.stdin.write(`{"jsonrpc":"2.0","id":${id},"method":"engine.version"}\n`)
      })
    },
    async stop() {
      child.stdin.end()
      const code = await exited
      if (code !== 0) fail(`${c.name} exited with ${code} after stdin closed: ${stderr.trim()}`)
    },
  }
}

async function timeFirstResponse(c) {
  const t0 = performance.now()
  const engine = startEngine(c)
  await engine.request(1)
  const ms = performance.now() - t0
  await engine.stop()
  return ms
}

async function warmRoundTrips(c, n) {
  const engine = startEngine(c)
  await engine.request(0) // start-up is measured above
  const latencies = []
  for (let id = 1; id <= n; id++) {
    const t0 = performance.now()
    await engine.request(id)
    latencies.push(performance.now() - t0)
  }
  await engine.stop()
  return stats(latencies)
}

/** Nearest-rank percentiles. */
function stats(samples) {
  const s = [...samples].sort((a, b) => a - b)
  const at = p => s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]
  const round = x => Math.round(x * 1000) / 1000
  return { n: s.length, min: round(s[0]), median: round(at(50)), p90: round(at(90)), p99: round(at(99)), max: round(s.at(-1)) }
}

function printTable(peerMedian) {
  const rows = [['case', 'n', 'first', 'median', 'p90', 'p99', 'x node -e 0']]
  const add = (group, name, r, ratio = true) =>
    rows.push([
      `${group}: ${name}`,
      String(r.n),
      r.first === undefined ? '' : r.first.toFixed(1),
      r.median.toFixed(2),
      r.p90.toFixed(2),
      r.p99.toFixed(2),
      ratio ? (r.median / peerMedian).toFixed(2) : '',
    ])
  for (const [name, r] of Object.entries(results.cold)) add('cold start', name, r)
  for (const [name, r] of Object.entries(results.firstResponse)) add('first response', name, r)
  for (const [name, r] of Object.entries(results.warm)) add('warm round trip', name, r, false)
  const widths = rows[0].map((_, i) => Math.max(...rows.map(r => r[i].length)))
  console.log(`times in ms; ${runs} runs per case (+1 first run), ${requests} warm requests; ${os.cpus().length} CPUs, load ${os.loadavg()[0].toFixed(2)}`)
  if (os.loadavg()[0] > os.cpus().length) console.log('note: the machine is busier than its CPU count; expect noisy figures')
  for (const r of rows) console.log(r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  '))
}

function positiveInt(s, name) {
  const n = Number(s)
  if (!Number.isSafeInteger(n) || n < 1) fail(`${name} must be a positive integer, not ${s}`)
  return n
}

function fail(message) {
  console.error(`startup bench: ${message}`)
  process.exit(1)
}
