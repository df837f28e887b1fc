#!/usr/bin/env node
// Write throughput to a raw file with tracking off (RawDisk) vs on (TrackedDisk over the same RawDisk):
//   warm:  every coarse region already durable this epoch (one bit test per write);
//   epoch: right after a checkpoint (new journal epoch; regions touched in the previous epoch are carried over);
//   cold:  store just opened (empty journal: the first write to each 8 MiB region waits for a journal sector
//          write + fdatasync; a sequential stream marks 8 regions ahead per sync).
// node bench/tracking-write-cost.mjs [sizeMiB=512] [rounds=3]
// Workloads, each ending with a flush (fdatasync of the disk) so page-cache-speed writes are not the whole story:
//   seq: 1 MiB writes over the whole file, 4 in flight;  rand: 4 KiB writes at random offsets, 16 in flight.
// Modes are interleaved round by round and the median per mode is reported (the machine is shared).
// Target (issue 4): tracking costs under 3 %. Results: bench/results/tracking-write-cost.json.
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { loadTracking, median, saveResults } from './tracking-lib.mjs'

const MiB = 1024 * 1024
const sizeBytes = Number(process.argv[2] ?? 512) * MiB
const rounds = Number(process.argv[3] ?? 3)
const T = await loadTracking()
const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'hvcbt-twc-'))
const diskPath = path.join(dir, 'disk.raw')

async function runLoad(disk, kind) {
  let x = 777
  const rnd = n => { x = (Math.imul(x, 1664525) + 1013904223) >>> 0; return Math.floor((x / 4294967296) * n) }
  const bs = kind === 'seq' ? MiB : 4096
  const count = kind === 'seq' ? sizeBytes / MiB : Math.min(32768, sizeBytes / 4096 / 2)
  const depth = kind === 'seq' ? 4 : 16
  const buf = new Uint8Array(bs).fill(0x5a)
  let next = 0
  const c0 = process.cpuUsage()
  const t0 = performance.now()
  await Promise.all(Array.from({ length: depth }, async () => {
    for (let i = next++; i < count; i = next++) {
      const off = kind === 'seq' ? i * bs : rnd(sizeBytes / bs) * bs
      await disk.write(off, buf)
    }
  }))
  await disk.flush()
  const ms = performance.now() - t0
  const c = process.cpuUsage(c0) // every thread of the process (libuv pool included)
  return { ms, mbps: (count * bs) / MiB / (ms / 1000), cpuUsPerWrite: (c.user + c.system) / count }
}

try {
  // A fully written file, so no mode pays for block allocation the others don't.
  const fh = await fs.open(diskPath, 'w')
  const zero = Buffer.alloc(8 * MiB)
  for (let off = 0; off < sizeBytes; off += zero.length) await fh.write(zero, 0, zero.length, off)
  await fh.sync()
  await fh.close()
  await T.TrackingStore.enable(diskPath, sizeBytes, null)

  const raw = await T.openRaw(diskPath)
  let tracked = await T.TrackedDisk.attach(diskPath, raw, { closeStore: false })
  const results = { date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, sizeBytes, rounds, runs: {} }
  const modes = {
    off: async () => raw,
    warm: async () => tracked, // regions were marked by the previous rounds / warm-up
    epoch: async () => { await tracked.store.checkpoint(); return tracked },
    cold: async () => {
      await tracked.store.close()
      tracked = new T.TrackedDisk(raw, await T.TrackingStore.open(diskPath), { closeStore: false })
      return tracked
    },
  }
  for (const kind of ['seq', 'rand']) {
    await runLoad(tracked, kind) // warm-up: page cache, JIT, and every journal region touched once
    for (let r = 0; r < rounds; r++) {
      // Shuffle the order each round so background writeback does not always hit the same mode.
      const order = Object.entries(modes).sort(() => Math.random() - 0.5)
      for (const [mode, prepare] of order) {
        const disk = await prepare()
        const syncs0 = tracked.store.journalSyncCount
        const res = await runLoad(disk, kind)
        res.journalSyncs = mode === 'off' ? 0 : tracked.store.journalSyncCount - syncs0
        ;(results.runs[`${kind}-${mode}`] ??= []).push(res)
      }
    }
  }
  await tracked.store.close()
  await raw.close()
  const rows = []
  const summary = {}
  for (const kind of ['seq', 'rand']) {
    const base = median(results.runs[`${kind}-off`].map(r => r.mbps))
    for (const mode of ['off', 'warm', 'epoch', 'cold']) {
      const runs = results.runs[`${kind}-${mode}`]
      const mbps = median(runs.map(r => r.mbps))
      const costPct = ((base - mbps) / base) * 100
      const cpu = median(runs.map(r => r.cpuUsPerWrite))
      const cpuBase = median(results.runs[`${kind}-off`].map(r => r.cpuUsPerWrite))
      summary[`${kind}-${mode}`] = { mbps, costPct, cpuUsPerWrite: cpu, journalSyncs: median(runs.map(r => r.journalSyncs)) }
      rows.push({ load: kind, tracking: mode, 'MiB/s': mbps.toFixed(1), 'cost %': mode === 'off' ? '-' : costPct.toFixed(2),
        'cpu µs/write': cpu.toFixed(2), 'cpu cost %': mode === 'off' ? '-' : (((cpu - cpuBase) / cpuBase) * 100).toFixed(2),
        'journal syncs': median(runs.map(r => r.journalSyncs)) })
    }
  }
  results.summary = summary
  // The tracking layer's own CPU per request, over a disk that does nothing (isolates it from I/O noise).
  const nul = { size: sizeBytes, logicalSectorSize: 512, physicalSectorSize: 512, readOnly: false, async write() {}, async flush() {} }
  const store2 = await T.TrackingStore.open(diskPath)
  const overNull = new T.TrackedDisk(nul, store2, { closeStore: false })
  const small = new Uint8Array(4096)
  const perWrite = async d => {
    const N = 200000
    const c0 = process.cpuUsage()
    for (let i = 0; i < N; i++) await d.write(((i * 7919) % (sizeBytes / 4096)) * 4096, small)
    const c = process.cpuUsage(c0)
    return (c.user + c.system) / N
  }
  await perWrite(overNull)
  const nullUs = median([await perWrite(nul), await perWrite(nul), await perWrite(nul)])
  const trackedUs = median([await perWrite(overNull), await perWrite(overNull), await perWrite(overNull)])
  await store2.close()
  results.layerCpuUsPerWrite = trackedUs - nullUs
  console.log(`tracking layer CPU per write (warm journal, null disk below): ${(trackedUs - nullUs).toFixed(3)} µs`)
  results.loadAverage = os.loadavg()[0]
  console.table(rows)
  console.log(`load average ${os.loadavg()[0].toFixed(1)} on ${os.cpus().length} CPUs`)
  saveResults('tracking-write-cost', results)
} finally {
  await fs.rm(dir, { recursive: true, force: true })
}
