import t from 'tap'
import { readFileSync, writeFileSync, openSync, writeSync, closeSync, ftruncateSync } from 'node:fs'
import { join } from 'node:path'
import { openVhd } from '../../src/formats/vhd/vhd-disk.js'
import { createVhd } from '../../src/formats/vhd/vhd-create.js'
import { openDisk } from '../../src/formats/open.js'
import { resolvedExtents } from '../../src/formats/chain.js'
import { inspectDisk } from '../../src/formats/inspect.js'
import { missing, prng, readThroughVhdimount, run, runStatus, tempDir, vhdiInfo } from './format-tools.js'

const MiB = 1024 * 1024

t.test('qemu-made VHDs filled by qemu-io read back byte-identical to qemu-img convert', { skip: missing('qemu-img', 'qemu-io') }, async t => {
  const dir = tempDir(t)
  for (const [name, opts] of [['dyn.vhd', []], ['fixed.vhd', ['-o', 'subformat=fixed']], ['dyn-big.vhd', []]] as const) {
    const p = join(dir, name)
    const size = name === 'dyn-big.vhd' ? '130M' : '40M'
    run('qemu-img', ['create', '-f', 'vpc', ...opts, p, size])
    const info = await inspectDisk(p)
    const rnd = prng(name.length * 7919)
    const cmds: string[] = []
    for (let i = 0; i < 24; i++) {
      const len = (1 + Math.floor(rnd() * 300)) * 512
      const off = Math.floor((rnd() * (info.virtualSizeBytes - len)) / 512) * 512
      cmds.push('-c', `write -P 0x${(0x10 + i).toString(16)} ${off} ${len}`)
    }
    // Block boundaries and the last sector.
    cmds.push('-c', `write -P 0xee ${2 * MiB - 512} 1024`, '-c', `write -P 0xef ${info.virtualSizeBytes - 512} 512`)
    run('qemu-io', ['-f', 'vpc', ...cmds, p])
    const raw = join(dir, `${name}.raw`)
    run('qemu-img', ['convert', '-f', 'vpc', '-O', 'raw', p, raw])
    const expected = readFileSync(raw)
    const disk = await openVhd(p, { readOnly: true })
    t.equal(disk.size, expected.length, `${name}: size`)
    const got = Buffer.alloc(disk.size)
    // Read in odd-sized pieces so requests straddle block boundaries.
    for (let at = 0; at < disk.size; ) {
      const n = Math.min(disk.size - at, 3 * MiB + 512 * 5)
      await disk.read(at, got.subarray(at, at + n))
      at += n
    }
    t.ok(got.equals(expected), `${name}: bytes equal qemu-img convert output`)
    const ext = await disk.extents(0, disk.size)
    t.equal(ext.reduce((s, e) => s + e.length, 0), disk.size, `${name}: extents cover the disk`)
    if (name !== 'fixed.vhd') {
      // Every byte outside 'data' extents must be zero.
      for (const e of ext) if (e.state !== 'data') t.ok(expected.subarray(e.offset, e.offset + e.length).every(b => b === 0), `${name}: ${e.state} extent at ${e.offset} is zeros`)
      t.ok(ext.some(e => e.state === 'unallocated'), `${name}: some blocks unallocated`)
    }
    await disk.close()
  }
})

/** Random writes and zeroings into `disk`, mirrored into `raw`; flushes now and then. */
async function scribble(disk: Awaited<ReturnType<typeof openVhd>>, raw: string, seed: number, count: number, align = 512): Promise<void> {
  const fd = openSync(raw, 'r+')
  const rnd = prng(seed)
  for (let i = 0; i < count; i++) {
    const len = (1 + Math.floor(rnd() * 700)) * align
    const off = Math.floor((rnd() * (disk.size - len)) / align) * align
    if (i % 5 === 4) {
      await disk.writeZeroes(off, len)
      writeSync(fd, Buffer.alloc(len), 0, len, off)
    } else {
      const buf = Buffer.alloc(len, (i % 250) + 1)
      buf.writeUInt32BE(i, 0)
      await disk.write(off, buf)
      writeSync(fd, buf, 0, len, off)
    }
    if (i % 17 === 0) await disk.flush()
  }
  closeSync(fd)
}

t.test('HvCbt-made VHDs written by HvCbt pass qemu-img compare and vhdiinfo', { skip: missing('qemu-img', 'vhdiinfo') }, async t => {
  const dir = tempDir(t)
  for (const type of ['dynamic', 'fixed'] as const) {
    const p = join(dir, `${type}.vhd`)
    const raw = join(dir, `${type}.raw`)
    const size = 48 * MiB + 512 * 9 // not a multiple of the block size
    await createVhd(p, { sizeBytes: size, type })
    const fd = openSync(raw, 'w')
    ftruncateSync(fd, size)
    closeSync(fd)
    const disk = await openVhd(p)
    await scribble(disk, raw, type === 'fixed' ? 11 : 12, 120)
    // A whole-block zeroing of a dynamic disk deallocates.
    await disk.write(4 * MiB, Buffer.alloc(2 * MiB, 0x77))
    await disk.writeZeroes(4 * MiB, 2 * MiB)
    const rfd = openSync(raw, 'r+')
    writeSync(rfd, Buffer.alloc(2 * MiB), 0, 2 * MiB, 4 * MiB)
    closeSync(rfd)
    if (type === 'dynamic') t.same(await disk.extents(4 * MiB, 2 * MiB), [{ offset: 4 * MiB, length: 2 * MiB, state: 'unallocated' }])
    await disk.close()
    const cmp = runStatus('qemu-img', ['compare', '-f', 'vpc', '-F', 'raw', p, raw])
    t.equal(cmp.status, 0, `${type}: qemu-img compare: ${cmp.stdout}${cmp.stderr}`)
    const v = vhdiInfo(p)
    t.equal(v['Disk type'], type === 'fixed' ? 'Fixed' : 'Dynamic')
    t.match(v['Media size'], `(${size} bytes)`)
    t.equal(v['Bytes per sector'], '512 bytes')
    const q = JSON.parse(run('qemu-img', ['info', '-f', 'vpc', '--output=json', p])) as Record<string, number>
    t.equal(q['virtual-size'], size, `${type}: qemu sees the exact size (creator "win ")`)
    // HvCbt reads its own file back.
    const again = await openVhd(p, { readOnly: true })
    const got = Buffer.alloc(size)
    await again.read(0, got)
    t.ok(got.equals(readFileSync(raw)), `${type}: reopened disk reads the expected bytes`)
    await again.close()
  }
})

t.test('differencing VHD chains: HvCbt reads, vhdimount agrees', { skip: missing('vhdiinfo') }, async t => {
  const dir = tempDir(t)
  const size = 20 * MiB
  const expected = Buffer.alloc(size)
  const put = async (file: string, off: number, data: Buffer | null, len = data?.length ?? 0): Promise<void> => {
    const d = await openDisk(file)
    if (data) await d.write(off, data)
    else await d.writeZeroes(off, len)
    ;(data ?? Buffer.alloc(len)).copy(expected, off)
    await d.close()
  }
  await createVhd(join(dir, 'base.vhd'), { sizeBytes: size, type: 'dynamic' })
  await put(join(dir, 'base.vhd'), 0, Buffer.alloc(5 * MiB, 0x11))
  await put(join(dir, 'base.vhd'), 11 * MiB, Buffer.alloc(64 * 1024, 0x12))
  await createVhd(join(dir, 'child.vhd'), { type: 'differencing', parentPath: join(dir, 'base.vhd') })
  // libvhdi misreads VHD bitmap bytes other than 0x00, 0xFF and 0x7F..0x01 runs, so the layers read through
  // vhdimount are written in 4 KiB-aligned pieces (whole bitmap bytes).
  await put(join(dir, 'child.vhd'), 8192, Buffer.alloc(12288, 0x21))
  await put(join(dir, 'child.vhd'), 3 * MiB, null, 64 * 1024) // zeros over parent data must hide it
  await put(join(dir, 'child.vhd'), 15 * MiB, Buffer.alloc(4096, 0x22))
  await createVhd(join(dir, 'grandchild.vhd'), { type: 'differencing', parentPath: join(dir, 'child.vhd') })
  await put(join(dir, 'grandchild.vhd'), 4096, Buffer.alloc(8192, 0x31))
  await put(join(dir, 'grandchild.vhd'), 19 * MiB, Buffer.alloc(MiB, 0x32))

  const leaf = await openDisk(join(dir, 'grandchild.vhd'), { readOnly: true })
  const got = Buffer.alloc(size)
  await leaf.read(0, got)
  t.ok(got.equals(expected), 'HvCbt reads the chain')
  const own = await leaf.extents(0, size)
  t.same(own.filter(e => e.state === 'data'), [{ offset: 4096, length: 8192, state: 'data' }, { offset: 19 * MiB, length: MiB, state: 'data' }], 'leaf extents: own data')
  const resolved = await resolvedExtents(leaf, 0, size)
  for (const e of resolved) if (e.state !== 'data') t.ok(expected.subarray(e.offset, e.offset + e.length).every(b => b === 0), `resolved ${e.state} at ${e.offset} reads zeros`)
  await leaf.close()

  const info = await inspectDisk(join(dir, 'grandchild.vhd'))
  t.equal(info.type, 'differencing')
  t.equal(info.parentPath, '.\\child.vhd', 'W2ru relative locator comes first')
  const v = vhdiInfo(join(dir, 'grandchild.vhd'))
  t.equal(v['Disk type'], 'Differential')
  t.equal(v['Parent identifier'], (await inspectDisk(join(dir, 'child.vhd'))).diskId)
  t.match(v['Parent filename'], /\\child\.vhd$/, 'parent name recorded with Windows separators')

  if (missing('vhdimount', 'fusermount')) return void t.skip('vhdimount not installed', async () => {})
  const mounted = await readThroughVhdimount(join(dir, 'grandchild.vhd'), join(dir, 'mnt'), 3)
  if (!mounted) return void t.skip('FUSE cannot mount in this sandbox', async () => {})
  t.ok(mounted.equals(expected), 'vhdimount reads the same bytes through the chain')
})

t.test('unaligned differencing writes (sub-byte bitmap runs) read back', async t => {
  const dir = tempDir(t)
  const size = 6 * MiB
  await createVhd(join(dir, 'b.vhd'), { sizeBytes: size, type: 'dynamic' })
  let d = await openDisk(join(dir, 'b.vhd'))
  await d.write(0, Buffer.alloc(size, 0xaa))
  await d.close()
  await createVhd(join(dir, 'c.vhd'), { type: 'differencing', parentPath: join(dir, 'b.vhd') })
  const expected = Buffer.alloc(size, 0xaa)
  d = await openDisk(join(dir, 'c.vhd'))
  const rnd = prng(99)
  for (let i = 0; i < 60; i++) {
    const len = (1 + Math.floor(rnd() * 20)) * 512
    const off = Math.floor((rnd() * (size - len)) / 512) * 512
    const buf = Buffer.alloc(len, i)
    if (i % 3 === 0) {
      await d.writeZeroes(off, len)
      expected.fill(0, off, off + len)
    } else {
      await d.write(off, buf)
      buf.copy(expected, off)
    }
  }
  await d.close()
  d = await openDisk(join(dir, 'c.vhd'), { readOnly: true })
  const got = Buffer.alloc(size)
  await d.read(0, got)
  t.ok(got.equals(expected), 'child reads: own sectors, zeros written, parent elsewhere')
  await t.rejects(d.write(0, Buffer.alloc(512)), { code: 'EROFS' })
  await d.close()
})

t.test('crash tolerance: a torn append is recovered from the footer copy', { skip: missing('qemu-img') }, async t => {
  const dir = tempDir(t)
  const p = join(dir, 'd.vhd')
  await createVhd(p, { sizeBytes: 8 * MiB, type: 'dynamic' })
  let d = await openVhd(p)
  await d.write(0, Buffer.alloc(4096, 1))
  await d.close()
  // Simulate a crash after a block's bitmap overwrote the footer and before the new footer was written.
  const b = readFileSync(p)
  const torn = Buffer.concat([b.subarray(0, b.length - 512), Buffer.alloc(512 + 4096, 0xcc)])
  writeFileSync(p, torn)
  const info = await inspectDisk(p)
  t.equal((info as unknown as { footerSource: string }).footerSource, 'copy')
  d = await openVhd(p) // read-write open puts the footer back after the last block
  const got = Buffer.alloc(4096)
  await d.read(0, got)
  t.ok(got.every(x => x === 1), 'flushed data intact')
  await d.write(2 * MiB, Buffer.alloc(512, 2))
  await d.close()
  t.equal((await inspectDisk(p) as unknown as { footerSource: string }).footerSource, 'end', 'footer restored at the end')
  const raw = join(dir, 'e.raw')
  const e = Buffer.alloc(8 * MiB)
  e.fill(1, 0, 4096)
  e.fill(2, 2 * MiB, 2 * MiB + 512)
  writeFileSync(raw, e)
  t.equal(runStatus('qemu-img', ['compare', '-f', 'vpc', '-F', 'raw', p, raw]).status, 0, 'qemu-img compare after recovery')
})
