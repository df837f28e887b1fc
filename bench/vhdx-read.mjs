#!/usr/bin/env node
// VHDX benchmark: node bench/vhdx-read.mjs [sizeGiB=4]
//  1. qemu-img creates a dynamic VHDX and qemu-io fills it completely (patterns in 256 MiB pieces).
//  2. Sequential read of the whole disk, best of 3 interleaved rounds: `qemu-img convert -f vhdx -O raw` vs HvCbt
//     converting to a raw file (4 workers, unallocated/zero extents skipped), and `qemu-img bench` (qemu's reader,
//     no output) vs HvCbt reading into memory (8 MiB reads, 2 in flight, like the qemu-img bench run).
//  3. Random 4 KiB reads and writes (in place and allocating) through HvCbt, queue depth 1 and 16.
// Results print as a table and go to bench/results/vhdx-read.json. Runs are warm (page cache), like a backup
// re-reading a recently written disk; the ratios compare like with like.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs'
import { open } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { loadVhdx } from './vhdx-bundle.mjs'

const MiB = 1024 * 1024
const GiB = 1024 * MiB
const sizeGiB = Number(process.argv[2] ?? 4)
const size = sizeGiB * GiB
const { openVhdx, createVhdx } = await loadVhdx()
const dir = mkdtempSync(join(tmpdir(), 'hvcbt-vhdx-bench-'))
const results = { sizeBytes: size, date: new Date().toISOString(), node: process.version }

const now = () => performance.now()
function best(times) {
  return Math.min(...times)
}

async function hvcbtReadAll(path, chunk = 8 * MiB) {
  const d = await openVhdx(path, { readOnly: true })
  const bufs = [Buffer.allocUnsafe(chunk), Buffer.allocUnsafe(chunk)]
  let checksum = 0
  const t0 = now()
  // Two reads in flight: the next chunk is requested while the previous one is consumed.
  let pending = d.read(0, bufs[0].subarray(0, Math.min(chunk, d.size)))
  for (let off = 0, k = 0; off < d.size; off += chunk, k ^= 1) {
    await pending
    const next = off + chunk
    if (next < d.size) pending = d.read(next, bufs[k ^ 1].subarray(0, Math.min(chunk, d.size - next)))
    checksum ^= bufs[k][0]
  }
  const ms = now() - t0
  await d.close()
  return { ms, checksum }
}

async function hvcbtConvert(path, out, chunk = 8 * MiB, workers = 4) {
  const d = await openVhdx(path, { readOnly: true })
  const fh = await open(out, 'w')
  await fh.truncate(d.size)
  const t0 = now()
  // Work list: chunks of the extents that hold data (unallocated and zero extents stay holes in the raw file).
  const work = []
  for (const e of await d.extents(0, d.size)) {
    if (e.state !== 'data' && e.state !== 'parent') continue
    for (let off = e.offset; off < e.offset + e.length; off += chunk) work.push([off, Math.min(chunk, e.offset + e.length - off)])
  }
  // A few workers, each reading a chunk and writing it out, so reads and writes overlap (qemu-img uses 8 by default).
  let next = 0
  await Promise.all(Array.from({ length: workers }, async () => {
    const buf = Buffer.allocUnsafe(chunk)
    while (next < work.length) {
      const [off, n] = work[next++]
      await d.read(off, buf.subarray(0, n))
      for (let w = 0; w < n;) w += (await fh.write(buf, w, n - w, off + w)).bytesWritten
    }
  }))
  await fh.close()
  const ms = now() - t0
  await d.close()
  return ms
}

async function randomIo(path, { write, ops, depth, label }) {
  const d = await openVhdx(path, { readOnly: !write })
  let x = 12345
  const rand = () => ((x ^= x << 13, x >>>= 0, x ^= x >>> 17, x ^= x << 5, x >>>= 0), x / 2 ** 32)
  const sectors4k = Math.floor(d.size / 4096)
  let issued = 0
  const t0 = now()
  await Promise.all(Array.from({ length: depth }, async () => {
    const buf = Buffer.alloc(4096, 0x5c)
    while (issued < ops) {
      issued++
      const off = Math.floor(rand() * sectors4k) * 4096
      if (write) await d.write(off, buf)
      else await d.read(off, buf)
    }
  }))
  if (write) await d.flush()
  const ms = now() - t0
  await d.close()
  const iops = Math.round(ops / (ms / 1000))
  console.log(`${label.padEnd(44)} ${String(iops).padStart(8)} IOPS`)
  return iops
}

try {
  const vhdx = join(dir, 'bench.vhdx')
  execFileSync('qemu-img', ['create', '-q', '-f', 'vhdx', '-o', 'subformat=dynamic', vhdx, `${sizeGiB}G`])
  results.blockSizeBytes = JSON.parse(execFileSync('qemu-img', ['info', '-f', 'vhdx', '--output=json', vhdx], { encoding: 'utf8' }))['cluster-size']
  const piece = 256 * MiB
  const args = ['-f', 'vhdx']
  for (let off = 0, i = 0; off < size; off += piece, i++) args.push('-c', `write -q -P 0x${(0x11 + i % 200).toString(16)} ${off} ${piece}`)
  args.push(vhdx)
  let t0 = now()
  execFileSync('qemu-io', args)
  console.log(`filled ${sizeGiB} GiB with qemu-io in ${((now() - t0) / 1000).toFixed(1)} s (block size ${results.blockSizeBytes / MiB} MiB)`)

  // Interleaved rounds, so machine noise (other processes on a shared host) hits every case alike; best of 3.
  const raw = join(dir, 'qemu.raw')
  const out = join(dir, 'hvcbt.raw')
  const qemuTimes = []
  const qemuBenchTimes = []
  const readTimes = []
  const convTimes = []
  for (let i = 0; i < 3; i++) {
    rmSync(raw, { force: true })
    t0 = now()
    execFileSync('qemu-img', ['convert', '-f', 'vhdx', '-O', 'raw', vhdx, raw])
    qemuTimes.push(now() - t0)
    // qemu's own reader without the raw output: `qemu-img bench`, 8 MiB sequential reads, 2 in flight (as HvCbt).
    const qb = execFileSync('qemu-img', ['bench', '-f', 'vhdx', '-c', String(size / (8 * MiB)), '-s', '8M', '-S', '8M', '-d', '2', vhdx], { encoding: 'utf8' })
    qemuBenchTimes.push(Number(/completed in ([\d.]+) seconds/.exec(qb)[1]) * 1000)
    readTimes.push((await hvcbtReadAll(vhdx)).ms)
    rmSync(out, { force: true })
    convTimes.push(await hvcbtConvert(vhdx, out))
  }
  const same = execFileSync('cmp', [raw, out]).length === 0
  const mbps = ms => Math.round(size / MiB / (ms / 1000))
  results.sequential = {
    qemuImgConvertToRawMiBps: mbps(best(qemuTimes)),
    qemuImgBenchReadMiBps: mbps(best(qemuBenchTimes)),
    hvcbtReadMiBps: mbps(best(readTimes)),
    hvcbtConvertToRawMiBps: mbps(best(convTimes)),
    convertOutputsIdentical: same,
  }
  results.sequential.readVsQemuBench = +(results.sequential.hvcbtReadMiBps / results.sequential.qemuImgBenchReadMiBps).toFixed(2)
  results.sequential.readVsQemuConvert = +(results.sequential.hvcbtReadMiBps / results.sequential.qemuImgConvertToRawMiBps).toFixed(2)
  results.sequential.convertVsQemuConvert = +(results.sequential.hvcbtConvertToRawMiBps / results.sequential.qemuImgConvertToRawMiBps).toFixed(2)
  console.log(`qemu-img convert -O raw                      ${String(results.sequential.qemuImgConvertToRawMiBps).padStart(8)} MiB/s`)
  console.log(`qemu-img bench read (8 MiB, 2 in flight)     ${String(results.sequential.qemuImgBenchReadMiBps).padStart(8)} MiB/s`)
  console.log(`HvCbt sequential read (8 MiB, 2 in flight)    ${String(results.sequential.hvcbtReadMiBps).padStart(8)} MiB/s  (x${results.sequential.readVsQemuBench} vs qemu-img bench, x${results.sequential.readVsQemuConvert} vs convert)`)
  console.log(`HvCbt convert to raw (4 workers)              ${String(results.sequential.hvcbtConvertToRawMiBps).padStart(8)} MiB/s  (x${results.sequential.convertVsQemuConvert}), output identical: ${same}`)
  rmSync(raw, { force: true })
  rmSync(out, { force: true })

  results.random = {
    read4kQd1: await randomIo(vhdx, { write: false, ops: 50000, depth: 1, label: 'random 4 KiB read, QD1' }),
    read4kQd16: await randomIo(vhdx, { write: false, ops: 100000, depth: 16, label: 'random 4 KiB read, QD16' }),
    write4kInPlaceQd1: await randomIo(vhdx, { write: true, ops: 50000, depth: 1, label: 'random 4 KiB write (allocated), QD1' }),
    write4kInPlaceQd16: await randomIo(vhdx, { write: true, ops: 100000, depth: 16, label: 'random 4 KiB write (allocated), QD16' }),
  }
  const empty = join(dir, 'empty.vhdx')
  await createVhdx(empty, { sizeBytes: size, type: 'dynamic', blockSizeBytes: MiB })
  results.random.write4kAllocatingQd1 = await randomIo(empty, { write: true, ops: 3000, depth: 1, label: 'random 4 KiB write (allocating, 1 MiB blocks)' })
  results.fileSizeAfterAllocatingBytes = statSync(empty).size
} finally {
  rmSync(dir, { recursive: true, force: true })
}
const resultsDir = join(dirname(fileURLToPath(import.meta.url)), 'results')
mkdirSync(resultsDir, { recursive: true })
writeFileSync(join(resultsDir, 'vhdx-read.json'), JSON.stringify(results, null, 2) + '\n')
console.log(JSON.stringify(results))
