import t from 'tap'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { FormatError } from '../../src/engine/errors.js'
import { checkDisk } from '../../src/formats/check.js'
import { openDisk } from '../../src/formats/open.js'
import { inspectDisk } from '../../src/formats/inspect.js'
import { createVhd } from '../../src/formats/vhd/vhd-create.js'
import { openVhd } from '../../src/formats/vhd/vhd-disk.js'
import { decodeDynamicHeader, decodeFooter, encodeDynamicHeader, encodeFooter, type VhdDynamicHeader, type VhdFooter } from '../../src/formats/vhd/vhd-layout.js'
import { tempDir } from './format-tools.js'

const MiB = 1024 * 1024

/** Rewrite a dynamic VHD's footer (both copies) and dynamic header through the given edits, checksums fixed. */
function patch(file: string, edit: { footer?: (f: VhdFooter) => void; header?: (h: VhdDynamicHeader) => void; raw?: (b: Buffer) => void }): void {
  const b = readFileSync(file)
  const f = decodeFooter(b.subarray(b.length - 512))
  edit.footer?.(f)
  const ef = encodeFooter(f)
  ef.copy(b, b.length - 512)
  ef.copy(b, 0)
  const h = decodeDynamicHeader(b.subarray(512, 1536))
  if (edit.header) {
    edit.header(h)
    encodeDynamicHeader(h).copy(b, 512)
  }
  edit.raw?.(b)
  writeFileSync(file, b)
}

async function fresh(dir: string, name: string, withData = true): Promise<string> {
  const p = join(dir, name)
  await createVhd(p, { sizeBytes: 8 * MiB, type: 'dynamic' })
  if (withData) {
    const d = await openVhd(p)
    await d.write(2 * MiB, Buffer.alloc(4096, 7))
    await d.close()
  }
  return p
}

t.test('hostile headers give FormatErrors naming structure and offset', async t => {
  const dir = tempDir(t)
  const cases: [string, Parameters<typeof patch>[1], RegExp][] = [
    ['huge size', { footer: f => (f.currentSize = 2 ** 52) }, /VHD footer at offset \d+: current size \d+ is out of range/],
    ['size beyond the BAT', { footer: f => (f.currentSize = 1024 * MiB) }, /VHD dynamic header at offset 512: BAT has 4 entries but 512 blocks/],
    ['huge table', { header: h => { h.maxTableEntries = 0xffffffff }, footer: f => (f.currentSize = 2 ** 45) }, /VHD dynamic header at offset 512: BAT at offset 1536 with \d+ entries lies outside the file/],
    ['block size not a power of two', { header: h => (h.blockSize = 3 * MiB) }, /block size 3145728 is not a power of two/],
    ['dynamic header past EOF', { footer: f => (f.dataOffset = 2 ** 40) }, /VHD footer at offset \d+: dynamic header offset 1099511627776 lies outside the file/],
    ['BAT entry past EOF', { raw: b => b.writeUInt32BE(0x00ffffff, 1536 + 4) }, /VHD BAT entry 1 at offset 1540: block at offset \d+ .* lies outside the data area/],
    ['BAT entry over the footer copy', { raw: b => b.writeUInt32BE(0, 1536 + 8) }, /VHD BAT entry 2 at offset 1544: block at offset 0/],
    ['bad dynamic header checksum', { raw: b => (b[512 + 100] ^= 1) }, /VHD dynamic header at offset 512: checksum is 0x[0-9a-f]+, computed/],
    ['bad type', { footer: f => (f.diskType = 7) }, /disk type 7 is not 2/],
  ]
  for (const [name, edit, expected] of cases) {
    const p = await fresh(dir, `${name.replace(/\W+/g, '-')}.vhd`)
    patch(p, edit)
    let err: unknown
    try {
      const d = await openVhd(p, { readOnly: true })
      await d.close()
    } catch (e) {
      err = e
    }
    t.ok(err instanceof FormatError, `${name}: FormatError`)
    t.match((err as Error)?.message, expected, name)
    const c = await checkDisk(p)
    t.not(c.status, 'clean', `${name}: check is not clean (${c.status})`)
  }
})

t.test('parent locator past EOF and a missing parent', async t => {
  const dir = tempDir(t)
  const base = await fresh(dir, 'base.vhd')
  const child = join(dir, 'child.vhd')
  await createVhd(child, { type: 'differencing', parentPath: base })
  const saved = readFileSync(child)
  patch(child, { header: h => (h.locators[0]!.platformDataOffset = 2 ** 45) })
  await t.rejects(inspectDisk(child), { name: 'FormatError', message: /VHD parent locator 0 \(W2ru\) at offset 1088: data at offset 35184372088832/ })
  writeFileSync(child, saved)
  writeFileSync(base, Buffer.alloc(0))
  const c = await checkDisk(child)
  t.equal(c.status, 'problems')
  t.match(c.problems.map(p => p.message).join('\n'), /parent linkage: .*base\.vhd is not a VHD or VHDX; the child needs a VHD parent/)
})

t.test('loops in parent chains and chains deeper than 64 are rejected', async t => {
  const dir = tempDir(t)
  const a = await fresh(dir, 'a.vhd', false)
  const b = join(dir, 'b.vhd')
  const c = join(dir, 'c.vhd')
  await createVhd(b, { type: 'differencing', parentPath: a })
  await createVhd(c, { type: 'differencing', parentPath: b })
  // Turn a into a child of c: a -> c -> b -> a.
  const cId = decodeFooter(readFileSync(c).subarray(-512)).uniqueId
  patch(a, {
    footer: f => (f.diskType = 4),
    header: h => {
      h.parentUniqueId = cId
      h.parentName = '.\\c.vhd'
    },
  })
  await t.rejects(openDisk(c, { readOnly: true }), { name: 'FormatError', message: /parent chain: loop: the file is its own ancestor .*c\.vhd -> .*b\.vhd -> .*a\.vhd -> .*c\.vhd/ })

  const chainDir = join(dir, 'deep')
  const { mkdirSync } = await import('node:fs')
  mkdirSync(chainDir)
  let prev = await fresh(chainDir, 'd0.vhd', false)
  for (let i = 1; i <= 65; i++) {
    const next = join(chainDir, `d${i}.vhd`)
    await createVhd(next, { type: 'differencing', parentPath: prev })
    prev = next
  }
  await t.rejects(openDisk(prev, { readOnly: true }), { name: 'FormatError', message: /chain is deeper than 64 disks/ })
  const ok = await openDisk(join(chainDir, 'd63.vhd'), { readOnly: true })
  t.equal(ok.size, 8 * MiB, 'a chain of 64 opens')
  await ok.close()
})

t.test('a parent whose unique id changed is not accepted', async t => {
  const dir = tempDir(t)
  const base = await fresh(dir, 'base.vhd')
  const child = join(dir, 'child.vhd')
  await createVhd(child, { type: 'differencing', parentPath: base })
  patch(base, { footer: f => (f.uniqueId = new Uint8Array(16).fill(9)) })
  await t.rejects(openDisk(child, { readOnly: true }), { name: 'FormatError', message: /has unique id 09090909-.*the child expects/ })
})

t.test('check finds duplicate and overlapping blocks and a differing footer copy', async t => {
  const dir = tempDir(t)
  const p = await fresh(dir, 'dup.vhd')
  const d = await openVhd(p)
  await d.write(6 * MiB, Buffer.alloc(512, 1))
  await d.close()
  t.equal((await checkDisk(p)).status, 'clean')
  const b = readFileSync(p)
  const first = b.readUInt32BE(1536 + 4)
  b.writeUInt32BE(first, 1536 + 12) // block 3 shares block 1's space
  b[100] ^= 0xff // damage the footer copy
  writeFileSync(p, b)
  const c = await checkDisk(p)
  t.equal(c.status, 'problems')
  const text = c.problems.map(x => `${x.structure}@${x.offset}: ${x.message}`).join('\n')
  t.match(text, /VHD BAT entry \d@15\d\d: block offset \d+ is also used by entry \d/)
  t.match(text, /VHD footer copy@0: checksum/)
})
