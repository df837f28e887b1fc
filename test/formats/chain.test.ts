import t from 'tap'
import { copyFileSync, mkdirSync, renameSync } from 'node:fs'
import { join } from 'node:path'
import { readFileSync } from 'node:fs'
import { mapRecordedPath, readParentSpec, resolveParent } from '../../src/formats/chain.js'
import { createDisk } from '../../src/formats/create.js'
import { describeChain, openDisk } from '../../src/formats/open.js'
import { missing, readThroughVhdimount, tempDir, vhdiInfo } from './format-tools.js'

const MiB = 1024 * 1024

t.test('recorded Windows paths map to host paths', async t => {
  t.same(mapRecordedPath('..\\base\\p.vhdx', '/vms/child'), ['/vms/base/p.vhdx'])
  t.same(mapRecordedPath('.\\p.vhd', '/vms'), ['/vms/p.vhd'])
  t.same(mapRecordedPath('p.vhd', '/vms'), ['/vms/p.vhd'])
  t.same(mapRecordedPath('C:\\VMs\\p.vhdx', '/x'), ['/VMs/p.vhdx', '/mnt/c/VMs/p.vhdx'])
  t.same(mapRecordedPath('\\\\?\\d:\\path2\\sub3\\parent.vhdx', '/x'), ['/path2/sub3/parent.vhdx', '/mnt/d/path2/sub3/parent.vhdx'])
  t.same(mapRecordedPath('\\\\?\\Volume{26A21BDA-A627-11D7-9931-806E6F6E6963}\\path2\\parent.vhdx', '/x'), ['/path2/parent.vhdx'])
  t.same(mapRecordedPath('/srv/vms/p.vhdx', '/x'), ['/srv/vms/p.vhdx'])
  t.same(mapRecordedPath('\\tmp\\a\\p.vhd', '/x'), ['/tmp/a/p.vhd'])
  t.same(mapRecordedPath('\\\\server\\share\\p.vhdx', '/x'), [])
})

t.test('a moved chain is found by file name next to the child, and the guess is reported', async t => {
  const dir = tempDir(t)
  mkdirSync(join(dir, 'old'))
  await createDisk(join(dir, 'old', 'base.vhdx'), { sizeBytes: 8 * MiB, blockSizeBytes: MiB })
  mkdirSync(join(dir, 'old', 'snaps'))
  await createDisk(join(dir, 'old', 'snaps', 'child.avhdx'), { parentPath: join(dir, 'old', 'base.vhdx') })
  // Move both into one new folder: relative (..\base.vhdx) and absolute paths are now wrong.
  mkdirSync(join(dir, 'new'))
  renameSync(join(dir, 'old', 'base.vhdx'), join(dir, 'new', 'base.vhdx'))
  renameSync(join(dir, 'old', 'snaps', 'child.avhdx'), join(dir, 'new', 'child.avhdx'))
  const notes: string[] = []
  const d = await openDisk(join(dir, 'new', 'child.avhdx'), { readOnly: true, onNote: m => notes.push(m) })
  await d.close()
  t.equal(notes.length, 1)
  t.match(notes[0], /parent found by its file name next to the child: .*new\/base\.vhdx/)
  const chain = await describeChain(join(dir, 'new', 'child.avhdx'))
  t.same(chain.map(m => [m.format, m.foundBy]), [['vhdx', undefined], ['vhdx', 'file name next to the child']])

  // A different disk of the same name is refused: its DataWriteGuid is not the linkage.
  copyFileSync(join(dir, 'new', 'base.vhdx'), join(dir, 'keep.vhdx'))
  await createDisk(join(dir, 'other.vhdx'), { sizeBytes: 8 * MiB, blockSizeBytes: MiB })
  renameSync(join(dir, 'other.vhdx'), join(dir, 'new', 'base.vhdx'))
  const spec = await readParentSpec(join(dir, 'new', 'child.avhdx'), 'vhdx')
  await t.rejects(resolveParent(join(dir, 'new', 'child.avhdx'), spec!), { name: 'FormatError', message: /DataWriteGuid .* parent_linkage/ })
  renameSync(join(dir, 'keep.vhdx'), join(dir, 'new', 'base.vhdx'))
  t.ok(await resolveParent(join(dir, 'new', 'child.avhdx'), spec!))
  await t.rejects(openDisk(join(dir, 'nowhere.avhdx')), { code: 'ENOENT' })
})

t.test('parents are opened read-only: writes to the child never touch the parent file', async t => {
  const dir = tempDir(t)
  await createDisk(join(dir, 'base.vhd'), { sizeBytes: 4 * MiB })
  await createDisk(join(dir, 'child.vhd'), { parentPath: join(dir, 'base.vhd') })
  const before = readFileSync(join(dir, 'base.vhd'))
  const d = await openDisk(join(dir, 'child.vhd'))
  await d.write(0, Buffer.alloc(2 * MiB, 1))
  await d.writeZeroes(2 * MiB, MiB)
  await d.close()
  t.ok(readFileSync(join(dir, 'base.vhd')).equals(before), 'parent file unchanged')
})

t.test('differencing VHDX chain made by HvCbt reads the same through vhdimount', { skip: missing('vhdiinfo', 'vhdimount', 'fusermount') }, async t => {
  const dir = tempDir(t)
  const size = 48 * MiB
  const expected = Buffer.alloc(size)
  const base = join(dir, 'base.vhdx')
  await createDisk(base, { sizeBytes: size, blockSizeBytes: MiB })
  let d = await openDisk(base)
  await d.write(0, Buffer.alloc(5 * MiB, 0x11)); expected.fill(0x11, 0, 5 * MiB)
  await d.close()
  const child = join(dir, 'child.avhdx')
  await createDisk(child, { parentPath: base })
  d = await openDisk(child)
  await d.write(64 * 1024, Buffer.alloc(8192, 0x21)); expected.fill(0x21, 65536, 65536 + 8192)
  await d.write(30 * MiB, Buffer.alloc(2 * MiB, 0x22)); expected.fill(0x22, 30 * MiB, 32 * MiB)
  await d.close()
  const grand = join(dir, 'grand.avhdx')
  await createDisk(grand, { parentPath: child })
  d = await openDisk(grand)
  // libvhdi reads the parent for ZERO blocks in a differencing VHDX, so zeros here are written as data (no
  // writeZeroes), and only whole 512-byte sectors are used.
  await d.write(4 * MiB, Buffer.alloc(4096, 0x31)); expected.fill(0x31, 4 * MiB, 4 * MiB + 4096)
  await d.write(31 * MiB, Buffer.alloc(4096, 0)); expected.fill(0, 31 * MiB, 31 * MiB + 4096)
  await d.close()
  const got = Buffer.alloc(size)
  d = await openDisk(grand, { readOnly: true })
  await d.read(0, got)
  await d.close()
  t.ok(got.equals(expected), 'HvCbt reads the chain')
  const v = vhdiInfo(grand)
  t.equal(v['Disk type'], 'Differential')
  t.match(v['Media size'], `(${size} bytes)`)
  const mounted = await readThroughVhdimount(grand, join(dir, 'mnt'), 3)
  if (!mounted) return void t.skip('FUSE cannot mount in this sandbox', async () => {})
  t.ok(mounted.equals(expected), 'vhdimount reads the same bytes')
})
