/**
 * Disks made by qemu-img and filled by qemu-io at scattered offsets read back byte-identical to
 * `qemu-img convert -O raw`, and the allocation map agrees with where qemu-io wrote.
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { checkVhdx } from '../../../src/formats/vhdx/vhdx-check.js'
import { openVhdx } from '../../../src/formats/vhdx/vhdx-open.js'
import { haveQemu, qemuWrite, rng, run, tempDir } from './helpers.js'

const MiB = 1024 * 1024

async function readAll(path: string): Promise<Buffer> {
  const d = await openVhdx(path, { readOnly: true })
  try {
    const out = Buffer.alloc(d.size)
    // Uneven chunk size so reads straddle block boundaries.
    const step = 3 * MiB + 512
    for (let off = 0; off < d.size; off += step) await d.read(off, out.subarray(off, Math.min(d.size, off + step)))
    return out
  } finally {
    await d.close()
  }
}

const cases: Array<[string, string, string]> = [
  ['1M blocks, dynamic', '64M', 'block_size=1M'],
  ['8M blocks, dynamic', '100M', 'block_size=8M'],
  ['32M blocks, dynamic', '200M', 'block_size=32M'],
  ['256M blocks, dynamic', '520M', 'block_size=256M'],
  ['fixed, block_state_zero=off', '40M', 'subformat=fixed,block_state_zero=off'],
  ['fixed, block_state_zero=on', '40M', 'subformat=fixed,block_state_zero=on'],
]

for (const [name, size, opts] of cases) {
  t.test(`qemu-made VHDX (${name}) reads like qemu-img convert`, { skip: haveQemu ? false : 'qemu-img/qemu-io not installed' }, async t => {
    const dir = tempDir(t)
    const p = join(dir, 'disk.vhdx')
    run('qemu-img', ['create', '-q', '-f', 'vhdx', '-o', opts, p, size])
    const total = parseInt(size) * MiB
    const r = rng(parseInt(size) + opts.length)
    const writes: Array<[number, number, number]> = []
    for (let i = 0; i < 12; i++) {
      const len = (1 + Math.floor(r() * 600)) * 512
      const off = Math.floor(r() * ((total - len) / 512)) * 512
      writes.push([off, len, 1 + Math.floor(r() * 254)])
    }
    writes.push([total - 4096, 4096, 0xee]) // last sector
    qemuWrite(p, writes)
    run('qemu-img', ['convert', '-f', 'vhdx', '-O', 'raw', p, join(dir, 'expected.raw')])
    const expected = readFileSync(join(dir, 'expected.raw'))
    const got = await readAll(p)
    t.equal(got.length, expected.length, 'virtual size')
    t.ok(got.equals(expected), 'bytes identical to qemu-img convert')
    t.same(await checkVhdx(p), [], 'checkVhdx finds nothing wrong with a qemu-made file')
    const d = await openVhdx(p, { readOnly: true })
    const ext = await d.extents(0, d.size)
    await d.close()
    t.equal(ext.reduce((s, e) => s + e.length, 0), d.size, 'extents cover the disk')
    for (const [off, len] of writes) {
      const e = ext.find(x => x.offset <= off && off < x.offset + x.length)
      t.equal(e?.state, 'data', `written range at ${off} is data`)
      t.ok(e && off + len <= e.offset + e.length || ext.some(x => x.offset === (e!.offset + e!.length) && x.state === 'data'), 'extent covers write')
    }
  })
}

t.test('HvCbt writing into a qemu-made VHDX: qemu-img check and compare stay clean', { skip: haveQemu ? false : 'qemu-img/qemu-io not installed' }, async t => {
  const dir = tempDir(t)
  const p = join(dir, 'q.vhdx')
  const size = 96 * MiB
  run('qemu-img', ['create', '-q', '-f', 'vhdx', '-o', 'block_size=8M', p, String(size)])
  qemuWrite(p, [[0, 3 * MiB, 0x31], [40 * MiB + 512, 65536, 0x32]])
  run('qemu-img', ['convert', '-f', 'vhdx', '-O', 'raw', p, join(dir, 'before.raw')])
  const expected = readFileSync(join(dir, 'before.raw'))
  const d = await openVhdx(p, {})
  const r = rng(5)
  for (let i = 0; i < 25; i++) {
    const len = (1 + Math.floor(r() * 4000)) * 512
    const off = Math.floor(r() * ((size - len) / 512)) * 512
    if (i % 6 === 5) {
      await d.writeZeroes(off, len)
      expected.fill(0, off, off + len)
    } else {
      const data = Buffer.alloc(len, 0x40 + i)
      await d.write(off, data)
      data.copy(expected, off)
    }
  }
  await d.close()
  const { writeFileSync } = await import('node:fs')
  writeFileSync(join(dir, 'expected.raw'), expected)
  const { runStatus } = await import('./helpers.js')
  const chk = runStatus('qemu-img', ['check', '-f', 'vhdx', p])
  t.equal(chk.status, 0, `qemu-img check: ${chk.out}`)
  const cmp = runStatus('qemu-img', ['compare', '-f', 'vhdx', '-F', 'raw', p, join(dir, 'expected.raw')])
  t.equal(cmp.status, 0, `qemu-img compare: ${cmp.out}`)
  t.same(await checkVhdx(p), [])
})

t.test("HvCbt parses and replays log entries qemu wrote", { skip: haveQemu ? false : 'qemu-img/qemu-io not installed' }, async t => {
  const { decodeHeader, encodeHeader, readGuid } = await import('../../../src/formats/vhdx/vhdx-layout.js')
  const { writeFileSync } = await import('node:fs')
  const dir = tempDir(t)
  const p = join(dir, 'ql.vhdx')
  run('qemu-img', ['create', '-q', '-f', 'vhdx', '-o', 'block_size=1M', p, '32M'])
  qemuWrite(p, [[MiB, 3 * MiB, 0x77], [10 * MiB, 65536, 0x78]])
  run('qemu-img', ['convert', '-f', 'vhdx', '-O', 'raw', p, join(dir, 'expected.raw')])
  const expected = readFileSync(join(dir, 'expected.raw'))
  // qemu clears LogGuid once its entries are applied; point the headers back at the log qemu left behind, as if
  // it had died before clearing it. The entries' BAT sectors equal what is in place, so replay changes no data.
  const b = readFileSync(p)
  const h = decodeHeader(b.subarray(64 * 1024, 68 * 1024))
  // qemu gives every entry its own LogGuid: take the newest entry (highest sequence number).
  let newest = -1
  let newestSeq = -1n
  for (let pos = h.logOffset; pos < h.logOffset + h.logLength; pos += 4096) {
    if (b.subarray(pos, pos + 4).toString() === 'loge' && b.readBigUInt64LE(pos + 16) > newestSeq) {
      newestSeq = b.readBigUInt64LE(pos + 16)
      newest = pos
    }
  }
  t.ok(newest >= 0, 'qemu left log entries')
  const logGuid = readGuid(b, newest + 32)
  for (const at of [64 * 1024, 128 * 1024]) b.set(encodeHeader({ ...decodeHeader(b.subarray(at, at + 4096)), logGuid }), at)
  writeFileSync(p, b)
  t.match(await checkVhdx(p), [{ structure: 'log', message: /must be replayed/ }], "qemu's entries pass HvCbt's validation")
  const d = await openVhdx(p, { readOnly: true })
  const got = Buffer.alloc(d.size)
  await d.read(0, got)
  await d.close()
  t.ok(got.equals(expected), 'data after an in-memory replay of qemu entries')
  const w = await openVhdx(p, {})
  await w.close()
  t.same(await checkVhdx(p), [], 'replayed in place and closed clean')
})
