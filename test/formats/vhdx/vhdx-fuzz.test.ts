/** A short in-suite fuzz run (300 iterations); bench/vhdx-fuzz.mjs runs the same for as long as you like. */
import t from 'tap'
import { copyFileSync } from 'node:fs'
import { join } from 'node:path'
import { createVhdx } from '../../../src/formats/vhdx/vhdx-create.js'
import { openVhdx } from '../../../src/formats/vhdx/vhdx-open.js'
import { fuzzVhdx } from './vhdx-fuzz-core.js'
import { tempDir } from './helpers.js'

const MiB = 1024 * 1024

async function makeFuzzSeeds(dir: string): Promise<string[]> {
  const dyn = join(dir, 'dynamic.vhdx')
  await createVhdx(dyn, { sizeBytes: 24 * MiB, type: 'dynamic', blockSizeBytes: MiB })
  const d = await openVhdx(dyn, {})
  await d.write(MiB, Buffer.alloc(2 * MiB, 0x11))
  const guid = d.dataWriteGuid
  // A seed with a live log (LogGuid set, one entry): copied while the writing session is still open.
  const withLog = join(dir, 'with-log.vhdx')
  copyFileSync(dyn, withLog)
  await d.close()
  const fixed = join(dir, 'fixed.vhdx')
  await createVhdx(fixed, { sizeBytes: 8 * MiB, type: 'fixed', blockSizeBytes: 2 * MiB, logicalSectorSize: 4096 })
  const child = join(dir, 'child.avhdx')
  await createVhdx(child, { sizeBytes: 24 * MiB, type: 'differencing', blockSizeBytes: MiB, parent: { path: dyn, dataWriteGuid: guid, logicalSectorSize: 512, relativePath: 'dynamic.vhdx' } })
  const c = await openVhdx(child, { withoutParent: true })
  await c.write(3 * MiB + 4096, Buffer.alloc(8192, 0x22))
  await c.close()
  return [dyn, fixed, child, withLog]
}

t.test('300 mutated files: only FormatError or a clean result, no hang, bounded memory', async t => {
  const dir = tempDir(t)
  const seeds = await makeFuzzSeeds(dir)
  const stats = await fuzzVhdx(seeds, 300, 20261125, { maxMs: 5000, maxHeapBytes: 512 * MiB })
  t.same(stats.findings, [], 'no findings')
  t.equal(stats.iterations, 300)
  t.ok(stats.formatErrors > 30, `mutations were detected (${stats.formatErrors} FormatErrors, ${stats.clean} clean)`)
  t.comment(`max iteration ${stats.maxIterationMs.toFixed(1)} ms, max heap ${(stats.maxHeapBytes / MiB).toFixed(0)} MiB`)
})
