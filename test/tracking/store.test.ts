import t from 'tap'
import fsp from 'node:fs/promises'
import path from 'node:path'
import { EngineError } from '../../src/engine/errors.js'
import { TrackingStore, sidecarPathOf } from '../../src/tracking/store.js'
import { probeDiskIdentity } from '../../src/tracking/disk-identity.js'
import { DirtyBitmapContext } from '../../src/tracking/dirty-bitmap-context.js'
import { makeRawImage, tempDir } from './helpers.js'

const MiB = 1024 * 1024
const G = 64 * 1024

async function setup(t: { teardown(fn: () => unknown): void }, size = 64 * MiB): Promise<string> {
  const dir = await tempDir()
  t.teardown(() => fsp.rm(dir, { recursive: true, force: true }))
  const disk = path.join(dir, 'disk.raw')
  await fsp.writeFile(disk, Buffer.alloc(0))
  await fsp.truncate(disk, size)
  return disk
}

async function openRw(disk: string, takeOverOwnLock = false): Promise<TrackingStore> {
  const st = await fsp.stat(disk)
  return TrackingStore.open(disk, { identity: await probeDiskIdentity(disk), diskSizeBytes: st.size, takeOverOwnLock })
}

async function enable(disk: string, granularityBytes = G): Promise<void> {
  const st = await fsp.stat(disk)
  await TrackingStore.enable(disk, st.size, await probeDiskIdentity(disk), { granularityBytes })
}

t.test('reference points: since, between, remove merges, persistence across clean close', async t => {
  const disk = await setup(t)
  await enable(disk)
  let s = await openRw(disk)
  const a = await s.createRefPoint()
  t.match(a.id, /^rp-[0-9a-f]{8}-1$/)
  await s.markWrite(1 * MiB, 4096)
  const b = await s.createRefPoint()
  await s.markWrite(3 * MiB + 100, 70000) // crosses a granule boundary: 2 granules
  const c = await s.createRefPoint()
  await s.markWrite(10 * MiB, G)
  t.same(await s.changedRanges(a.id), [{ offset: MiB, length: G }, { offset: 3 * MiB, length: 2 * G }, { offset: 10 * MiB, length: G }])
  t.same(await s.changedRanges(b.id, c.id), [{ offset: 3 * MiB, length: 2 * G }])
  t.same(await s.changedRanges(a.id, b.id), [{ offset: MiB, length: G }])
  t.same(await s.changedRanges(c.id), [{ offset: 10 * MiB, length: G }])
  t.same(await s.changedRanges(c.id, c.id), [])
  await t.rejects(s.changedRanges(c.id, a.id), /older/)
  await t.rejects(s.changedRanges('rp-nope-9'), { category: 'ObjectNotFound' })

  // Remove the middle point: a..c still covers b's changes.
  await s.removeRefPoint(b.id)
  t.same(await s.changedRanges(a.id, c.id), [{ offset: MiB, length: G }, { offset: 3 * MiB, length: 2 * G }])
  await s.close(await probeDiskIdentity(disk))

  s = await openRw(disk)
  t.equal(s.status().trusted, true)
  t.equal(s.status().recoveredAfterCrash, false)
  t.same(s.listRefPoints().map(r => r.id), [a.id, c.id])
  t.same(await s.changedRanges(a.id), [{ offset: MiB, length: G }, { offset: 3 * MiB, length: 2 * G }, { offset: 10 * MiB, length: G }])
  // Remove the newest: its live changes merge into the previous point's segment.
  await s.removeRefPoint(c.id)
  t.same(await s.changedRanges(a.id), [{ offset: MiB, length: G }, { offset: 3 * MiB, length: 2 * G }, { offset: 10 * MiB, length: G }])
  const d = await s.createRefPoint()
  t.equal(d.sequence, 4, 'sequence numbers are never reused')
  await s.close(await probeDiskIdentity(disk))
  const files = (await fsp.readdir(sidecarPathOf(disk))).sort()
  t.notOk(files.some(f => f.endsWith('.mrt') || f.endsWith('.tmp')), `no journal or temporaries after clean close: ${files}`)
})

t.test('crash: live bitmap rebuilt from persistent copy OR journal, status says so', async t => {
  const disk = await setup(t)
  await enable(disk)
  const s = await openRw(disk)
  const rp = await s.createRefPoint()
  await s.markWrite(5 * MiB, 512)
  await s.markWrite(40 * MiB, 8192)
  // "crash": never close s; a second open sees a dirty store.
  const ro = await TrackingStore.open(disk, { readOnly: true })
  t.equal(ro.status().openElsewhereOrCrashed, true)
  await t.rejects(openRw(disk), { category: 'ResourceBusy' }, 'one writer per store')
  const again = await openRw(disk, true)
  const st = again.status()
  t.equal(st.recoveredAfterCrash, true)
  t.match(st.recoveryReason, /not closed cleanly/)
  const ranges = await again.changedRanges(rp.id)
  const covers = (off: number): boolean => ranges.some(r => r.offset <= off && off < r.offset + r.length)
  t.ok(covers(5 * MiB) && covers(40 * MiB + 8191), 'every written byte is reported')
  t.notOk(covers(20 * MiB), 'untouched coarse regions are not reported')
  await again.close()
})

t.test('journal: one sync per new region, none for durable regions, concurrent writers share a sync', async t => {
  const disk = await setup(t, 128 * MiB)
  await enable(disk)
  const s = await openRw(disk)
  const before = s.journalSyncCount
  await Promise.all([s.markWrite(0, 4096), s.markWrite(8192, 4096), s.markWrite(2 * MiB, 512)])
  t.equal(s.journalSyncCount - before, 1, 'three concurrent marks in one region batch: one sync')
  t.equal(s.markWrite(4096, 512), undefined, 'a durable region costs no I/O and no promise')
  await Promise.all([s.markWrite(16 * MiB, 4096), s.markWrite(32 * MiB, 4096), s.markWrite(48 * MiB, 4096)])
  t.ok(s.journalSyncCount - before <= 3, `batched: ${s.journalSyncCount - before} syncs in total`)
  await s.checkpoint()
  t.equal(s.markWrite(0, 4096), undefined, 'regions touched in the previous epoch are carried over (still warm)')
  await s.checkpoint()
  await s.checkpoint()
  t.not(s.markWrite(0, 4096), undefined, 'a region idle for a whole epoch is cold again')
  // A sequential stream: the write to region 1 (after region 0) marks regions 1..8 in one sync.
  await s.markWrite(0, 4096)
  const seq0 = s.journalSyncCount
  await s.markWrite(8 * MiB, 4096)
  t.equal(s.markWrite(8 * MiB * 5, 4096), undefined, 'regions ahead of a sequential writer are already durable')
  t.equal(s.journalSyncCount - seq0, 1)
  await s.close()
})

t.test('reference point atomicity: writes in flight count on both sides', async t => {
  const disk = await setup(t)
  await enable(disk)
  const s = await openRw(disk)
  const a = await s.createRefPoint()
  const w1 = s.beginWrite(1 * MiB, 4096) // in flight across the freeze
  const w0 = s.beginWrite(2 * MiB, 4096)
  s.endWrite(w0.token) // completed before the freeze
  await Promise.all([w1.durable, w0.durable])
  const b = await s.createRefPoint()
  s.endWrite(w1.token)
  await s.markWrite(3 * MiB, 4096)
  t.same(await s.changedRanges(a.id, b.id), [{ offset: MiB, length: G }, { offset: 2 * MiB, length: G }])
  t.same(await s.changedRanges(b.id), [{ offset: MiB, length: G }, { offset: 3 * MiB, length: G }])
  // WriteObserver shape
  await s.beforeWrite(4 * MiB, 512, 'write')
  s.afterWrite(4 * MiB, 512)
  const c = await s.createRefPoint()
  t.same(await s.changedRanges(c.id), [], 'a finished observer write is not carried into the next point')
  await s.close()
})

t.test('untrusted: disk modified outside tracking, corrupt or missing files; reset recovers', async t => {
  const disk = await setup(t)
  await enable(disk)
  let s = await openRw(disk)
  const rp = await s.createRefPoint()
  await s.close(await probeDiskIdentity(disk))
  // write outside tracking
  await new Promise(res => setTimeout(res, 20))
  const fh = await fsp.open(disk, 'r+')
  await fh.write(Buffer.from('x'), 0, 1, 12345)
  await fh.close()
  s = await openRw(disk)
  t.equal(s.status().trusted, false)
  t.match(s.status().untrustedReason, /modified outside tracking/)
  const err = await s.changedRanges(rp.id).catch((e: unknown) => e)
  t.ok(err instanceof EngineError && err.category === 'InvalidData' && /cannot be trusted/.test(err.message), String(err))
  await s.close(await probeDiskIdentity(disk))
  s = await openRw(disk)
  t.equal(s.status().trusted, false, 'a clean close does not launder an untrusted store')
  await s.reset(await probeDiskIdentity(disk), (await fsp.stat(disk)).size)
  t.equal(s.status().trusted, true)
  const gen1 = s.generation
  t.not(gen1, rp.id, 'new generation')
  const rp2 = await s.createRefPoint()
  t.not(rp2.id, rp.id, 'ids are not reused after a reset')
  await s.close(await probeDiskIdentity(disk))

  // corrupt the live bitmap
  const dir = sidecarPathOf(disk)
  const live = (await fsp.readdir(dir)).find(f => f.startsWith('live-'))!
  const buf = await fsp.readFile(path.join(dir, live))
  buf[buf.length - 1]! ^= 0xff
  await fsp.writeFile(path.join(dir, live), buf)
  s = await TrackingStore.open(disk, { readOnly: true })
  t.match(s.status().untrustedReason, /corrupt/)
  await t.rejects(s.changedRanges(rp2.id), { category: 'InvalidData' })

  await fsp.rm(path.join(dir, 'state.json'))
  s = await TrackingStore.open(disk, { readOnly: true })
  t.match(s.status().untrustedReason, /state file .* is missing/)

  await fsp.rm(dir, { recursive: true })
  await t.rejects(TrackingStore.open(disk), { category: 'ObjectNotFound' })
})

t.test('VHDX identity: DataWriteGuid decides, mtime alone does not', async t => {
  const dir = await tempDir()
  t.teardown(() => fsp.rm(dir, { recursive: true, force: true }))
  const disk = path.join(dir, 'fake.vhdx')
  const img = Buffer.alloc(256 * 1024)
  img.write('vhdxfile', 0, 'latin1')
  img.write('head', 64 * 1024, 'latin1')
  img.writeBigUInt64LE(5n, 64 * 1024 + 8)
  img.fill(0xaa, 64 * 1024 + 32, 64 * 1024 + 48)
  await fsp.writeFile(disk, img)
  const id1 = await probeDiskIdentity(disk)
  t.equal(id1.kind, 'vhdx')
  await TrackingStore.enable(disk, 64 * MiB, id1)
  let s = await TrackingStore.open(disk, { identity: id1 })
  await s.close(id1)
  await fsp.utimes(disk, new Date(), new Date(Date.now() + 5000))
  s = await TrackingStore.open(disk, { identity: await probeDiskIdentity(disk) })
  t.equal(s.status().trusted, true, 'metadata-only change keeps trust')
  await s.close(await probeDiskIdentity(disk))
  // a newer header with a different DataWriteGuid
  img.write('head', 128 * 1024, 'latin1')
  img.writeBigUInt64LE(6n, 128 * 1024 + 8)
  img.fill(0xbb, 128 * 1024 + 32, 128 * 1024 + 48)
  await fsp.writeFile(disk, img)
  s = await TrackingStore.open(disk, { identity: await probeDiskIdentity(disk) })
  t.match(s.status().untrustedReason, /DataWriteGuid changed/)
  await s.close()
})

t.test('enable validates its options and refuses to enable twice', async t => {
  const disk = await setup(t)
  await t.rejects(TrackingStore.enable(disk, 64 * MiB, null, { granularityBytes: 3000 }), { category: 'InvalidArgument' })
  await t.rejects(TrackingStore.enable(disk, 64 * MiB, null, { granularityBytes: 128 * MiB }), { category: 'InvalidArgument' })
  await t.rejects(TrackingStore.enable(disk, 64 * 2 ** 40, null, { granularityBytes: 4096 }), /use 32768 bytes or more/,
    'a bitmap too big for memory is refused before any allocation')
  await TrackingStore.enable(disk, 64 * MiB, null, { granularityBytes: 4096 })
  await t.rejects(TrackingStore.enable(disk, 64 * MiB, null), { category: 'ResourceExists' })
  t.equal(await TrackingStore.disable(disk), true)
  t.equal(await TrackingStore.disable(disk), false)
})

t.test('dirty-bitmap metadata context reports the same ranges as the query', async t => {
  const disk = await setup(t)
  await enable(disk)
  const s = await openRw(disk)
  const a = await s.createRefPoint()
  await s.markWrite(MiB, 4096)
  const b = await s.createRefPoint()
  await s.markWrite(MiB + G, 4096)
  await s.markWrite(8 * MiB, 3 * G)
  const ctx = new DirtyBitmapContext(s, a.id)
  t.equal(ctx.name, `qemu:dirty-bitmap:${a.id}`)
  const ext = await ctx.blockStatus(0, 64 * MiB)
  t.equal(ext.reduce((n, e) => n + e.length, 0), 64 * MiB, 'extents cover the request exactly')
  const dirty: Array<{ offset: number; length: number }> = []
  let pos = 0
  for (const e of ext) { if (e.flags & 1) dirty.push({ offset: pos, length: e.length }); pos += e.length }
  t.same(dirty, await s.changedRanges(a.id))
  const part = await ctx.blockStatus(MiB + 512, 4096)
  t.same(part, [{ length: 4096, flags: 1 }])
  t.same(await new DirtyBitmapContext(s, b.id).blockStatus(MiB, G), [{ length: G, flags: 0 }])
  await s.close()
})

t.test('a reference point created while a checkpoint runs is persisted consistently', async t => {
  const disk = await setup(t)
  await enable(disk)
  for (let trial = 0; trial < 12; trial++) {
    const s = await openRw(disk)
    const a = await s.createRefPoint()
    await s.markWrite(trial * MiB, 4096)
    const cp = s.checkpoint()
    await new Promise(res => setTimeout(res, trial % 4))
    const b = await s.createRefPoint()
    await s.markWrite(32 * MiB + trial * MiB, 4096)
    await cp
    await s.close()
    const r = await openRw(disk)
    t.same(await r.changedRanges(a.id, b.id), [{ offset: trial * MiB, length: G }], `trial ${trial}: a..b`)
    t.same(await r.changedRanges(b.id), [{ offset: 32 * MiB + trial * MiB, length: G }], `trial ${trial}: b..now`)
    await r.reset(null, 64 * MiB)
    await r.close()
  }
})
