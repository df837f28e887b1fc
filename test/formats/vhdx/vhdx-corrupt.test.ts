/**
 * A corpus of damaged files, each rejected by openVhdx with a FormatError naming the structure and offset, and
 * reported by checkVhdx; plus the log: pending entries are replayed in memory (read-only) or in place.
 */
import t from 'tap'
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { crc32cWithZeroedField } from '../../../src/formats/crc32c.js'
import { checkVhdx } from '../../../src/formats/vhdx/vhdx-check.js'
import { createVhdx } from '../../../src/formats/vhdx/vhdx-create.js'
import { decodeHeader, decodeRegionTable, encodeHeader, encodeRegionTable, GUID_BAT_REGION, GUID_METADATA_REGION, writeGuid } from '../../../src/formats/vhdx/vhdx-layout.js'
import { openVhdx } from '../../../src/formats/vhdx/vhdx-open.js'
import { haveQemu, runStatus, tempDir } from './helpers.js'

const MiB = 1024 * 1024
const KiB = 1024
const BAT = 3 * MiB // createVhdx's layout
const META = 2 * MiB

type Mutation = (b: Buffer) => Buffer

function setRegions(b: Buffer, edit: (e: ReturnType<typeof decodeRegionTable>['entries']) => void): void {
  const entries = decodeRegionTable(b.subarray(192 * KiB, 256 * KiB)).entries
  edit(entries)
  const img = encodeRegionTable(entries)
  b.set(img, 192 * KiB)
  b.set(img, 256 * KiB)
}

function fixCrc(b: Buffer, at: number, len: number): void {
  b.writeUInt32LE(crc32cWithZeroedField(b.subarray(at, at + len), 4), at + 4)
}

/** Offset of a metadata item's data (the nth entry of createVhdx's table). */
function itemData(b: Buffer, n: number): number {
  return META + b.readUInt32LE(META + 32 + n * 32 + 16)
}

const corpus: Array<[string, Mutation, string | RegExp, number | null]> = [
  ['truncated inside the header section', b => b.subarray(0, 500 * KiB), 'file', 0],
  ['bad file identifier', b => (b.write('vhdxfilX', 0), b), 'file identifier', 0],
  ['both headers with bad CRC', b => (b[64 * KiB + 100] ^= 1, b[128 * KiB + 100] ^= 1, b), 'header 1', 64 * KiB],
  ['both region tables with bad CRC', b => (b[192 * KiB + 40] ^= 1, b[256 * KiB + 40] ^= 1, b), 'region table 1', 192 * KiB],
  ['overlapping regions', b => (setRegions(b, e => (e.find(r => r.guid === GUID_METADATA_REGION)!.fileOffset = BAT)), b), 'region table', 192 * KiB],
  ['region past EOF', b => (setRegions(b, e => (e.find(r => r.guid === GUID_METADATA_REGION)!.fileOffset = 4096 * MiB)), b), 'region table', 192 * KiB],
  ['unknown required region', b => (setRegions(b, e => e.push({ guid: '11111111-2222-3333-4444-555555555555', fileOffset: 100 * MiB, length: MiB, required: true, rawFlags: 1 })), b), 'region table', 192 * KiB],
  ['no BAT region', b => (setRegions(b, e => e.splice(e.findIndex(r => r.guid === GUID_BAT_REGION), 1)), b), 'region table', 192 * KiB],
  ['log outside the file (both headers, valid CRCs)', b => {
    for (const at of [64 * KiB, 128 * KiB]) b.set(encodeHeader({ ...decodeHeader(b.subarray(at, at + 4096)), logOffset: 4096 * MiB }), at)
    return b
  }, /^header [12]$/, null],
  ['bad metadata signature', b => (b.write('metadatX', META), b), 'metadata table', META],
  ['huge virtual size', b => (b.writeBigUInt64LE(1n << 60n, itemData(b, 1)), b), 'metadata item Virtual Disk Size', null],
  ['64 TiB size with a 1 MiB BAT', b => (b.writeBigUInt64LE(64n << 40n, itemData(b, 1)), b), 'BAT region', BAT],
  ['block size not a power of two', b => (b.writeUInt32LE(3 * MiB, itemData(b, 0)), b), 'metadata item File Parameters', null],
  ['logical sector size 1000', b => (b.writeUInt32LE(1000, itemData(b, 3)), b), 'metadata item Logical Sector Size', null],
  ['metadata item outside its region', b => (b.writeUInt32LE(2 * MiB, META + 32 + 16), b), 'metadata table', META],
  ['BAT offset past EOF', b => (b.writeUInt32LE((10000 << 20) | 6, BAT), b.writeUInt32LE(0, BAT + 4), b), 'BAT entry', BAT],
  ['BAT reserved bits', b => (b.writeUInt32LE(b.readUInt32LE(BAT) | 0x100, BAT), b), 'BAT entry', BAT],
  ['BAT state 4', b => (b.writeUInt32LE((b.readUInt32LE(BAT) & ~7) | 4, BAT), b), 'BAT entry', BAT],
  ['PARTIALLY_PRESENT without a parent', b => (b.writeUInt32LE((b.readUInt32LE(BAT) & ~7) | 7, BAT), b), 'BAT entry', BAT],
  ['duplicate BAT offsets', b => (b.writeUInt32LE(b.readUInt32LE(BAT), BAT + 8), b.writeUInt32LE(b.readUInt32LE(BAT + 4), BAT + 12), b), 'BAT entry', BAT + 8],
  ['block over the BAT region', b => (b.writeUInt32LE((3 << 20) | 6, BAT + 8), b), 'BAT entry', BAT + 8],
]

t.test('corrupted files are rejected with the structure and offset named', async t => {
  const dir = tempDir(t)
  const good = join(dir, 'good.vhdx')
  await createVhdx(good, { sizeBytes: 16 * MiB, type: 'dynamic', blockSizeBytes: MiB })
  const d = await openVhdx(good, {})
  await d.write(0, Buffer.alloc(MiB, 0x5a)) // block 0 allocated
  await d.close()
  t.same(await checkVhdx(good), [], 'the good file checks clean')
  const original = readFileSync(good)
  for (const [name, mutate, structure, offset] of corpus) {
    const p = join(dir, `${name.replace(/\W+/g, '-')}.vhdx`)
    writeFileSync(p, mutate(Buffer.from(original)))
    const err = await openVhdx(p, { readOnly: true }).then(
      async disk => (await disk.close(), null),
      (e: unknown) => e,
    )
    t.ok(err, `${name}: rejected`)
    t.match(err, { name: 'FormatError', structure }, `${name}: FormatError names ${structure}`)
    if (offset !== null) t.equal((err as { offset: unknown }).offset, offset, `${name}: offset`)
    const problems = await checkVhdx(p)
    t.ok(problems.some(x => x.severity === 'error'), `${name}: check reports an error`)
  }
})

t.test('one bad header or region table copy is survivable but reported', async t => {
  const dir = tempDir(t)
  const p = join(dir, 'a.vhdx')
  await createVhdx(p, { sizeBytes: 8 * MiB, type: 'dynamic', blockSizeBytes: MiB })
  const b = readFileSync(p)
  b[128 * KiB + 200] ^= 1 // header 2 (the current one)
  b[256 * KiB + 300] ^= 1 // region table 2
  writeFileSync(p, b)
  const d = await openVhdx(p, { readOnly: true })
  t.equal(d.size, 8 * MiB)
  await d.close()
  const problems = await checkVhdx(p)
  t.match(problems, [{ structure: 'header 2', offset: 128 * KiB, severity: 'warning' }, { structure: 'region table 2', offset: 256 * KiB, severity: 'warning' }])
  // Region table copies that are both valid but differ.
  const c = readFileSync(p)
  c[256 * KiB + 300] ^= 1
  c.writeUInt32LE(c.readUInt32LE(256 * KiB + 16 + 28) | 0, 256 * KiB + 16 + 28)
  c.writeUInt32LE(2, 256 * KiB + 12) // reserved field differs
  fixCrc(c, 256 * KiB, 64 * KiB)
  writeFileSync(p, c)
  t.match(await checkVhdx(p), [{ structure: 'header 2' }, { structure: 'region table 2', message: /differ/ }])
})

t.test('a logged but unapplied BAT update is replayed: in memory read-only, in place read-write', async t => {
  const dir = tempDir(t)
  const p = join(dir, 'log.vhdx')
  await createVhdx(p, { sizeBytes: 16 * MiB, type: 'dynamic', blockSizeBytes: MiB })
  const before = readFileSync(p).subarray(BAT, BAT + 4096)
  const d = await openVhdx(p, {})
  await d.write(3 * MiB, Buffer.alloc(8192, 0xc3))
  // Simulate a crash after the log entry was flushed but before the BAT sector was written in place.
  const crashed = join(dir, 'crashed.vhdx')
  copyFileSync(p, crashed)
  await d.close()
  const img = readFileSync(crashed)
  img.set(before, BAT)
  writeFileSync(crashed, img)
  const problems = await checkVhdx(crashed)
  t.match(problems, [{ structure: 'log', severity: 'warning', message: /must be replayed/ }])
  if (haveQemu) {
    // qemu must be able to replay a log HvCbt wrote: it refuses read-only, and replays on a read-write open.
    const q = join(dir, 'for-qemu.vhdx')
    copyFileSync(crashed, q)
    t.match(runStatus('qemu-img', ['check', '-f', 'vhdx', q]).out, /log that needs to be replayed/)
    const io = runStatus('qemu-io', ['-f', 'vhdx', '-c', `read -P 0xc3 ${3 * MiB} 8192`, q])
    t.ok(io.status === 0 && !/fail/i.test(io.out), `qemu replays HvCbt's log entry and reads the data: ${io.out}`)
    t.equal(runStatus('qemu-img', ['check', '-f', 'vhdx', q]).status, 0, 'qemu-img check clean after qemu replayed')
  }
  const ro = await openVhdx(crashed, { readOnly: true })
  const buf = Buffer.alloc(8192)
  await ro.read(3 * MiB, buf)
  await ro.close()
  t.ok(buf.every(x => x === 0xc3), 'read-only open sees the replayed BAT')
  t.ok(readFileSync(crashed).equals(img), 'read-only open changed nothing')
  const rw = await openVhdx(crashed, {})
  await rw.read(3 * MiB, buf)
  await rw.close()
  t.ok(buf.every(x => x === 0xc3), 'read-write open replays in place')
  t.same(await checkVhdx(crashed), [], 'clean after replay and close')
  if (haveQemu) t.equal(runStatus('qemu-img', ['check', '-f', 'vhdx', crashed]).status, 0, 'qemu-img check clean')
  // A log that depends on data past the end of the file is refused.
  writeFileSync(crashed, img.subarray(0, 4 * MiB))
  await t.rejects(openVhdx(crashed, { readOnly: true }), { name: 'FormatError', structure: 'log entry', message: /FlushedFileOffset/ })
  t.match(await checkVhdx(crashed), [{ structure: 'log' }, { structure: 'log entry', severity: 'error' }])
})

t.test('a hostile log (a candidate entry at every 4 KiB, each claiming the whole log) fails fast', async t => {
  const dir = tempDir(t)
  const p = join(dir, 'hostile-log.vhdx')
  await createVhdx(p, { sizeBytes: 8 * MiB, type: 'dynamic', blockSizeBytes: MiB })
  const b = readFileSync(p)
  const guid = '0badc0de-0000-4000-8000-000000000001'
  for (const at of [64 * KiB, 128 * KiB]) {
    const h = decodeHeader(b.subarray(at, at + 4096))
    b.set(encodeHeader({ ...h, logGuid: guid }), at)
  }
  for (let pos = MiB; pos < 2 * MiB; pos += 4096) {
    b.write('loge', pos)
    b.writeUInt32LE(MiB, pos + 8) // EntryLength: the whole log
    b.writeBigUInt64LE(1n, pos + 16)
    writeGuid(b, pos + 32, guid)
  }
  writeFileSync(p, b)
  const t0 = Date.now()
  await t.rejects(openVhdx(p, { readOnly: true }), { name: 'FormatError', structure: 'log', offset: MiB })
  t.ok((await checkVhdx(p)).some(x => x.structure === 'log' && x.severity === 'error'))
  t.ok(Date.now() - t0 < 5000, 'no quadratic checksumming')
})

t.test('every payload state reads as the spec says (0, 1, 2, 3, 5 zeros; 6 data) and is accepted by the checker', async t => {
  const dir = tempDir(t)
  const p = join(dir, 'states.vhdx')
  await createVhdx(p, { sizeBytes: 8 * MiB, type: 'dynamic', blockSizeBytes: MiB })
  const d = await openVhdx(p, {})
  await d.write(0, Buffer.alloc(8 * MiB, 0xaa))
  await d.close()
  const b = readFileSync(p)
  // Blocks 0-4 get states 1, 2, 3, 5 (keeping their offsets) and 0 (offset cleared); 5-7 stay FULLY_PRESENT.
  const states = [1, 2, 3, 5, 0]
  states.forEach((s, i) => {
    const lo = b.readUInt32LE(BAT + i * 8)
    b.writeUInt32LE(s === 0 ? 0 : ((lo & ~7) | s) >>> 0, BAT + i * 8)
    if (s === 0) b.writeUInt32LE(0, BAT + i * 8 + 4)
  })
  writeFileSync(p, b)
  t.same(await checkVhdx(p), [])
  const r = await openVhdx(p, { readOnly: true })
  const got = Buffer.alloc(8 * MiB)
  await r.read(0, got)
  t.ok(got.subarray(0, 5 * MiB).every(x => x === 0), 'states 0, 1, 2, 3, 5 read as zeros')
  t.ok(got.subarray(5 * MiB).every(x => x === 0xaa), 'FULLY_PRESENT blocks read their data')
  t.same((await r.extents(0, 8 * MiB)).map(e => [e.length / MiB, e.state]), [[1, 'unallocated'], [1, 'zero'], [3, 'unallocated'], [3, 'data']])
  await r.close()
  // Writing into a ZERO block with a recorded offset reuses it and zero-fills the rest.
  const w = await openVhdx(p, {})
  await w.write(MiB + 4096, Buffer.alloc(4096, 0x33))
  const blk = Buffer.alloc(MiB)
  await w.read(MiB, blk)
  await w.close()
  t.ok(blk.subarray(0, 4096).every(x => x === 0) && blk.subarray(4096, 8192).every(x => x === 0x33) && blk.subarray(8192).every(x => x === 0))
  t.equal(readFileSync(p).readUInt32LE(BAT + 8) >>> 20, b.readUInt32LE(BAT + 8) >>> 20, 'the recorded offset was reused')
  if (haveQemu) t.equal(runStatus('qemu-img', ['check', '-f', 'vhdx', p]).status, 0, 'qemu-img check clean')
})

t.test('a sector bitmap entry in a file without a parent is refused', async t => {
  const dir = tempDir(t)
  const p = join(dir, 'sb.vhdx')
  // 5 GiB with 32 MiB blocks: chunk ratio 128, so BAT entry 128 is chunk 0's sector bitmap entry.
  await createVhdx(p, { sizeBytes: 5 * 1024 * MiB, type: 'dynamic', blockSizeBytes: 32 * MiB })
  const fh = await import('node:fs/promises').then(m => m.open(p, 'r+'))
  const entry = Buffer.alloc(8)
  entry.writeUInt32LE((4 << 20) | 6, 0) // SB_BLOCK_PRESENT at 4 MiB
  await fh.write(entry, 0, 8, BAT + 128 * 8)
  await fh.truncate(6 * MiB)
  await fh.close()
  await t.rejects(openVhdx(p, { readOnly: true }), { name: 'FormatError', structure: 'BAT entry', offset: BAT + 128 * 8, message: /sector bitmap entry/ })
  t.match(await checkVhdx(p), [{ structure: 'BAT entry 128', severity: 'error', message: /without a parent/ }])
})
