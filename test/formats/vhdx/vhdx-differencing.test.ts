/**
 * Differencing VHDX: a child made by HvCbt over an HvCbt parent reads per sector through the chain (sector
 * bitmaps, FULLY/PARTIALLY_PRESENT, ZERO), the parent is never written, the linkage is enforced, and libvhdi's
 * vhdimount reads the same bytes. Known libvhdi bugs avoided here: it reads the parent for ZERO blocks of a child
 * (so no whole-block writeZeroes before the vhdimount comparison) and misreads fixed VHDX larger than one chunk
 * (so the parent is dynamic).
 */
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdirSync, readFileSync, statSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { createVhdx } from '../../../src/formats/vhdx/vhdx-create.js'
import { inspectVhdx } from '../../../src/formats/vhdx/vhdx-inspect.js'
import { type ParentResolver, openVhdx, readParentLocator } from '../../../src/formats/vhdx/vhdx-open.js'
import { hasTool, rng, tempDir } from './helpers.js'

const MiB = 1024 * 1024

/** Resolves relative_path against the child's folder (Windows separators mapped), opening the parent read-only. */
const resolver: ParentResolver = async (loc, childPath) => {
  const rel = (loc.relativePath ?? '').replace(/\\/g, '/')
  const disk = await openVhdx(join(dirname(childPath), rel), { readOnly: true }, resolver)
  return { disk, dataWriteGuid: disk.dataWriteGuid }
}

async function makeChain(dir: string, lss: 512 | 4096) {
  const base = join(dir, 'base.vhdx')
  const child = join(dir, 'child.avhdx')
  const size = 80 * MiB
  const bs = 2 * MiB
  await createVhdx(base, { sizeBytes: size, type: 'dynamic', blockSizeBytes: bs, logicalSectorSize: lss })
  const expected = Buffer.alloc(size)
  const r = rng(lss)
  const b = await openVhdx(base, {})
  for (let i = 0; i < 10; i++) {
    const len = (1 + Math.floor(r() * 3000)) * lss
    const off = Math.floor(r() * ((size - len) / lss)) * lss
    const data = Buffer.alloc(len, 0x10 + i)
    await b.write(off, data)
    data.copy(expected, off)
  }
  const dataWriteGuid = b.dataWriteGuid
  await b.close()
  await createVhdx(child, {
    sizeBytes: size, type: 'differencing', blockSizeBytes: bs, logicalSectorSize: lss,
    parent: { path: base, dataWriteGuid, logicalSectorSize: lss, relativePath: '.\\base.vhdx', absoluteWin32Path: 'C:\\VMs\\base.vhdx' },
  })
  return { base, child, size, bs, expected }
}

for (const lss of [512, 4096] as const) {
  t.test(`differencing chain with ${lss}-byte sectors`, async t => {
    const dir = tempDir(t)
    const { base, child, size, bs, expected } = await makeChain(dir, lss)
    const baseBefore = readFileSync(base)
    const info = await inspectVhdx(child)
    t.equal(info.type, 'differencing')
    t.equal(info.parentPath, '.\\base.vhdx')
    const loc = await readParentLocator(child)
    t.equal(loc?.absoluteWin32Path, 'C:\\VMs\\base.vhdx')
    t.match(loc?.parentLinkage, /^[0-9a-f-]{36}$/)
    if (hasTool('vhdiinfo')) {
      const out = spawnSync('vhdiinfo', [child], { encoding: 'utf8' }).stdout
      t.match(out, /Disk type\s*:\s*Differential/, 'vhdiinfo: differencing')
      t.match(out, new RegExp(`Media size\\s*:.*\\(${size} bytes\\)`), 'vhdiinfo: size')
      t.match(out, new RegExp(`Bytes per sector\\s*:\\s*${lss}`), 'vhdiinfo: sector size')
      t.match(out, new RegExp(`Parent identifier\\s*:\\s*${loc?.parentLinkage}`), 'vhdiinfo: parent linkage')
      t.match(out, /Parent filename\s*:\s*C:\\VMs\\base\.vhdx/, 'vhdiinfo: parent path')
    }

    const d = await openVhdx(child, {}, resolver)
    const fresh = Buffer.alloc(size)
    await d.read(0, fresh)
    t.ok(fresh.equals(expected), 'a new child reads as its parent')
    t.same(await d.extents(0, size), [{ offset: 0, length: size, state: 'parent' }])
    const r = rng(lss + 1)
    for (let i = 0; i < 30; i++) {
      const len = (1 + Math.floor(r() * (i % 4 === 0 ? 1500 : 9))) * lss
      const off = Math.floor(r() * ((size - len) / lss)) * lss
      const data = Buffer.alloc(len, 0xa0 + (i % 50))
      await d.write(off, data)
      data.copy(expected, off)
    }
    // A whole block written at once becomes FULLY_PRESENT.
    const whole = Buffer.alloc(bs, 0x77)
    await d.write(5 * bs, whole)
    whole.copy(expected, 5 * bs)
    // Partial zeroing must hide the parent's bytes.
    await d.writeZeroes(3 * bs + lss, 4 * lss)
    expected.fill(0, 3 * bs + lss, 3 * bs + 5 * lss)
    const got = Buffer.alloc(size)
    await d.read(0, got)
    t.ok(got.equals(expected), 'child + parent read as expected after writes')
    const ext = await d.extents(0, size)
    t.ok(ext.some(e => e.state === 'data') && ext.some(e => e.state === 'parent'), 'map has data and parent extents')
    t.ok(ext.some(e => e.state === 'data' && e.offset <= 5 * bs && e.offset + e.length >= 6 * bs), 'whole-block write is data')
    await d.close()
    t.ok(readFileSync(base).equals(baseBefore), 'the parent file was not changed')

    const d2 = await openVhdx(child, { readOnly: true }, resolver)
    const again = Buffer.alloc(size)
    await d2.read(0, again)
    await d2.close()
    t.ok(again.equals(expected), 'reopened child reads the same')

    if (hasTool('vhdimount') && statSync('/dev/fuse', { throwIfNoEntry: false })) {
      const mnt = join(dir, 'mnt')
      mkdirSync(mnt)
      const m = spawnSync('vhdimount', [child, mnt], { encoding: 'utf8', timeout: 20000 })
      if (m.status !== 0) t.comment(`vhdimount failed (${m.stderr.trim()}); libvhdi comparison skipped`)
      else {
        try {
          const files = spawnSync('ls', [mnt], { encoding: 'utf8' }).stdout.trim().split('\n').sort()
          const leaf = files[files.length - 1]!
          t.ok(readFileSync(join(mnt, leaf)).equals(expected), `libvhdi (vhdimount ${leaf}) reads the chain identically`)
        } finally {
          spawnSync('fusermount', ['-u', mnt])
        }
      }
    } else t.comment('vhdimount or /dev/fuse unavailable: libvhdi read skipped')

    // ZERO state on whole blocks: reads zeros, not the parent.
    const d3 = await openVhdx(child, {}, resolver)
    await d3.writeZeroes(0, 2 * bs)
    await d3.trim(2 * bs, bs)
    const z = Buffer.alloc(3 * bs)
    await d3.read(0, z)
    t.ok(z.every(x => x === 0), 'zeroed/trimmed whole blocks read zeros')
    t.same((await d3.extents(0, 3 * bs)).map(e => e.state), ['zero'])
    await d3.close()
    t.equal(basename(child), 'child.avhdx')
  })
}

t.test('linkage: a child whose parent changed is refused', async t => {
  const dir = tempDir(t)
  const { base, child } = await makeChain(dir, 512)
  const b = await openVhdx(base, {})
  await b.write(0, Buffer.alloc(512, 1)) // new DataWriteGuid
  await b.close()
  await t.rejects(openVhdx(child, { readOnly: true }, resolver), { name: 'FormatError', structure: 'metadata item Parent Locator', message: /parent_linkage/ })
  await t.rejects(openVhdx(child, { readOnly: true }), /needs its parent/)
  const noParent = await openVhdx(child, { readOnly: true, withoutParent: true })
  await t.rejects(noParent.read(0, new Uint8Array(512)), /without its parent/)
  await noParent.close()
})

t.test('merge copies the child into the parent; parent_linkage2 keeps the child openable throughout', async t => {
  const { mergeVhdx } = await import('../../../src/formats/vhdx/vhdx-merge.js')
  const { checkVhdx } = await import('../../../src/formats/vhdx/vhdx-check.js')
  const dir = tempDir(t)
  const { base, child, size, bs, expected } = await makeChain(dir, 512)
  const d = await openVhdx(child, {}, resolver)
  await d.write(bs + 512 * 3, Buffer.alloc(512 * 9, 0x42)) // partial block: PARTIALLY_PRESENT
  Buffer.alloc(512 * 9, 0x42).copy(expected, bs + 512 * 3)
  await d.write(7 * bs, Buffer.alloc(bs, 0x43)) // whole block
  Buffer.alloc(bs, 0x43).copy(expected, 7 * bs)
  await d.writeZeroes(9 * bs, bs) // ZERO over parent data
  expected.fill(0, 9 * bs, 10 * bs)
  await d.close()
  const res = await mergeVhdx(child, resolver)
  t.equal(res.parentPath, base)
  t.equal(res.bytesCopied, 512 * 9 + bs)
  t.equal(res.bytesZeroed, bs)
  const merged = await openVhdx(base, { readOnly: true })
  const got = Buffer.alloc(size)
  await merged.read(0, got)
  await merged.close()
  t.ok(got.equals(expected), 'the parent alone now reads as the chain did')
  t.same(await checkVhdx(base), [])
  t.same(await checkVhdx(child), [])
  const loc = await readParentLocator(child)
  t.ok(loc?.parentLinkage2 && loc.parentLinkage2 !== loc.parentLinkage, 'parent_linkage2 recorded')
  const again = await openVhdx(child, { readOnly: true }, resolver)
  const viaChild = Buffer.alloc(size)
  await again.read(0, viaChild)
  await again.close()
  t.ok(viaChild.equals(expected), 'the child still opens (via parent_linkage2) and reads the same')
  // Merging again (as after a crash mid-merge) is harmless.
  await mergeVhdx(child, resolver)
  const twice = await openVhdx(base, { readOnly: true })
  await twice.read(0, got)
  await twice.close()
  t.ok(got.equals(expected), 'a repeated merge leaves the same bytes')
  if (hasTool('qemu-img')) {
    const { writeFileSync } = await import('node:fs')
    writeFileSync(join(dir, 'expected.raw'), expected)
    t.equal(spawnSync('qemu-img', ['compare', '-f', 'vhdx', '-F', 'raw', base, join(dir, 'expected.raw')]).status, 0, 'qemu-img compare')
    t.equal(spawnSync('qemu-img', ['check', '-f', 'vhdx', base]).status, 0, 'qemu-img check')
  }
})
