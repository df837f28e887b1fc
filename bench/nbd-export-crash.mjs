#!/usr/bin/env node
// Long crash run of the tracked NBD export: node bench/nbd-export-crash.mjs [trials=200] [firstSeed]
// Each trial (test/nbd/export-crash-core.ts) SIGKILLs `hvcbt serve nbd` at a random moment during pipelined client
// writes, then checks that tracking recovered, reports every changed sector, and that every acknowledged write is
// in the file. Runs its own bundle of the engine (not dist/). Exits 1 if any trial fails; prints one JSON summary.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { bundleEngine, loadNbd } from './nbd-bundle.mjs'

const trials = Number(process.argv[2] ?? 200)
const first = Number(process.argv[3] ?? Date.now() % 1e6)
const engine = await bundleEngine()
process.env.HVCBT_TEST_ENGINE ??= engine.main
const { runExportCrashTrial, RpcProcess } = await loadNbd({ withCrash: true })
const dir = mkdtempSync(join(tmpdir(), 'hvcbt-nbd-crash-'))
const rpc = new RpcProcess()
const failures = []
let acked = 0
let reported = 0
let writtenRegions = 0
let killedAfterMaxMs = 0
const t0 = Date.now()
try {
  for (let seed = first; seed < first + trials; seed++) {
    const r = await runExportCrashTrial(dir, rpc, seed)
    acked += r.writesAcked
    reported += r.reportedBytes
    writtenRegions += r.writtenRegionBytes
    killedAfterMaxMs = Math.max(killedAfterMaxMs, r.killedAfterMs)
    if (!r.ok || r.writesAcked === 0) failures.push({ seed, ...r })
    if ((seed - first + 1) % 20 === 0) console.error(`${seed - first + 1}/${trials} trials, ${failures.length} failed`)
  }
} finally {
  await rpc.close()
  rmSync(dir, { recursive: true, force: true })
  rmSync(engine.dir, { recursive: true, force: true })
}
console.log(JSON.stringify({ trials, firstSeed: first, failed: failures.length, acknowledgedWrites: acked, killedAfterMaxMs,
  overReportFactor: Number((reported / writtenRegions).toFixed(2)), seconds: (Date.now() - t0) / 1000 }))
for (const f of failures.slice(0, 20)) console.error(JSON.stringify(f))
process.exitCode = failures.length ? 1 : 0
