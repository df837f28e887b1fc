// Change sources other than live writes: differencing disks (child extents vs parent) and content scans.
import t from 'tap'
import { createHash } from 'node:crypto'
import fsp from 'node:fs/promises'
import path from 'node:path'
import { createDisk } from '../../src/formats/create.js'
import { openDisk } from '../../src/formats/open.js'
import { differencingChanges } from '../../src/tracking/differencing-source.js'
import {
  compareHashMaps, HashMapFormatError, loadHashMap, saveHashMap, scanDisk, uncovered,
} from '../../src/tracking/content-scan.js'
import { filterZeroGranules } from '../../src/tracking/zero-filter.js'
import { MemDisk, tempDir } from './helpers.js'

const KiB = 1024
const MiB = 1024 * KiB

for (const format of ['vhdx', 'vhd'] as const) {
  t.test(`differencing ${format}: the child's present sectors are exactly the writes since the checkpoint`, async t => {
    const dir = await tempDir()
    t.teardown(() => fsp.rm(dir, { recursive: true, force: true }))
    const parent = path.join(dir, `parent.${format}`)
    const child = path.join(dir, `child.${format === 'vhdx' ? 'avhdx' : 'vhd'}`)
    await createDisk(parent, { format, type: 'dynamic', sizeBytes: 64 * MiB, blockSizeBytes: 2 * MiB })
    let d = await openDisk(parent)
    await d.write(0, new Uint8Array(8 * MiB).fill(7)) // parent data that the child must not report
    await d.close()
    await createDisk(child, { format, type: 'differencing', parentPath: parent })
    d = await openDisk(child)
    const writes = [
      { offset: 3 * MiB + 4 * KiB, length: 4 * KiB },
      { offset: 30 * MiB, length: 192 * KiB },
      { offset: 63 * MiB + 512, length: 512 },
    ]
    for (const w of writes) await d.write(w.offset, new Uint8Array(w.length).fill(0x5a))
    await d.close()
    d = await openDisk(child, { readOnly: true })
    try {
      const exact = await differencingChanges(d)
      t.same(uncovered(writes, exact), [], 'every written byte is reported')
      const reported = exact.reduce((n, r) => n + r.length, 0)
      const written = writes.reduce((n, w) => n + w.length, 0)
      t.ok(reported <= written + 3 * 64 * KiB, `reported ${reported} bytes for ${written} written (no parent data)`)
      const rounded = await differencingChanges(d, { granularityBytes: 64 * KiB })
      t.same(rounded, [
        { offset: 3 * MiB, length: 64 * KiB },
        { offset: 30 * MiB, length: 192 * KiB },
        { offset: 63 * MiB, length: 64 * KiB },
      ])
    } finally {
      await d.close()
    }
  })
}

t.test('content scan: changed blocks, hash map persistence and corruption detection', async t => {
  const dir = await tempDir()
  t.teardown(() => fsp.rm(dir, { recursive: true, force: true }))
  const disk = new MemDisk(4 * MiB + 512) // a partial last block
  for (let i = 0; i < disk.size; i += 4096) disk.data[i] = i & 0xff
  const before = await scanDisk(disk, { refPointId: 'rp-x-1' })
  t.equal(before.digests.length, Math.ceil(disk.size / (64 * KiB)) * 20)
  t.ok(Buffer.from(before.digests.subarray(0, 20)).equals(createHash('sha1').update(disk.data.subarray(0, 64 * KiB)).digest()),
    'block 0 digest is the SHA-1 of block 0')
  disk.data[100 * KiB] = 0xee
  disk.data[disk.size - 1] = 1
  const after = await scanDisk(disk)
  t.same(compareHashMaps(before, after), [{ offset: 64 * KiB, length: 64 * KiB }, { offset: 4 * MiB, length: 512 }])
  const file = path.join(dir, 'scan.hashes')
  await saveHashMap(file, before)
  const back = await loadHashMap(file)
  t.equal(back.refPointId, 'rp-x-1')
  t.same(compareHashMaps(back, before), [])
  const raw = await fsp.readFile(file)
  raw[raw.length - 1]! ^= 1
  await fsp.writeFile(file, raw)
  await t.rejects(loadHashMap(file), HashMapFormatError)
  t.throws(() => compareHashMaps(before, { ...after, blockBytes: 4096 }), RangeError)
  await t.rejects(scanDisk(disk, { blockBytes: 1000 }), RangeError)
  const s256 = await scanDisk(disk, { algorithm: 'sha256', blockBytes: MiB })
  t.equal(s256.digests.length, 5 * 32)
})

t.test('zero filter: all-zero granules dropped, granules with data kept whole', async t => {
  const disk = new MemDisk(2 * MiB)
  disk.data[64 * KiB + 10] = 1
  const r = await filterZeroGranules(disk, [{ offset: 0, length: 256 * KiB }, { offset: MiB, length: 64 * KiB }], 64 * KiB)
  t.same(r.data, [{ offset: 64 * KiB, length: 64 * KiB }])
  t.same(r.zero, [{ offset: 0, length: 64 * KiB }, { offset: 128 * KiB, length: 128 * KiB }, { offset: MiB, length: 64 * KiB }])
})
