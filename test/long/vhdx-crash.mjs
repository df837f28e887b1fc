#!/usr/bin/env node
// Long crash-safety run: node test/long/vhdx-crash.mjs [trials=200] [seed]
// Each trial SIGKILLs a writer at a random moment and verifies the disk (see vhdx-crash.trial.mjs). Prints one
// JSON summary line; exits 1 on any failed trial.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { bundleVhdxTo } from '../../bench/vhdx-bundle.mjs'
import { crashTrial } from './vhdx-crash.trial.mjs'

const trials = Number(process.argv[2] ?? 200)
let x = Number(process.argv[3] ?? Date.now() % 2 ** 31) >>> 0 || 1
const rand = () => ((x ^= x << 13, x >>>= 0, x ^= x >>> 17, x ^= x << 5, x >>>= 0), x / 2 ** 32)
const qemu = spawnSync('qemu-img', ['--version']).status === 0
const dir = mkdtempSync(join(tmpdir(), 'hvcbt-vhdx-crash-'))
const summary = { trials: 0, failed: 0, killedMidway: 0, logReplayed: 0, logGuidOnly: 0, qemuCheck: qemu, seconds: 0 }
const t0 = Date.now()
try {
  const bundle = await bundleVhdxTo(join(dir, 'vhdx.mjs'))
  for (let i = 0; i < trials; i++) {
    const seed = Math.floor(rand() * 2 ** 31)
    const killAfterMs = 5 + Math.floor(rand() * 800)
    const res = await crashTrial({ bundle, dir, seed, killAfterMs, qemu })
    summary.trials++
    if (!res.finished) summary.killedMidway++
    if (res.log === 'replayed') summary.logReplayed++
    if (res.log === 'guid-only') summary.logGuidOnly++
    if (res.problems.length) {
      summary.failed++
      console.error(`trial ${i} seed ${seed} kill ${killAfterMs} ms: ${res.problems.join('; ')}`)
    }
    rmSync(join(dir, `crash-${seed}.vhdx`), { force: true })
  }
} finally {
  summary.seconds = (Date.now() - t0) / 1000
  rmSync(dir, { recursive: true, force: true })
}
console.log(JSON.stringify(summary))
process.exitCode = summary.failed ? 1 : 0
