import t from 'tap'
import { existsSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { convertDisk } from '../../src/formats/convert.js'
import { createDisk } from '../../src/formats/create.js'
import { inspectDisk } from '../../src/formats/inspect.js'
import { mergeDisk } from '../../src/formats/merge.js'
import { openDisk } from '../../src/formats/open.js'
import { missing, prng, readThroughVhdimount, run, runStatus, tempDir, vhdiInfo } from './format-tools.js'

const MiB = 1024 * 1024

async function readAll(path: string): Promise<Buffer> {
  const d = await openDisk(path, { readOnly: true })
  try {
    const b = Buffer.alloc(d.size)
    await d.read(0, b)
    return b
  } finally {
    await d.close()
  }
}

t.test('convert round trip: qemu VHD -> VHDX -> raw -> fixed VHD -> 4K VHDX, sparse, byte-identical', { skip: missing('qemu-img', 'qemu-io') }, async t => {
  const dir = tempDir(t)
  const src = join(dir, 'src.vhd')
  run('qemu-img', ['create', '-f', 'vpc', '-o', 'force_size=on', src, '64M'])
  const rnd = prng(4242)
  const cmds: string[] = []
  for (let i = 0; i < 20; i++) {
    const len = (1 + Math.floor(rnd() * 256)) * 4096
    const off = Math.floor((rnd() * (64 * MiB - len)) / 4096) * 4096
    cmds.push('-c', `write -P 0x${(0x40 + i).toString(16)} ${off} ${len}`)
  }
  cmds.push('-c', `write -z ${8 * MiB} ${MiB}`)
  run('qemu-io', ['-f', 'vpc', ...cmds, src])
  const expectedRaw = join(dir, 'expected.raw')
  run('qemu-img', ['convert', '-f', 'vpc', '-O', 'raw', src, expectedRaw])
  const expected = readFileSync(expectedRaw)

  const steps: [string, string, Parameters<typeof convertDisk>[2], string | null][] = [
    [src, join(dir, 'a.vhdx'), { format: 'vhdx' }, 'vhdx'],
    [join(dir, 'a.vhdx'), join(dir, 'b.img'), { format: 'raw' }, 'raw'],
    [join(dir, 'b.img'), join(dir, 'c.vhd'), { format: 'vhd', type: 'fixed' }, 'vpc'],
    [join(dir, 'c.vhd'), join(dir, 'd.vhdx'), { format: 'vhdx', logicalSectorSize: 4096, blockSizeBytes: MiB }, null],
    [join(dir, 'd.vhdx'), join(dir, 'e.vhd'), { format: 'vhd' }, 'vpc'],
  ]
  const progress: number[] = []
  for (const [from, to, opts, qemuFormat] of steps) {
    const r = await convertDisk(from, to, { ...opts, progress: done => progress.push(done) })
    t.equal(r.virtualSizeBytes, expected.length, `${to}: size`)
    t.ok(r.bytesWritten < expected.length / 2, `${to}: sparse (${r.bytesWritten} of ${expected.length} bytes written)`)
    t.ok((await readAll(to)).equals(expected), `${to}: HvCbt reads the same bytes`)
    if (qemuFormat) {
      const cmp = runStatus('qemu-img', ['compare', '-f', qemuFormat, '-F', 'raw', to, expectedRaw])
      t.equal(cmp.status, 0, `${to}: qemu-img compare ${cmp.stdout}${cmp.stderr}`)
    }
    if (qemuFormat === 'vhdx') t.equal(runStatus('qemu-img', ['check', '-f', 'vhdx', to]).status, 0, `${to}: qemu-img check`)
  }
  t.ok(statSync(join(dir, 'b.img')).blocks * 512 < expected.length / 2, 'raw output is a sparse file')
  t.equal((await inspectDisk(join(dir, 'd.vhdx'))).logicalSectorSizeBytes, 4096)
  if (!missing('vhdiinfo', 'vhdimount', 'fusermount')) {
    // The 4096-byte-sector VHDX (dynamic: libvhdi misreads only fixed VHDX larger than one chunk) read by libvhdi.
    t.equal(vhdiInfo(join(dir, 'd.vhdx'))['Bytes per sector'], '4096 bytes')
    const mounted = await readThroughVhdimount(join(dir, 'd.vhdx'), join(dir, 'mnt'), 1)
    if (mounted) t.ok(mounted.equals(expected), 'vhdimount reads the 4K-sector VHDX HvCbt wrote')
    else t.comment('FUSE cannot mount here: vhdimount part skipped')
  }
  t.ok(progress.length > 0 && progress[progress.length - 1] === expected.length, 'progress reaches the size')
  await t.rejects(convertDisk(src, join(dir, 'a.vhdx')), { code: 'EEXIST' }, 'an existing destination is never overwritten')
})

/** base <- child <- grandchild with data, zeros over parent data and sub-block writes in each layer. */
async function buildChain(dir: string, ext: 'vhd' | 'vhdx'): Promise<string[]> {
  const size = 24 * MiB
  const names = [`base.${ext}`, `child.${ext === 'vhd' ? 'vhd' : 'avhdx'}`, `grand.${ext === 'vhd' ? 'vhd' : 'avhdx'}`].map(n => join(dir, n))
  await createDisk(names[0]!, { sizeBytes: size, blockSizeBytes: ext === 'vhdx' ? MiB : undefined })
  let d = await openDisk(names[0]!)
  await d.write(0, Buffer.alloc(6 * MiB, 0x11))
  await d.write(20 * MiB, Buffer.alloc(MiB, 0x12))
  await d.close()
  await createDisk(names[1]!, { parentPath: names[0] })
  d = await openDisk(names[1]!)
  await d.write(4096, Buffer.alloc(8192, 0x21))
  await d.writeZeroes(2 * MiB, MiB) // hides the base's data
  await d.write(10 * MiB + 512, Buffer.alloc(1024, 0x22))
  await d.close()
  await createDisk(names[2]!, { parentPath: names[1] })
  d = await openDisk(names[2]!)
  await d.write(0, Buffer.alloc(512, 0x31))
  await d.write(15 * MiB, Buffer.alloc(3 * MiB, 0x32))
  await d.writeZeroes(20 * MiB + 4096, 4096)
  await d.close()
  return names
}

for (const ext of ['vhd', 'vhdx'] as const) {
  t.test(`merge a ${ext.toUpperCase()} chain from the leaf up: the parent reads as the chain did`, async t => {
    const dir = tempDir(t)
    const [base, child, grand] = await buildChain(dir, ext)
    const view = await readAll(grand!)
    const childView = await readAll(child!)

    // Converting the chain gives its view too.
    await convertDisk(grand!, join(dir, `flat.${ext}`))
    t.ok((await readAll(join(dir, `flat.${ext}`))).equals(view), 'convert of the chain equals the chain view')

    const progress: number[] = []
    const r1 = await mergeDisk(grand!, { progress: d => progress.push(d) })
    t.equal(r1.parent, child)
    // Zeros written into a differencing layer are data there (VHD must allocate them), or ZERO blocks in VHDX.
    t.ok(r1.bytesMerged + r1.bytesZeroed >= 3 * MiB + 512 + 4096, `merged ${r1.bytesMerged} + zeroed ${r1.bytesZeroed} bytes`)
    t.notOk(existsSync(grand!), 'the merged child is removed')
    t.ok((await readAll(child!)).equals(view), 'child now reads as the grandchild did')
    t.notOk((await readAll(child!)).equals(childView), 'and differs from its own earlier view')
    t.ok(progress.length > 0)

    await mergeDisk(child!, { keepChild: true })
    t.ok((await readAll(base!)).equals(view), 'base reads as the whole chain did')
    t.ok(existsSync(child!), 'keepChild keeps the stale child')
    if (ext === 'vhdx') {
      // mergeVhdx recorded the parent's new DataWriteGuid as parent_linkage2 before writing it (so a crash
      // mid-merge leaves a child that opens); a kept child therefore still opens, and reads as the merged base
      t.ok((await readAll(child!)).equals(view), 'the kept VHDX child still opens and reads as the merged base')
      if (!missing('qemu-img')) t.equal(runStatus('qemu-img', ['check', '-f', 'vhdx', base!]).status, 0, 'qemu-img check on the merged base')
    }
    await t.rejects(mergeDisk(base!), /not a differencing disk/)
  })
}
