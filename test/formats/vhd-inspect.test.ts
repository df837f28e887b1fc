import t from 'tap'
import { mkdirSync, writeFileSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { FormatError } from '../../src/engine/errors.js'
import { inspectDisk, probeFormat } from '../../src/formats/inspect.js'
import { missing, qemuInfo, run, tempDir, vhdiInfo } from './format-tools.js'

t.test('qemu-made VHDs: inspectDisk agrees with qemu-img info and vhdiinfo', { skip: missing('qemu-img') }, async t => {
  const dir = tempDir(t)
  const cases: [string, string[], 'dynamic' | 'fixed'][] = [
    ['dyn-100m.vhd', ['100M'], 'dynamic'],
    ['dyn-1g.vhd', ['1G'], 'dynamic'],
    ['dyn-force.vhd', ['-o', 'force_size=on', '1000000000'], 'dynamic'],
    ['fixed-50m.vhd', ['-o', 'subformat=fixed', '50M'], 'fixed'],
  ]
  for (const [name, args, type] of cases) {
    const p = join(dir, name)
    const size = args.pop()!
    run('qemu-img', ['create', '-f', 'vpc', ...args, p, size])
    const q = qemuInfo(p, 'vpc')
    const info = await inspectDisk(p)
    t.equal(info.format, 'vhd', name)
    t.equal(info.type, type, `${name} type`)
    t.equal(info.virtualSizeBytes, q['virtual-size'], `${name} size matches qemu-img`)
    t.equal(info.blockSizeBytes, type === 'fixed' ? 0 : (q['cluster-size'] as number), `${name} block size`)
    t.equal(info.logicalSectorSizeBytes, 512)
    t.equal(info.parentPath, null)
    t.match(info.diskId, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/)
    if (!missing('vhdiinfo')) {
      const v = vhdiInfo(p)
      t.equal(v['Identifier'], info.diskId, `${name} id matches vhdiinfo`)
      t.match(v['Media size'], `(${info.virtualSizeBytes} bytes)`)
      t.equal(v['Disk type'], type === 'fixed' ? 'Fixed' : 'Dynamic')
    }
  }
})

t.test('probing: vhdxfile, conectix at end or at 0, else raw', async t => {
  const dir = tempDir(t)
  const raw = join(dir, 'r.img')
  writeFileSync(raw, Buffer.alloc(4096))
  t.equal(await probeFormat(raw), 'raw')
  const vhdx = join(dir, 'x.vhdx')
  writeFileSync(vhdx, Buffer.concat([Buffer.from('vhdxfile'), Buffer.alloc(4088)]))
  t.equal(await probeFormat(vhdx), 'vhdx')
  const copyOnly = join(dir, 'c.vhd')
  writeFileSync(copyOnly, Buffer.concat([Buffer.from('conectix'), Buffer.alloc(4088)]))
  t.equal(await probeFormat(copyOnly), 'vhd')
  const info = await inspectDisk(raw)
  t.same([info.format, info.type, info.virtualSizeBytes, info.diskId], ['raw', 'fixed', 4096, null])
})

t.test('errors: missing file is ENOENT, a directory and garbage are FormatErrors', async t => {
  const dir = tempDir(t)
  await t.rejects(inspectDisk(join(dir, 'nope.vhd')), { code: 'ENOENT' })
  mkdirSync(join(dir, 'sub'))
  await t.rejects(inspectDisk(join(dir, 'sub')), FormatError)
  // A VHD footer with a broken checksum and no usable copy at 0.
  const bad = join(dir, 'bad.vhd')
  const footer = Buffer.alloc(512)
  footer.write('conectix', 0, 'latin1')
  footer.writeUInt32BE(0x00010000, 12)
  footer.writeUInt32BE(2, 60)
  writeFileSync(bad, Buffer.concat([Buffer.alloc(1024), footer]))
  await t.rejects(inspectDisk(bad), { name: 'FormatError', message: /VHD footer at offset 1024: checksum is 0x00000000, computed/ })
})

t.test('a damaged end footer falls back to the copy at offset 0', { skip: missing('qemu-img') }, async t => {
  const dir = tempDir(t)
  const p = join(dir, 'd.vhd')
  run('qemu-img', ['create', '-f', 'vpc', p, '10M'])
  const b = readFileSync(p)
  b[b.length - 512] = 0x58 // break the end cookie
  writeFileSync(p, b)
  const info = await inspectDisk(p)
  t.equal(info.type, 'dynamic')
  t.equal((info as unknown as { footerSource: string }).footerSource, 'copy')
})
