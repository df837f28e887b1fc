#!/usr/bin/env node
// Change query time for a 2 TiB disk at 64 KiB granularity with 1 % scattered changes (issue 4: under 20 ms).
// node bench/tracking-query.mjs [sizeTiB=2] [percent=1]
//  - scan: DenseBitmap.forEachRun over the live bitmap (the mechanism alone);
//  - query live: TrackingStore.changedRanges(newest point) -> merged byte ranges (live bitmap only);
//  - query 3 segments: changedRanges(oldest of 4 points): 3 frozen segments read from their files, OR'd, + live;
//  - the same, packed: changedRangeList (typed arrays, no object per range: what large consumers use);
//  - block status: the qemu:dirty-bitmap context answering the whole disk in 4 GiB requests (cached segment union).
// Results go to bench/results/tracking-query.json.
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { loadTracking, median, saveResults } from './tracking-lib.mjs'

const TiB = 2 ** 40
const sizeBytes = Number(process.argv[2] ?? 2) * TiB
const percent = Number(process.argv[3] ?? 1)
const G = 64 * 1024
const T = await loadTracking()
const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'hvcbt-tq-'))
const diskPath = path.join(dir, 'disk.raw') // the store never reads the disk itself
await fs.writeFile(diskPath, '')
const bits = Math.ceil(sizeBytes / G)
let x = 12345
const rnd = n => { x = (Math.imul(x, 1664525) + 1013904223) >>> 0; return Math.floor((x / 4294967296) * n) }

try {
  await T.TrackingStore.enable(diskPath, sizeBytes, null, { granularityBytes: G })
  const store = await T.TrackingStore.open(diskPath)
  const rps = []
  const perSegment = Math.floor((bits * percent) / 100 / 4)
  for (let s = 0; s < 4; s++) {
    rps.push(await store.createRefPoint())
    const marks = []
    for (let i = 0; i < perSegment; i++) {
      const p = store.markWrite(rnd(bits) * G, 4096)
      if (p) marks.push(p)
    }
    await Promise.all(marks)
  }
  const runs = (fn, n = 15) => (async () => {
    const times = []
    const cpu = []
    let out
    for (let i = 0; i < n; i++) {
      const c0 = process.cpuUsage()
      const t0 = performance.now()
      out = await fn()
      times.push(performance.now() - t0)
      const c = process.cpuUsage(c0)
      cpu.push((c.user + c.system) / 1000)
    }
    return { ms: median(times), best: Math.min(...times), cpuMs: median(cpu), out }
  })()
  // Everything since the oldest point: 3 segments + live = about `percent` % of the disk.
  const all = await store.changedBitmap(rps[0].id)
  const scan = await runs(async () => { let n = 0; all.forEachRun(() => { n++ }); return n })
  const c0 = performance.now()
  await store.changedRanges(rps[1].id) // cold: segments read from their files
  const cold = performance.now() - c0
  const live = await runs(() => store.changedRanges(rps[3].id))
  const full = await runs(() => store.changedRanges(rps[0].id), 7)
  const packed = await runs(async () => (await store.changedRangeList(rps[0].id)).count, 7)
  const ctx = new T.DirtyBitmapContext(store, rps[0].id)
  await ctx.blockStatus(0, 4096) // build the cached union once
  const status = await runs(async () => {
    let n = 0
    for (let off = 0; off < sizeBytes; off += 4 * 2 ** 30) n += (await ctx.blockStatus(off, 4 * 2 ** 30)).length
    return n
  }, 7)
  const results = {
    date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, load: os.loadavg()[0],
    coldQuery3SegmentsMs: cold, sizeBytes, granularityBytes: G, bits, changedPercent: percent,
    changedGranules: all.count(), runs: scan.out,
    scan, queryLive: { ...live, out: live.out.length }, query3Segments: { ...full, out: full.out.length }, query3SegmentsPacked: packed,
    blockStatusWholeDisk: status,
  }
  await store.close()
  const row = (what, r, items) => ({ what, 'wall ms (median)': r.ms.toFixed(2), 'wall ms (best)': r.best.toFixed(2), 'cpu ms (median)': r.cpuMs.toFixed(2), items })
  console.table([
    row('run scan (mechanism)', scan, `${scan.out} runs`),
    row('changedRanges, live bitmap', live, `${live.out.length} ranges`),
    row('changedRanges, 3 segments + live', full, `${full.out.length} ranges`),
    row('changedRangeList (packed), 3 segments + live', packed, `${packed.out} ranges`),
    row('dirty-bitmap block status, whole disk', status, `${status.out} descriptors`),
  ])
  console.log(`load average ${os.loadavg()[0].toFixed(1)} on ${os.cpus().length} CPUs; first (cold) 3-segment query ${cold.toFixed(2)} ms`)
  saveResults('tracking-query', results)
} finally {
  await fs.rm(dir, { recursive: true, force: true })
}
