/**
 * Concurrent requests, as an NBD client pipelines them: non-overlapping writes (allocating and in place),
 * writeZeroes and reads in flight together must all take effect, and the file must check clean.
 */
import t from 'tap'
import { join } from 'node:path'
import { checkVhdx } from '../../../src/formats/vhdx/vhdx-check.js'
import { createVhdx } from '../../../src/formats/vhdx/vhdx-create.js'
import { openVhdx } from '../../../src/formats/vhdx/vhdx-open.js'
import { haveQemu, rng, runStatus, tempDir } from './helpers.js'

const MiB = 1024 * 1024

t.test('200 pipelined requests on disjoint ranges all take effect', async t => {
  const dir = tempDir(t)
  const p = join(dir, 'c.vhdx')
  const size = 64 * MiB
  await createVhdx(p, { sizeBytes: size, type: 'dynamic', blockSizeBytes: MiB })
  const d = await openVhdx(p, {})
  await d.write(0, Buffer.alloc(16 * MiB, 0x01)) // some blocks allocated up front: in-place writes
  const expected = Buffer.alloc(size)
  expected.fill(0x01, 0, 16 * MiB)
  // Disjoint 64 KiB slots in random order; each gets one request.
  const slots = Array.from({ length: size / (64 * 1024) }, (_, i) => i)
  const r = rng(99)
  for (let i = slots.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1))
    ;[slots[i], slots[j]] = [slots[j]!, slots[i]!]
  }
  const ops = slots.slice(0, 200).map((slot, i) => {
    const off = slot * 64 * 1024
    if (i % 7 === 3) {
      expected.fill(0, off, off + 64 * 1024)
      return d.writeZeroes(off, 64 * 1024)
    }
    if (i % 11 === 5) return d.read(off, new Uint8Array(64 * 1024))
    const data = Buffer.alloc(64 * 1024, 0x10 + (i % 200))
    data.copy(expected, off)
    return d.write(off, data, { fua: i % 13 === 0 })
  })
  await Promise.all(ops)
  await d.flush()
  const got = Buffer.alloc(size)
  await d.read(0, got)
  await d.close()
  t.ok(got.equals(expected), 'every request took effect')
  t.same(await checkVhdx(p), [])
  if (haveQemu) t.equal(runStatus('qemu-img', ['check', '-f', 'vhdx', p]).status, 0, 'qemu-img check clean')
})
