import t from 'tap'
import { build } from 'esbuild'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { crashTrial } from './vhd-crash-core.js'
import { prng, tempDir } from './format-tools.js'

t.test('SIGKILL during VHD writes: the file opens, checks clean, and flushed writes read back', async t => {
  const dir = tempDir(t)
  const bundle = join(dir, 'writer.mjs')
  await build({
    entryPoints: [fileURLToPath(new URL('./vhd-crash-writer.ts', import.meta.url))],
    bundle: true, platform: 'node', format: 'esm', target: 'node20', outfile: bundle, logLevel: 'error',
    banner: { js: 'import { createRequire as __cr } from "module"; const require = __cr(import.meta.url);' },
  })
  const r = prng(Number(process.env.HVCBT_CRASH_SEED ?? 777))
  let flushed = 0
  for (let trial = 0; trial < 6; trial++) {
    const trialDir = join(dir, `t${trial}`)
    mkdirSync(trialDir)
    const seed = Math.floor(r() * 2 ** 31)
    const differencing = trial % 2 === 1
    const killAfter = 5 + Math.floor(r() * 400)
    const res = await crashTrial(bundle, trialDir, seed, differencing, killAfter)
    t.equal(res.problem, null, `trial ${trial} (${differencing ? 'differencing' : 'dynamic'}, seed ${seed}, kill after ${killAfter} ms, ${res.flushedOps} ops flushed, ${res.startedOps} started)`)
    flushed += res.flushedOps
  }
  t.ok(flushed > 20, `the writers got going before the kills (${flushed} flushed operations in all)`)
})
