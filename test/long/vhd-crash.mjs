#!/usr/bin/env node
// Long crash run for VHD writes: node test/long/vhd-crash.mjs [trials=200] [seed]
// Each trial SIGKILLs a writer at a random moment during random writes, zeroings and block allocations into a
// dynamic VHD or a differencing child (alternately), then requires that the file opens, checks clean, and reads
// every flushed write back (test/formats/vhd-crash-core.ts). Exits 1 on any failure.
import { build } from 'esbuild'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const trials = Number(process.argv[2] ?? 200)
let seed = Number(process.argv[3] ?? Date.now() % 2 ** 31) >>> 0 || 1
const next = () => { seed ^= seed << 13; seed >>>= 0; seed ^= seed >>> 17; seed ^= seed << 5; seed >>>= 0; return seed }
const dir = mkdtempSync(join(tmpdir(), 'hvcbt-vhd-crash-'))
const common = { bundle: true, platform: 'node', format: 'esm', target: 'node20', logLevel: 'error',
  banner: { js: 'import { createRequire as __cr } from "module"; const require = __cr(import.meta.url);' } }
try {
  const writer = join(dir, 'writer.mjs')
  await build({ ...common, entryPoints: [join(root, 'test/formats/vhd-crash-writer.ts')], outfile: writer })
  const core = join(dir, 'core.mjs')
  await build({ ...common, entryPoints: [join(root, 'test/formats/vhd-crash-core.ts')], outfile: core })
  const { crashTrial } = await import(pathToFileURL(core).href)
  const started = Date.now()
  let failures = 0
  let flushed = 0
  for (let i = 0; i < trials; i++) {
    const trialDir = join(dir, `t${i}`)
    mkdirSync(trialDir)
    const s = next() % 2 ** 31
    const killAfter = 5 + (next() % 500)
    const res = await crashTrial(writer, trialDir, s, i % 2 === 1, killAfter)
    flushed += res.flushedOps
    if (res.problem) {
      failures++
      console.error(`trial ${i}: ${res.problem}`)
    }
    rmSync(trialDir, { recursive: true, force: true })
  }
  console.log(JSON.stringify({ trials, failures, flushedOps: flushed, seconds: (Date.now() - started) / 1000 }))
  process.exitCode = failures ? 1 : 0
} finally {
  rmSync(dir, { recursive: true, force: true })
}
