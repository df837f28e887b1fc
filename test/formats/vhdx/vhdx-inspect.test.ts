import t from 'tap'
import { join } from 'node:path'
import { inspectVhdx } from '../../../src/formats/vhdx/vhdx-inspect.js'
import { haveQemu, qemuInfo, run, tempDir } from './helpers.js'

t.test('inspectVhdx agrees with qemu-img on disks qemu-img created', { skip: haveQemu ? false : 'qemu-img not installed' }, async t => {
  const dir = tempDir(t)
  const cases: Array<[string, string, string, string]> = [
    ['dyn1m.vhdx', '100M', 'block_size=1M', 'dynamic'],
    ['dyn8m.vhdx', '1G', 'block_size=8M', 'dynamic'],
    ['dyn32m.vhdx', '3G', 'block_size=32M', 'dynamic'],
    ['dyndefault.vhdx', '2G', 'subformat=dynamic', 'dynamic'],
    ['fixed.vhdx', '24M', 'subformat=fixed,block_state_zero=off', 'fixed'],
  ]
  for (const [name, size, opts, type] of cases) {
    const p = join(dir, name)
    run('qemu-img', ['create', '-q', '-f', 'vhdx', '-o', opts, p, size])
    const q = qemuInfo(p)
    const info = await inspectVhdx(p)
    t.equal(info.format, 'vhdx')
    t.equal(info.type, type, `${name} type`)
    t.equal(info.virtualSizeBytes, q['virtual-size'], `${name} size`)
    t.equal(info.blockSizeBytes, q['cluster-size'], `${name} block size`)
    t.equal(info.logicalSectorSizeBytes, 512)
    t.match(info.diskId, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/)
    t.equal(info.parentPath, null)
  }
})

t.test('inspectVhdx rejects a file that is not a VHDX', async t => {
  const dir = tempDir(t)
  const p = join(dir, 'junk.vhdx')
  const { writeFileSync } = await import('node:fs')
  writeFileSync(p, Buffer.alloc(2 * 1024 * 1024, 0x41))
  await t.rejects(inspectVhdx(p), { name: 'FormatError', structure: 'file identifier', offset: 0 })
})
