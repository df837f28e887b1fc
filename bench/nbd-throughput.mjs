#!/usr/bin/env node
// NBD export throughput, HvCbt vs qemu-nbd, same image, same clients, same run:
//   node bench/nbd-throughput.mjs [sizeGiB=2] [rounds=3]
// Reads: `nbdcopy nbd://... null:` and `qemu-img convert -n nbd://... null-co://`; writes: `nbdcopy src.raw nbd://...`
// into a fresh sparse target. Each figure is the best of `rounds` runs, servers alternating. Prints a table and
// writes JSON to bench/results/nbd-throughput-<timestamp>.json. Needs qemu-nbd, qemu-img and nbdcopy.
import { execFile, spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
const GiB = 1024 ** 3
const sizeGiB = Number(process.argv[2] ?? 2)
const rounds = Number(process.argv[3] ?? 3)
const size = sizeGiB * GiB
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hvcbt-nbd-bench-'))

function run(cmd, args) {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { maxBuffer: 1 << 24 }, (err, stdout, stderr) => (err ? reject(new Error(`${cmd}: ${err.message}\n${stderr}`)) : resolve(stdout)))
  })
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
    s.on('error', reject)
  })
}

async function waitForPort(port) {
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise(resolve => {
      const c = net.connect({ port, host: '127.0.0.1' }, () => { c.destroy(); resolve(true) })
      c.on('error', () => resolve(false))
    })
    if (ok) return
    await new Promise(r => setTimeout(r, 50))
  }
  throw new Error(`nothing listens on ${port}`)
}

/** Start a server for `file`; returns { uri, stop }. */
async function start(kind, file, readOnly) {
  if (kind === 'qemu-nbd') {
    const port = await freePort()
    const args = ['-f', 'raw', '-t', '-e', '16', '-b', '127.0.0.1', '-p', String(port), '-x', 'disk', ...(readOnly ? ['-r'] : []), file]
    const child = spawn('qemu-nbd', args, { stdio: 'ignore' })
    await waitForPort(port)
    return { uri: `nbd://127.0.0.1:${port}/disk`, cpu: () => cpuSeconds(child.pid), stop: () => stopChild(child) }
  }
  const child = spawn(process.execPath, [path.join(here, 'nbd-serve-child.mjs'), file, 'disk', readOnly ? 'ro' : 'rw'], { stdio: ['ignore', 'pipe', 'inherit'] })
  const line = await new Promise((resolve, reject) => {
    let buf = ''
    child.stdout.on('data', d => { buf += d; if (buf.includes('\n')) resolve(buf) })
    child.once('exit', code => reject(new Error(`hvcbt server exited (${code})`)))
  })
  const { port } = JSON.parse(line)
  return { uri: `nbd://127.0.0.1:${port}/disk`, cpu: () => cpuSeconds(child.pid), stop: () => stopChild(child) }
}

/** CPU seconds (user + system) a process has used so far, from /proc (Linux). */
function cpuSeconds(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / 100 // utime + stime, in USER_HZ (100 on Linux)
  } catch {
    return NaN
  }
}

function stopChild(child) {
  return new Promise(resolve => {
    if (child.exitCode !== null) return resolve()
    child.once('exit', () => resolve())
    child.kill('SIGTERM')
  })
}

async function timed(fn) {
  const t0 = process.hrtime.bigint()
  await fn()
  return Number(process.hrtime.bigint() - t0) / 1e9
}

/** A filled (non-sparse) image: 1 MiB of pseudo-random bytes, varied per MiB so nothing dedups or compresses. */
function makeImage(file) {
  const fd = fs.openSync(file, 'w')
  const block = Buffer.alloc(1 << 20)
  let x = 12345
  for (let i = 0; i < block.length; i += 4) {
    x = (x * 1103515245 + 12345) >>> 0
    block.writeUInt32LE(x, i)
  }
  for (let off = 0; off < size; off += block.length) {
    block.writeUInt32LE(off / block.length, 0)
    fs.writeSync(fd, block, 0, block.length, off)
  }
  fs.closeSync(fd)
}

const clients = {
  'nbdcopy read': uri => run('nbdcopy', [uri, 'null:']),
  'qemu-img convert read': uri => run('qemu-img', ['convert', '-n', '-f', 'raw', uri, '--target-image-opts', `driver=null-co,size=${size}`]),
}

try {
  const source = path.join(dir, 'source.raw')
  makeImage(source)
  const servers = ['hvcbt', 'qemu-nbd']
  const results = {}
  const cpu = {}
  /** Keep the best time of each (test, server), and the server CPU seconds of that run. */
  const record = (test, kind, secs, cpuSecs) => {
    results[test] ??= {}
    cpu[test] ??= {}
    if (secs < (results[test][kind] ?? Infinity)) {
      results[test][kind] = secs
      cpu[test][kind] = cpuSecs
    }
  }
  for (const [name, client] of Object.entries(clients)) {
    results[name] = {}
    for (let r = 0; r < rounds; r++) {
      for (const kind of r % 2 ? [...servers].reverse() : servers) {
        const s = await start(kind, source, true)
        try {
          const cpu0 = s.cpu()
          const secs = await timed(() => client(s.uri))
          record(name, kind, secs, s.cpu() - cpu0)
        } finally {
          await s.stop()
        }
      }
    }
  }
    for (let r = 0; r < rounds; r++) {
    for (const kind of r % 2 ? [...servers].reverse() : servers) {
      const target = path.join(dir, `target-${kind}.raw`)
      fs.rmSync(target, { force: true })
      fs.writeFileSync(target, '')
      fs.truncateSync(target, size)
      const s = await start(kind, target, false)
      try {
        const cpu0 = s.cpu()
        const secs = await timed(() => run('nbdcopy', ['--flush', source, s.uri]))
        record('nbdcopy write', kind, secs, s.cpu() - cpu0)
      } finally {
        await s.stop()
      }
      fs.rmSync(target, { force: true })
    }
  }
  const rows = Object.entries(results).map(([test, r]) => {
    const mbps = k => size / r[k] / 1e6
    const perCpu = k => Math.round(size / cpu[test][k] / 1e6)
    return {
      test, hvcbtMBps: Math.round(mbps('hvcbt')), qemuNbdMBps: Math.round(mbps('qemu-nbd')), ratio: Number((mbps('hvcbt') / mbps('qemu-nbd')).toFixed(3)),
      hvcbtServerCpuSeconds: cpu[test].hvcbt, qemuNbdServerCpuSeconds: cpu[test]['qemu-nbd'], hvcbtMBPerCpuSecond: perCpu('hvcbt'), qemuNbdMBPerCpuSecond: perCpu('qemu-nbd'),
    }
  })
  console.log(`image ${sizeGiB} GiB, best of ${rounds}, ${os.cpus().length} CPUs, node ${process.version}`)
  for (const x of rows) {
    console.log(`${x.test.padEnd(24)} hvcbt ${String(x.hvcbtMBps).padStart(6)} MB/s   qemu-nbd ${String(x.qemuNbdMBps).padStart(6)} MB/s   ratio ${x.ratio}` +
      `   server CPU s: hvcbt ${x.hvcbtServerCpuSeconds.toFixed(2)} qemu-nbd ${x.qemuNbdServerCpuSeconds.toFixed(2)}`)
  }
  const out = path.join(here, 'results')
  fs.mkdirSync(out, { recursive: true })
  const stamp = new Date().toISOString().replace(/[:.]/g, '-')
  fs.writeFileSync(path.join(out, `nbd-throughput-${stamp}.json`), JSON.stringify({ date: new Date().toISOString(), sizeBytes: size, rounds, cpus: os.cpus().length, node: process.version, rows }, null, 2) + '\n')
} finally {
  fs.rmSync(dir, { recursive: true, force: true })
}
