import t from 'tap'
import { join } from 'node:path'
import { createVhd } from '../../src/formats/vhd/vhd-create.js'
import { openVhd } from '../../src/formats/vhd/vhd-disk.js'
import { tempDir } from './format-tools.js'
import { fuzzVhd } from './vhd-fuzz-core.js'

const MiB = 1024 * 1024

/** Seeds: a dynamic disk with data, a fixed disk, and a differencing child with sub-block writes. */
export async function makeSeeds(dir: string): Promise<{ path: string; parent?: string }[]> {
  const dyn = join(dir, 'dyn.vhd')
  await createVhd(dyn, { sizeBytes: 12 * MiB, type: 'dynamic', blockSizeBytes: MiB })
  let d = await openVhd(dyn)
  await d.write(MiB, Buffer.alloc(MiB + 4096, 0x11))
  await d.close()
  const fixed = join(dir, 'fixed.vhd')
  await createVhd(fixed, { sizeBytes: 2 * MiB, type: 'fixed' })
  const child = join(dir, 'child.vhd')
  await createVhd(child, { type: 'differencing', parentPath: dyn })
  d = await openVhd(child)
  await d.write(5 * MiB + 1536, Buffer.alloc(2048, 0x22))
  await d.close()
  return [{ path: dyn }, { path: fixed }, { path: child, parent: dyn }]
}

t.test('fuzzed VHD files give FormatErrors, never crashes, hangs or huge allocations', async t => {
  const dir = tempDir(t)
  const seeds = await makeSeeds(dir)
  const seed = Number(process.env.HVCBT_FUZZ_SEED ?? 20261125)
  const stats = await fuzzVhd(seeds, 400, seed, dir, { maxIterationMs: 5000 })
  t.equal(stats.iterations, 400)
  t.same(stats.findings, [], `no findings (seed ${seed})`)
  t.ok(stats.formatErrors > 50, `most damaged files are rejected (${stats.formatErrors})`)
  t.ok(stats.clean > 10, `some damaged files still read (${stats.clean})`)
})
