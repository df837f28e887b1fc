// Copy-before-write checkpoint: a reader of the checkpoint sees exactly the content at the moment the reference
// point was created, while 8 writers keep changing the live disk (with random latency to interleave requests).
import t from 'tap'
import { createHash } from 'node:crypto'
import fsp from 'node:fs/promises'
import path from 'node:path'
import { CheckpointOverlay } from '../../src/tracking/checkpoint-overlay.js'
import { TrackingStore } from '../../src/tracking/store.js'
import { TrackedDisk } from '../../src/tracking/tracked-disk.js'
import { subtractRanges } from '../../src/tracking/ranges.js'
import { MemDisk, diffUnits, tempDir } from './helpers.js'

const KiB = 1024
const MiB = 1024 * KiB
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

t.test('checkpoint under concurrent writes equals the image at the reference point', async t => {
  const dir = await tempDir()
  t.teardown(() => fsp.rm(dir, { recursive: true, force: true }))
  const size = 16 * MiB
  const diskPath = path.join(dir, 'disk.raw')
  await fsp.writeFile(diskPath, '')
  await fsp.truncate(diskPath, size)
  await TrackingStore.enable(diskPath, size, null)
  const mem = new MemDisk(size)
  for (let i = 0; i < size; i += 512) mem.data[i] = (i >>> 9) & 0xff
  mem.jitterMs = 2
  const store = await TrackingStore.open(diskPath)
  const tracked = new TrackedDisk(mem, store)
  const overlay = new CheckpointOverlay(tracked)
  const first = await tracked.createRefPoint()
  const initial = mem.data.slice()

  let stop = false
  let writes = 0
  const writer = async (seed: number): Promise<void> => {
    let x = seed
    const rnd = (n: number): number => { x = (Math.imul(x, 1664525) + 1013904223) >>> 0; return x % n }
    while (!stop) {
      const len = (1 + rnd(64)) * 512
      const off = rnd((size - len) / 512) * 512
      const k = rnd(8)
      if (k === 0) await overlay.writeZeroes(off, len)
      else await overlay.write(off, new Uint8Array(len).fill(1 + rnd(255)))
      writes++
    }
  }
  const writers = Array.from({ length: 8 }, (_, i) => writer(i * 7919 + 1))
  await new Promise(res => setTimeout(res, 100))

  let atMoment = ''
  let snapshot: Uint8Array = new Uint8Array(0)
  const { view, result: rp } = await overlay.openCheckpoint(path.join(dir, 'cp.cow'), 'cp1', () => {
    snapshot = mem.data.slice() // no write is in flight here: this is the content at the reference point
    atMoment = sha(snapshot)
    return tracked.createRefPoint()
  })
  const writesAtCheckpoint = writes
  // Read the checkpoint in pieces while the writers continue.
  const got = new Uint8Array(size)
  const pieces = Array.from({ length: 64 }, (_, i) => i)
  await Promise.all(Array.from({ length: 4 }, async () => {
    for (let i = pieces.shift(); i !== undefined; i = pieces.shift()) {
      await view.read(i * 256 * KiB, got.subarray(i * 256 * KiB, (i + 1) * 256 * KiB))
      await new Promise(res => setTimeout(res, 3))
    }
  }))
  stop = true
  await Promise.all(writers)
  t.ok(writes - writesAtCheckpoint > 50, `${writes - writesAtCheckpoint} writes landed while the checkpoint was read`)
  t.ok(view.copiedGranules > 0, `${view.copiedGranules} granules were copied before being overwritten`)
  t.equal(sha(got), atMoment, 'checkpoint content hash equals the image at the reference point')
  t.not(sha(mem.data), atMoment, 'the live disk did move on')

  // Tracking agrees with the content: changes before and after the point cover the bytes that differ.
  const before = diffUnits(initial, snapshot, 512).map(o => ({ offset: o, length: 512 }))
  const after = diffUnits(snapshot, mem.data, 512).map(o => ({ offset: o, length: 512 }))
  t.same(subtractRanges(before, await store.changedRanges(first.id, rp.id)), [], 'first..checkpoint covers its changes')
  t.same(subtractRanges(after, await store.changedRanges(rp.id)), [], 'checkpoint..now covers its changes')

  await overlay.closeCheckpoint()
  await t.rejects(view.read(0, new Uint8Array(512)), /closed/)
  await t.rejects(fsp.access(path.join(dir, 'cp.cow')), 'side file removed')
  await t.rejects(view.write(), /read-only/)
  await overlay.close()
})

t.test('one checkpoint at a time; a failing freeze leaves no checkpoint', async t => {
  const dir = await tempDir()
  t.teardown(() => fsp.rm(dir, { recursive: true, force: true }))
  const overlay = new CheckpointOverlay(new MemDisk(MiB))
  await t.rejects(overlay.openCheckpoint(path.join(dir, 'a.cow'), 'a', () => { throw new Error('freeze failed') }), /freeze failed/)
  t.equal(overlay.checkpointOpen, false)
  const { view } = await overlay.openCheckpoint(path.join(dir, 'b.cow'), 'b', () => 1)
  await t.rejects(overlay.openCheckpoint(path.join(dir, 'c.cow'), 'c', () => 1), { category: 'ResourceBusy' })
  await overlay.write(0, new Uint8Array(512).fill(9))
  const b = new Uint8Array(512)
  await view.read(0, b)
  t.equal(b[0], 0, 'view keeps the old content')
  await overlay.close()
})
