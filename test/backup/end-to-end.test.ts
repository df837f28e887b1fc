/**
 * End to end, through the engine's method handlers (the same ones the CLI and JSON-RPC call):
 * a VHDX with random content (createVhdx + openDisk), tracking enabled, full backup; about 1 % changed at scattered
 * offsets by qemu-io through the NBD export (`nbd.serve`, which wraps the disk in the tracking layer, so tracking
 * sees real client writes); a live incremental while the export serves, with a client write in the middle (the
 * backup holds the instant it started); more changes; differential; every backup restored (VHDX, raw, VHD) and
 * compared by SHA-256 with the image at that point; restored VHDX pass `qemu-img check`; the incremental's read
 * and stored bytes stay within 1.1x the chunk-rounded changed bytes; a flipped byte in a shared chunk makes verify
 * name every affected backup; in-place rollback writes only differing chunks.
 */
import t from 'tap'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import { createHash, randomBytes } from 'node:crypto'
import { findMethod } from '../../src/engine/registry.js'
import type { CallContext } from '../../src/engine/method.js'
import { createVhdx } from '../../src/formats/vhdx/index.js'
import { openDisk } from '../../src/formats/open.js'
import { inspectDisk } from '../../src/formats/inspect.js'
import { Repository } from '../../src/backup/repository.js'
import { createBackup, type BackupResult } from '../../src/backup/backup.js'
import { chunkHashAt } from '../../src/backup/manifest.js'
import { MiB, missing, rng, run, tempDir } from '../nbd/helpers.js'

const progress: [number, number][] = []
const warnings: string[] = []
const ctx: CallContext = {
  progress(d, total) { progress.push([d, total]) },
  log(level, m) { if (level === 'warning') warnings.push(m) },
  signal: new AbortController().signal,
  interactive: false,
}
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const call = (name: string, params: any) => findMethod(name)!.handler(params, ctx) as Promise<any>

const SIZE = 64 * MiB
const CHUNK = 64 * 1024 // the default chunk size (the tracking granule)

/** SHA-256 of a disk's virtual content, read through the format layer. */
async function imageSha(file: string): Promise<string> {
  const d = await openDisk(file, { readOnly: true })
  try {
    const h = createHash('sha256')
    const buf = Buffer.alloc(4 * MiB)
    for (let off = 0; off < d.size; off += buf.length) {
      const b = buf.subarray(0, Math.min(buf.length, d.size - off))
      await d.read(off, b)
      h.update(b)
    }
    return h.digest('hex')
  } finally {
    await d.close()
  }
}

/** Write `count` scattered 64 KiB-aligned runs through the NBD export with qemu-io; returns the chunk-rounded bytes. */
async function changeThroughNbd(disk: string, next: () => number, count: number, touched: Set<number>,
  whileServing?: (uri: string) => Promise<void>): Promise<number> {
  const r = await call('nbd.serve', { disk, listen: '127.0.0.1:0' })
  const args: string[] = []
  const mine = new Set<number>()
  for (let i = 0; i < count; i++) {
    const len = (1 + Math.floor(next() * 4)) * 16 * 1024 // 16-64 KiB
    const off = Math.floor(next() * ((SIZE - len) / 4096)) * 4096
    args.push('-c', `write -P ${1 + Math.floor(next() * 254)} ${off} ${len}`)
    for (let c = Math.floor(off / CHUNK); c <= Math.floor((off + len - 1) / CHUNK); c++) { mine.add(c); touched.add(c) }
  }
  args.push('-c', 'flush')
  await run('qemu-io', ['-f', 'raw', r.uri, ...args])
  try {
    await whileServing?.(r.uri)
  } finally {
    await call('nbd.stop', { id: r.id })
  }
  return mine.size * CHUNK
}

const skip = missing('qemu-io', 'qemu-img')

t.test('full, incremental (tracking via NBD writes), differential, restore, verify', { skip }, async t => {
  const dir = tempDir(t)
  const disk = path.join(dir, 'vm.vhdx')
  const repo = path.join(dir, 'repo')
  await createVhdx(disk, { sizeBytes: SIZE, type: 'dynamic', blockSizeBytes: 2 * MiB })
  {
    // random content over three quarters of the disk; the rest stays unallocated
    const d = await openDisk(disk)
    for (let off = 0; off < SIZE; off += 4 * MiB) if ((off / (4 * MiB)) % 4 !== 3) await d.write(off, randomBytes(4 * MiB))
    await d.close()
  }
  await call('tracking.enable', { disk })
  const shas: string[] = [await imageSha(disk)]

  const full = await call('backup.create', { disk, repo })
  t.equal(full.mode, 'full', 'auto takes a full backup when there is no base')
  t.equal(full.changeSource, 'full-read')
  t.ok(full.referencePoint, 'a reference point for the next backup')
  t.equal(full.stats.bytesRead, 48 * MiB, 'the full backup reads allocated data only')
  t.ok(progress.length > 0 && progress[progress.length - 1]![0] === progress[progress.length - 1]![1], 'progress reaches total')

  const next = rng(5)
  const touched1 = new Set<number>()
  let inc!: BackupResult
  let midWrite = false
  const changed1 = await changeThroughNbd(disk, next, 10, touched1, async uri => {
    // live: the export keeps serving; the backup reads a checkpoint cut with its reference point
    const img = path.join(dir, 'live.raw')
    await run('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', uri, img])
    shas.push(createHash('sha256').update(fs.readFileSync(img)).digest('hex'))
    fs.rmSync(img)
    inc = await createBackup({
      diskPath: disk, repoDir: repo,
      async onChunk() {
        if (midWrite) return
        midWrite = true // a client write in the middle of the backup, to a chunk not read yet
        await run('qemu-io', ['-f', 'raw', uri, '-c', `write -P 119 ${62 * MiB} 64k`, '-c', 'flush'])
      },
    })
    await t.rejects(call('backup.restore', { repo, id: full.id, output: disk, inPlace: true }), { category: 'ResourceBusy' },
      'no in-place rollback under a running export')
  }) // ~0.6-1 % of 64 MiB
  t.ok(midWrite, 'a client wrote while the backup ran')
  t.equal(inc.mode, 'incremental')
  t.equal(inc.changeSource, 'tracking', `tracking used: ${inc.reasons.join('; ')}`)
  t.equal(inc.fellBack, false)
  t.equal(inc.parentId, full.id)
  const out1 = path.join(dir, 'live-restored.vhdx')
  await call('backup.restore', { repo, id: inc.id, output: out1 })
  t.equal(await imageSha(out1), shas[1], 'the live backup holds the instant it started, not the write made during it')
  fs.rmSync(out1)
  t.ok(inc.stats.bytesRead <= 1.1 * changed1, `incremental read ${inc.stats.bytesRead} <= 1.1 x ${changed1} chunk-rounded changed bytes`)
  t.ok(inc.stats.bytesWritten <= 1.1 * changed1, `incremental stored ${inc.stats.bytesWritten} <= 1.1 x ${changed1}`)
  t.ok(inc.stats.bytesRead > 0, 'it did read the changes')

  const touched2 = new Set<number>([62]) // the write made during the live backup belongs to the next one
  await changeThroughNbd(disk, next, 40, touched2)
  shas.push(await imageSha(disk))
  const diff = await call('backup.create', { disk, repo, mode: 'differential' })
  t.equal(diff.mode, 'differential')
  t.equal(diff.changeSource, 'tracking', `tracking used: ${diff.reasons.join('; ')}`)
  t.equal(diff.parentId, full.id, 'a differential is relative to the last full')
  const since = new Set([...touched1, ...touched2]).size * CHUNK
  t.ok(diff.stats.bytesRead <= 1.1 * since, `differential read ${diff.stats.bytesRead} <= 1.1 x ${since}`)
  t.ok(diff.stats.bytesRead >= (touched2.size - 1) * CHUNK, 'differential covers at least the second round of changes')

  const listed = await call('backup.list', { repo })
  t.same(listed.map((b: { id: string }) => b.id), [full.id, inc.id, diff.id])

  // restore every backup: VHDX (identity kept, qemu-img check), raw (thin), VHD
  const ids = [full.id, inc.id, diff.id]
  for (let k = 0; k < ids.length; k++) {
    const out = path.join(dir, `r${k}.vhdx`)
    const r = await call('backup.restore', { repo, id: ids[k], output: out })
    t.equal(r.format, 'vhdx')
    t.equal((await inspectDisk(out)).diskId, (await inspectDisk(disk)).diskId, 'the restored VHDX keeps the Virtual Disk ID')
    t.equal(await imageSha(out), shas[k], `restored VHDX of backup ${k} equals the image at that point`)
    await run('qemu-img', ['check', '-f', 'vhdx', out])
    t.pass(`qemu-img check passes on restored backup ${k}`)
    const info = JSON.parse(await run('qemu-img', ['info', '--output=json', out])) as { 'virtual-size': number }
    t.equal(info['virtual-size'], SIZE)
  }
  const raw = path.join(dir, 'r.raw')
  const rr = await call('backup.restore', { repo, id: inc.id, output: raw, format: 'raw' })
  // every fourth 4 MiB stretch was left unallocated: its chunks are zero unless the first round wrote them
  const zeroExpected = Array.from({ length: SIZE / CHUNK }, (_, c) => c).filter(c => Math.floor(c * CHUNK / (4 * MiB)) % 4 === 3 && !touched1.has(c)).length
  t.equal(rr.zeroChunks, zeroExpected, 'unallocated, unwritten chunks are zero chunks')
  t.equal(createHash('sha256').update(fs.readFileSync(raw)).digest('hex'), shas[1], 'raw restore equals the image')
  t.ok(fs.statSync(raw).blocks * 512 <= 50 * MiB, `raw restore is thin (${fs.statSync(raw).blocks * 512} bytes allocated)`)
  const vhd = path.join(dir, 'r.vhd')
  await call('backup.restore', { repo, id: diff.id, output: vhd, format: 'vhd' })
  t.equal(await imageSha(vhd), shas[2], 'VHD restore equals the image')
  await t.rejects(call('backup.restore', { repo, id: diff.id, output: vhd }), /exists/)

  // in-place rollback to the full backup writes only the chunks that differ
  const back = await call('backup.restore', { repo, id: full.id, output: disk, inPlace: true })
  t.equal(back.chunksWritten, new Set([...touched1, ...touched2]).size, 'in place: only differing chunks written')
  t.equal(await imageSha(disk), shas[0], 'rolled back to the full backup')
  const status = await call('tracking.status', { disk })
  t.equal(status.trusted, true, 'the rollback went through tracking, which stays trusted')

  // verify: clean, then a flipped byte in a chunk all three share names all three
  const v = await call('backup.verify', { repo, deep: true })
  t.equal(v.ok, true, 'verify --deep is clean')
  t.equal(v.backups.find((b: { id: string }) => b.id === full.id).imageSha256Matches, true)
  t.equal(v.backups.find((b: { id: string }) => b.id === inc.id).imageSha256, shas[1], 'deep verify rebuilds the incremental image')
  const R = await Repository.open(repo)
  const lists = await Promise.all(ids.map(async id => R.readChunkList(await R.readManifest(id))))
  let shared = -1
  for (let i = 0; i < SIZE / CHUNK && shared < 0; i++) {
    const h = chunkHashAt(lists[0]!, i)
    if (h && lists.every(l => chunkHashAt(l, i) === h)) shared = i
  }
  t.ok(shared >= 0, 'a chunk shared by every backup')
  const where = (await R.locateChunk(chunkHashAt(lists[0]!, shared)!))!
  const fh = await fsp.open(where.file, 'r+')
  const one = Buffer.alloc(1)
  await fh.read(one, 0, 1, where.offset + (where.length >> 1))
  one[0] ^= 0x01
  await fh.write(one, 0, 1, where.offset + (where.length >> 1))
  await fh.close()
  await R.close()
  const bad = await call('backup.verify', { repo })
  t.equal(bad.ok, false)
  t.same([...bad.affected].sort(), [...ids].sort(), 'every backup referencing the chunk is named')
  t.ok(bad.backups[0].problems[0].offsets.includes(shared * CHUNK), 'the problem names the disk offset')
  t.equal(findMethod('backup.verify')!.cli!.exitCode!(bad), 1, 'CLI exit code 1 on problems')
  await t.rejects(call('backup.restore', { repo, id: full.id, output: path.join(dir, 'x.vhdx') }), /chunk \d+ \(disk offset/)
  t.notOk(fs.existsSync(path.join(dir, 'x.vhdx')), 'a failed restore leaves no half disk')

  // prune keeps the newest, garbage-collects chunks only the removed backups used
  const pr = await call('backup.prune', { repo, keepLast: 1, graceMinutes: 0 })
  t.same(pr.removed.sort(), [full.id, inc.id].sort())
  const diffHashes = new Set(Array.from({ length: SIZE / CHUNK }, (_, i) => chunkHashAt(lists[2]!, i)))
  const onlyOld = new Set(lists.slice(0, 2).flatMap(l => Array.from({ length: SIZE / CHUNK }, (_, i) => chunkHashAt(l, i))).filter(h => h && !diffHashes.has(h)))
  t.ok(onlyOld.size > 0 && pr.chunksRemoved <= onlyOld.size, `only chunks the removed backups alone used go (${pr.chunksRemoved} of ${onlyOld.size})`)
  const after = await call('backup.verify', { repo })
  t.same(after.affected, [diff.id], 'after the prune: the kept backup still reads everything but the damaged chunk')
  t.equal(after.backups[0].problems.length, 1)
  t.same((await call('backup.list', { repo })).map((b: { id: string }) => b.id), [diff.id])
})

t.test('no tracking: incremental falls back to a content scan and says so', async t => {
  const dir = tempDir(t)
  const disk = path.join(dir, 'd.raw')
  const repo = path.join(dir, 'repo')
  const data = randomBytes(8 * MiB)
  fs.writeFileSync(disk, data)
  await call('backup.create', { disk, repo, mode: 'incremental' })
  warnings.length = 0
  const fd = fs.openSync(disk, 'r+')
  fs.writeSync(fd, Buffer.alloc(4096, 7), 0, 4096, 3 * MiB + 100 * 512)
  fs.closeSync(fd)
  const inc = await call('backup.create', { disk, repo })
  t.equal(inc.changeSource, 'content-scan')
  t.equal(inc.fellBack, true)
  t.match(inc.reasons.join('\n'), /tracking is not enabled/)
  t.ok(warnings.some(w => /tracking not used/.test(w)), 'the fallback is logged as a warning')
  t.equal(inc.stats.chunksChanged, 1)
  t.equal(inc.stats.chunksStored, 1, 'only the changed chunk is stored')
  const out = path.join(dir, 'o.raw')
  await call('backup.restore', { repo, id: inc.id, output: out })
  t.ok(fs.readFileSync(out).equals(fs.readFileSync(disk)))
})
