#!/usr/bin/env node
// Long crash-recovery run (issue 4, "at least 200 trials"): each trial SIGKILLs a child writing through TrackedDisk
// at a random moment, reopens the store, and checks that the reported changes cover every sector that differs from
// the pre-test image. Usage: node test/long/tracking-crash.mjs [trials=200]. Exit code 1 on any miss.
import esbuild from 'esbuild'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'

const trials = Number(process.argv[2] ?? 200)
const root = path.resolve(import.meta.dirname, '../..')
const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'hvcbt-crash-long-'))
try {
  const harnessJs = path.join(dir, 'harness.mjs')
  await esbuild.build({
    entryPoints: [path.join(root, 'test/tracking/crash-harness.ts')], bundle: true, platform: 'node', format: 'esm',
    target: 'node20', outfile: harnessJs, logLevel: 'silent', external: ['esbuild'],
  })
  const harness = await import(harnessJs)
  const childJs = path.join(dir, 'child.mjs')
  await esbuild.build({
    entryPoints: [path.join(root, 'test/tracking/crash-child.ts')], bundle: true, platform: 'node', format: 'esm',
    target: 'node20', outfile: childJs, logLevel: 'silent',
  })
  let failures = 0
  let reported = 0
  let changed = 0
  const t0 = Date.now()
  for (let i = 1; i <= trials; i++) {
    const seed = (Date.now() ^ (i * 2654435761)) >>> 0
    const r = await harness.runCrashTrial(dir, childJs, seed)
    if (!r.ok) {
      failures++
      console.log(`trial ${i} seed ${seed}: FAIL ${r.detail}`)
    }
    reported += r.reportedBytes
    changed += r.changedSectors * 512
    if (i % 20 === 0 || i === trials) {
      console.log(`${i}/${trials} trials, ${failures} failures, reported/changed bytes ${(reported / Math.max(1, changed)).toFixed(2)}, ` +
        `${((Date.now() - t0) / 1000).toFixed(0)} s`)
    }
  }
  process.exitCode = failures ? 1 : 0
} finally {
  await fs.rm(dir, { recursive: true, force: true })
}
