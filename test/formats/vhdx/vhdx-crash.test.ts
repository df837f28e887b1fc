/**
 * Crash safety, a handful of trials (test/long/vhdx-crash.mjs runs hundreds): a child writes and allocates with
 * flushes, is SIGKILLed at a random moment; the file must open (replaying the log), keep every write completed
 * before the last flush, and pass checkVhdx and qemu-img check.
 */
import t from 'tap'
import { join } from 'node:path'
// @ts-expect-error plain ESM helpers without type declarations
import { bundleVhdxTo } from '../../../bench/vhdx-bundle.mjs'
// @ts-expect-error plain ESM helpers without type declarations
import { crashTrial } from '../../long/vhdx-crash.trial.mjs'
import { haveQemu, rng, tempDir } from './helpers.js'

t.test('SIGKILL during random writes leaves a consistent disk with every flushed write', async t => {
  const dir = tempDir(t)
  const bundle = await bundleVhdxTo(join(dir, 'vhdx.mjs'))
  const r = rng(4242)
  let killedMidway = 0
  for (let i = 0; i < 6; i++) {
    const seed = 1000 + i
    const killAfterMs = 20 + Math.floor(r() * 600)
    const res = await crashTrial({ bundle, dir, seed, killAfterMs, qemu: haveQemu })
    t.same(res.problems, [], `trial ${i} (seed ${seed}, kill after ${killAfterMs} ms, ${res.flushed} ops flushed, op ${res.started} in flight, log ${res.log})`)
    if (!res.finished) killedMidway++
  }
  t.ok(killedMidway >= 4, `most trials were killed mid-run (${killedMidway} of 6)`)
})
