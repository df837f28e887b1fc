/**
 * Disks created and written by HvCbt pass `qemu-img check`, compare equal to the expected raw image with
 * `qemu-img compare`, and vhdiinfo agrees on type, size and sector size.
 */
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createVhdx } from '../../../src/formats/vhdx/vhdx-create.js'
import { inspectVhdx } from '../../../src/formats/vhdx/vhdx-inspect.js'
import { openVhdx } from '../../../src/formats/vhdx/vhdx-open.js'
import { hasTool, haveQemu, haveVhdi, rng, run, runStatus, tempDir } from './helpers.js'

const MiB = 1024 * 1024

interface Case {
  name: string
  type: 'fixed' | 'dynamic'
  size: number
  blockSize: number
  lss: 512 | 4096
}

const cases: Case[] = [
  { name: 'dynamic 1M blocks', type: 'dynamic', size: 48 * MiB, blockSize: MiB, lss: 512 },
  { name: 'dynamic 8M blocks', type: 'dynamic', size: 100 * MiB + 512 * 7, blockSize: 8 * MiB, lss: 512 },
  { name: 'dynamic 32M blocks', type: 'dynamic', size: 160 * MiB, blockSize: 32 * MiB, lss: 512 },
  { name: 'fixed 2M blocks', type: 'fixed', size: 30 * MiB, blockSize: 2 * MiB, lss: 512 },
  { name: 'dynamic 4096-byte sectors', type: 'dynamic', size: 64 * MiB, blockSize: 4 * MiB, lss: 4096 },
]

for (const c of cases) {
  t.test(`HvCbt-made VHDX (${c.name})`, async t => {
    const dir = tempDir(t)
    const p = join(dir, 'disk.vhdx')
    await createVhdx(p, { sizeBytes: c.size, type: c.type, blockSizeBytes: c.blockSize, logicalSectorSize: c.lss })
    const expected = Buffer.alloc(c.size)
    const r = rng(c.size + c.blockSize)
    let d = await openVhdx(p, {})
    t.equal(d.size, c.size)
    t.equal(d.logicalSectorSize, c.lss)
    for (let i = 0; i < 40; i++) {
      const sectors = 1 + Math.floor(r() * (i % 5 === 0 ? 6000 : 40))
      const len = Math.min(sectors * c.lss, c.size)
      const off = Math.floor(r() * ((c.size - len) / c.lss + 1)) * c.lss
      const data = Buffer.alloc(len)
      for (let k = 0; k < len; k += 512) data.fill((i * 7 + k / 512) & 0xff, k, k + 512)
      if (i % 9 === 4) {
        await d.writeZeroes(off, len)
        expected.fill(0, off, off + len)
      } else if (i % 13 === 7) {
        // trim: whole blocks of a dynamic disk become UNMAPPED (zeros for HvCbt and qemu); the rest is untouched.
        await d.trim(off, len)
        if (c.type === 'dynamic') {
          for (let b = Math.ceil(off / c.blockSize); (b + 1) * c.blockSize <= off + len; b++) expected.fill(0, b * c.blockSize, (b + 1) * c.blockSize)
        }
      } else {
        await d.write(off, data, { fua: i % 10 === 0 })
        data.copy(expected, off)
      }
      if (i === 20) {
        // Reopen mid-way: what was written must survive close/open.
        await d.close()
        d = await openVhdx(p, {})
      }
    }
    const got = Buffer.alloc(c.size)
    await d.read(0, got)
    t.ok(got.equals(expected), 'HvCbt reads back what it wrote')
    await d.close()
    const info = await inspectVhdx(p)
    t.equal(info.type, c.type)
    writeFileSync(join(dir, 'expected.raw'), expected)
    if (haveQemu && c.lss === 512) {
      const chk = runStatus('qemu-img', ['check', '-f', 'vhdx', p])
      t.equal(chk.status, 0, `qemu-img check: ${chk.out}`)
      const cmp = runStatus('qemu-img', ['compare', '-f', 'vhdx', '-F', 'raw', p, join(dir, 'expected.raw')])
      t.equal(cmp.status, 0, `qemu-img compare: ${cmp.out}`)
      const q = JSON.parse(run('qemu-img', ['info', '-f', 'vhdx', '--output=json', p]))
      t.equal(q['virtual-size'], c.size)
      t.equal(q['cluster-size'], c.blockSize)
    }
    if (haveVhdi) {
      const out = run('vhdiinfo', [p])
      t.match(out, new RegExp(`Disk type\\s*:\\s*${c.type === 'fixed' ? 'Fixed' : 'Dynamic'}`, 'i'), 'vhdiinfo type')
      t.match(out, new RegExp(`Media size\\s*:.*\\(${c.size} bytes\\)`), 'vhdiinfo size')
      t.match(out, new RegExp(`Bytes per sector\\s*:\\s*${c.lss}`), 'vhdiinfo sector size')
    }
    // libvhdi misreads fixed VHDX larger than one chunk, so only dynamic disks are compared through vhdimount.
    if (c.type === 'dynamic' && hasTool('vhdimount') && existsSync('/dev/fuse')) {
      const mnt = join(dir, 'mnt')
      mkdirSync(mnt)
      const m = spawnSync('vhdimount', [p, mnt], { encoding: 'utf8', timeout: 20000 })
      if (m.status !== 0) t.comment(`vhdimount failed (${m.stderr.trim()}); libvhdi read skipped`)
      else {
        try {
          t.ok(readFileSync(join(mnt, 'vhdi1')).equals(expected), 'libvhdi (vhdimount) reads the same bytes')
        } finally {
          spawnSync('fusermount', ['-u', mnt])
        }
      }
    }
  })
}

t.test('createVhdx refuses bad arguments and never overwrites', async t => {
  const dir = tempDir(t)
  const p = join(dir, 'x.vhdx')
  await t.rejects(createVhdx(p, { sizeBytes: 1000, type: 'dynamic' }), /not a multiple of 512/)
  await t.rejects(createVhdx(p, { sizeBytes: MiB, type: 'dynamic', blockSizeBytes: 3 * MiB }), /power of two/)
  await t.rejects(createVhdx(p, { sizeBytes: MiB, type: 'differencing' }), /needs a parent/)
  await createVhdx(p, { sizeBytes: MiB, type: 'dynamic' })
  await t.rejects(createVhdx(p, { sizeBytes: MiB, type: 'dynamic' }), { code: 'EEXIST' })
})
