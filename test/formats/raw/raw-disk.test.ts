import t from 'tap'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { openRaw, RawDisk, RAW_SECTOR_BYTES } from '../../../src/formats/raw/raw-disk.js'
import { resetSparseForTests, setSparseWarningSink, sparseSupport } from '../../../src/platform/sparse.js'
import { alignedBuffer } from '../../../src/platform/direct-io.js'

const MiB = 1024 * 1024

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hvcbt-raw-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

function sparseFile(dir: string, name: string, size: number): string {
  const file = path.join(dir, name)
  fs.writeFileSync(file, '')
  fs.truncateSync(file, size)
  return file
}

t.test('reads back what was written, at scattered offsets, with FUA', async t => {
  const file = sparseFile(tempDir(t), 'a.raw', 8 * MiB)
  const disk = await openRaw(file)
  t.equal(disk.size, 8 * MiB)
  t.equal(disk.logicalSectorSize, RAW_SECTOR_BYTES)
  t.equal(disk.readOnly, false)
  const offsets = [0, 512, 3 * MiB + 4096, 8 * MiB - 65536]
  for (const [i, off] of offsets.entries()) {
    await disk.write(off, Buffer.alloc(65536 > 8 * MiB - off ? 8 * MiB - off : 65536, 0x10 + i), { fua: i % 2 === 0 })
  }
  await disk.flush()
  const whole = fs.readFileSync(file)
  for (const [i, off] of offsets.entries()) {
    const back = Buffer.alloc(512)
    await disk.read(off, back)
    t.ok(back.every(b => b === 0x10 + i), `sector at ${off} reads back`)
    t.equal(whole[off], 0x10 + i, `file byte at ${off} matches`)
  }
  await disk.close()
  await disk.close() // idempotent
  await t.rejects(disk.read(0, Buffer.alloc(512)), /closed/)
})

t.test('create: the file grows with the writes and takes its full size at flush or close', async t => {
  const dir = tempDir(t)
  const file = path.join(dir, 'new.raw')
  const disk = await RawDisk.create(file, 8 * MiB)
  t.equal(disk.size, 8 * MiB)
  t.equal(fs.statSync(file).size, 0, 'starts empty')
  await disk.write(MiB, Buffer.alloc(MiB, 7))
  t.equal(fs.statSync(file).size, 2 * MiB, 'a write extends it')
  const back = Buffer.alloc(4096, 1)
  await disk.read(6 * MiB, back)
  t.ok(back.every(b => b === 0), 'past the written end reads zeros')
  await disk.flush()
  t.equal(fs.statSync(file).size, 8 * MiB, 'flush gives the file its size')
  await disk.close()
  const whole = fs.readFileSync(file)
  t.ok(whole.subarray(MiB, 2 * MiB).every(b => b === 7) && whole.subarray(0, MiB).every(b => b === 0) && whole.subarray(2 * MiB).every(b => b === 0))
  // closed without a flush: still its full size
  const other = await RawDisk.create(path.join(dir, 'b.raw'), 4 * MiB)
  await other.close()
  t.equal(fs.statSync(path.join(dir, 'b.raw')).size, 4 * MiB)
  await t.rejects(RawDisk.create(file, 4 * MiB), { code: 'EEXIST' }, 'never overwrites')
  await t.rejects(RawDisk.create(path.join(dir, 'c.raw'), 1000), /multiple of the 512-byte sector/)
})

t.test('create with direct: aligned writes bypass the page cache, the rest go buffered, all land',
  { skip: sparseSupport().native ? false : `native addon not loaded: ${sparseSupport().reason}` }, async t => {
  const dir = tempDir(t)
  const file = path.join(dir, 'direct.raw')
  const size = 8 * MiB + 1024
  const disk = await RawDisk.create(file, size, { direct: true })
  t.ok(disk.directIo, 'the file system takes O_DIRECT')
  t.equal(fs.statSync(file).size, size, 'a direct file has its full size at once')
  const unit = alignedBuffer(4 * MiB)
  for (let i = 0; i < unit.length; i += 4096) unit[i] = (i >> 12) & 0xff | 1
  await disk.write(4 * MiB, unit.subarray(MiB)) // aligned view of aligned memory: direct
  await disk.write(0, unit.subarray(0, MiB)) // out of order: fine for a direct file
  const plain = Buffer.alloc(64 * 1024, 0x33) // ordinary memory: buffered
  await disk.write(2 * MiB, plain)
  const tail = alignedBuffer(4096).fill(0x44).subarray(0, 1024) // unaligned length: buffered
  await disk.write(8 * MiB, tail)
  await disk.flush()
  // fincore counts the file's pages in the page cache: the 4 MiB written direct left none, the buffered 65 KiB did
  const cached = Number(execFileSync('fincore', ['--bytes', '--noheadings', '--raw', '--output', 'RES', file]).toString().trim())
  t.ok(cached >= 64 * 1024 && cached < MiB, `only the buffered writes are cached (${cached} bytes)`)
  await disk.close()
  const whole = fs.readFileSync(file)
  t.ok(whole.subarray(4 * MiB, 7 * MiB).equals(unit.subarray(MiB)), 'direct write at 4 MiB')
  t.ok(whole.subarray(0, MiB).equals(unit.subarray(0, MiB)), 'direct write at 0')
  t.ok(whole.subarray(2 * MiB, 2 * MiB + 65536).every(b => b === 0x33), 'buffered write')
  t.ok(whole.subarray(8 * MiB).every(b => b === 0x44), 'buffered tail')
  t.ok(whole.subarray(MiB, 2 * MiB).every(b => b === 0) && whole.subarray(7 * MiB, 8 * MiB).every(b => b === 0), 'unwritten ranges read zeros')
})

t.test('extents follow the file holes; trim and writeZeroes make holes that read as zeros', async t => {
  const file = sparseFile(tempDir(t), 'b.raw', 16 * MiB)
  const disk = await openRaw(file)
  t.teardown(() => disk.close())
  await disk.write(4 * MiB, Buffer.alloc(MiB, 0xaa))
  await disk.write(10 * MiB, Buffer.alloc(2 * MiB, 0xbb))
  const ext = await disk.extents(0, disk.size)
  // contiguous, ordered, covering
  let at = 0
  for (const e of ext) {
    t.equal(e.offset, at, 'extents are contiguous')
    at += e.length
  }
  t.equal(at, disk.size, 'extents cover the disk')
  if (sparseSupport().native) {
    const data = ext.filter(e => e.state === 'data')
    t.ok(data.some(e => e.offset <= 4 * MiB && e.offset + e.length >= 5 * MiB), 'first written range is data')
    t.ok(data.some(e => e.offset <= 10 * MiB && e.offset + e.length >= 12 * MiB), 'second written range is data')
    t.ok(ext.some(e => e.state === 'zero' && e.offset === 0), 'start of the file is a hole')
    const dataBytes = data.reduce((s, e) => s + e.length, 0)
    t.ok(dataBytes < 8 * MiB, `data bytes (${dataBytes}) stay near what was written`)
  } else {
    t.ok(ext.every(e => e.state === 'data'), 'without the addon everything is data')
  }

  await disk.trim(4 * MiB, MiB)
  await disk.writeZeroes(10 * MiB, MiB)
  await disk.writeZeroes(11 * MiB, MiB, { noHole: true, fua: true })
  const back = Buffer.alloc(2 * MiB)
  await disk.read(10 * MiB, back)
  t.ok(back.every(b => b === 0), 'zeroed range reads zeros')
  await disk.read(4 * MiB, back.subarray(0, MiB))
  t.ok(back.subarray(0, MiB).every(b => b === 0), 'trimmed range reads zeros')
  t.equal(fs.statSync(file).size, 16 * MiB, 'file size unchanged')
  if (sparseSupport().native) {
    const after = await disk.extents(4 * MiB, MiB)
    t.same(after, [{ offset: 4 * MiB, length: MiB, state: 'zero' }], 'trimmed range is a hole again')
    const kept = await disk.extents(11 * MiB, MiB)
    t.ok(kept.every(e => e.state === 'data'), 'NO_HOLE zeroing kept the range allocated')
  }
  const sub = await disk.extents(4 * MiB + 512, 1024)
  t.equal(sub[0]!.offset, 4 * MiB + 512, 'sub-range extents start at the asked offset')
  t.equal(sub.reduce((s, e) => s + e.length, 0), 1024, 'and cover exactly the asked length')
})

t.test('read-only disks refuse writes; torn images are refused', async t => {
  const dir = tempDir(t)
  const file = sparseFile(dir, 'c.raw', MiB)
  const disk = await openRaw(file, { readOnly: true })
  t.equal(disk.readOnly, true)
  await t.rejects(disk.write(0, Buffer.alloc(512)), { code: 'EROFS' })
  await t.rejects(disk.trim(0, 512), { code: 'EROFS' })
  await t.rejects(disk.writeZeroes(0, 512), { code: 'EROFS' })
  await disk.flush()
  await disk.close()
  const torn = sparseFile(dir, 'torn.raw', MiB + 100)
  await t.rejects(openRaw(torn), { name: 'FormatError', message: /not a multiple of the 512-byte sector/ })
  await t.rejects(openRaw(path.join(dir, 'missing.raw')), { code: 'ENOENT' })
})

t.test('qemu-img sees what RawDisk wrote', async t => {
  try {
    execFileSync('qemu-img', ['--version'])
  } catch {
    t.skip('qemu-img not installed')
    return
  }
  const dir = tempDir(t)
  const file = path.join(dir, 'q.raw')
  execFileSync('qemu-img', ['create', '-f', 'raw', file, '4M'])
  const disk = await openRaw(file)
  await disk.write(MiB, Buffer.alloc(65536, 0x5a))
  await disk.close()
  const map = JSON.parse(execFileSync('qemu-img', ['map', '--output=json', '-f', 'raw', file]).toString()) as
    { start: number; length: number; data: boolean; zero: boolean }[]
  const dataAt = map.find(m => m.data && m.start <= MiB && m.start + m.length >= MiB + 65536)
  t.ok(dataAt, 'qemu-img map reports the written range as data')
  const out = execFileSync('qemu-io', ['-f', 'raw', '-c', `read -P 0x5a ${MiB} 64k`, file]).toString()
  t.notMatch(out, /Pattern verification failed/, 'qemu-io verifies the pattern')
})

t.test('without the native addon: extents are all data, trim and zeroing write zeros', async t => {
  const saved = process.env.HVCBT_NO_NATIVE
  const warnings: string[] = []
  process.env.HVCBT_NO_NATIVE = '1'
  resetSparseForTests()
  setSparseWarningSink(m => warnings.push(m))
  t.teardown(() => {
    if (saved === undefined) delete process.env.HVCBT_NO_NATIVE
    else process.env.HVCBT_NO_NATIVE = saved
    resetSparseForTests()
    setSparseWarningSink(m => process.stderr.write(`hvcbt: warning: ${m}\n`))
  })
  const file = sparseFile(tempDir(t), 'f.raw', 4 * MiB)
  const disk = await openRaw(file)
  t.teardown(() => disk.close())
  await disk.write(MiB, Buffer.alloc(MiB, 0x44))
  t.same(await disk.extents(0, disk.size), [{ offset: 0, length: 4 * MiB, state: 'data' }], 'one data extent')
  await disk.trim(MiB, 512 * 1024)
  await disk.writeZeroes(MiB + 512 * 1024, 256 * 1024, { noHole: true })
  const back = Buffer.alloc(MiB)
  await disk.read(MiB, back)
  t.ok(back.subarray(0, 768 * 1024).every(b => b === 0), 'trimmed and zeroed ranges read zeros')
  t.ok(back.subarray(768 * 1024).every(b => b === 0x44), 'the rest is untouched')
  t.equal(fs.statSync(file).size, 4 * MiB, 'size unchanged')
  t.equal(warnings.length, 1, 'one warning says sparse files are unsupported')
})
