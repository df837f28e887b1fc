import t from 'tap'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { CallContext } from '../../src/engine/method.js'
import { findMethod } from '../../src/engine/registry.js'
import { validateParams } from '../../src/engine/validate.js'
import { missing, runStatus, tempDir } from './format-tools.js'

const MiB = 1024 * 1024

function ctx(progress: [number, number][] = [], logs: string[] = []): CallContext {
  return { signal: new AbortController().signal, interactive: false, progress: (d, n) => void progress.push([d, n]), log: (_l, m) => void logs.push(m) }
}

/** Call a method the way the transports do: validate the params, then run the handler. */
async function call(name: string, params: Record<string, unknown>, c = ctx()): Promise<any> {
  const m = findMethod(name)
  if (!m) throw new Error(`no method ${name}`)
  return m.handler(validateParams(m, params), c)
}

t.test('vhd.create / write / read / map / check through the method declarations', async t => {
  const dir = tempDir(t)
  const vhd = join(dir, 'a.vhd')
  const info = await call('vhd.create', { path: vhd, size: '16M' })
  t.same([info.format, info.type, info.virtualSizeBytes, info.blockSizeBytes], ['vhd', 'dynamic', 16 * MiB, 2 * MiB])
  const input = join(dir, 'in.bin')
  const payload = Buffer.alloc(MiB + 700) // a partial last sector is merged with what is on disk
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 7) & 0xff
  writeFileSync(input, payload)
  const w = await call('vhd.write', { path: vhd, offset: '64K', input })
  t.equal(w.bytesWritten, payload.length)
  const output = join(dir, 'out.bin')
  const r = await call('vhd.read', { path: vhd, offset: 65536, length: '1M', output })
  t.equal(r.length, MiB)
  t.ok(readFileSync(output).equals(payload.subarray(0, MiB)))
  await call('vhd.read', { path: vhd, offset: 65536 + MiB, length: 1024, output })
  const tail = readFileSync(output)
  t.ok(tail.subarray(0, 700).equals(payload.subarray(MiB)) && tail.subarray(700).every(b => b === 0), 'partial sector merged with zeros')
  const map = await call('vhd.map', { path: vhd })
  t.same(map.extents, [{ offset: 0, length: 2 * MiB, state: 'data' }, { offset: 2 * MiB, length: 14 * MiB, state: 'unallocated' }])
  const check = await call('vhd.check', { path: vhd })
  t.equal(check.status, 'clean')
  t.equal(findMethod('vhd.check')!.cli!.exitCode!(check), 0)

  await t.rejects(call('vhd.read', { path: vhd, offset: 100, length: 512, output }), { category: 'InvalidArgument', message: /not aligned/ })
  await t.rejects(call('vhd.read', { path: vhd, offset: '20M', output }), { category: 'InvalidArgument', message: /past the end of the disk/ })
  await t.rejects(call('vhd.create', { path: join(dir, 'x.vhd'), size: 'lots' }), { category: 'InvalidArgument', message: /invalid size 'lots'/ })
  await t.rejects(call('vhd.create', { path: vhd, size: '1M' }), { code: 'EEXIST' })
  await t.rejects(call('vhd.create', { path: join(dir, 'y.vhd'), size: '1M', logicalSectorSize: 4096 }), /needs VHDX/)
})

t.test('vhd.create differencing, vhd.map --resolve, vhd.convert and vhd.merge with progress', async t => {
  const dir = tempDir(t)
  const base = join(dir, 'base.vhdx')
  await call('vhd.create', { path: base, size: '32M', blockSize: '1M' })
  const input = join(dir, 'in.bin')
  writeFileSync(input, Buffer.alloc(3 * MiB, 0x5a))
  await call('vhd.write', { path: base, offset: 0, input })
  const child = join(dir, 'child.avhdx')
  const ci = await call('vhd.create', { path: child, parent: base })
  t.same([ci.format, ci.type, ci.virtualSizeBytes, ci.parentPath], ['vhdx', 'differencing', 32 * MiB, '.\\base.vhdx'])
  writeFileSync(input, Buffer.alloc(4096, 0xa5))
  await call('vhd.write', { path: child, offset: '8M', input })
  const own = await call('vhd.map', { path: child })
  t.ok(own.extents.some((e: { state: string }) => e.state === 'parent'))
  const resolved = await call('vhd.map', { path: child, resolve: true })
  t.same(resolved.extents.filter((e: { state: string }) => e.state === 'data').map((e: { offset: number }) => e.offset), [0, 8 * MiB])

  const progress: [number, number][] = []
  const conv = await call('vhd.convert', { source: child, destination: join(dir, 'flat.vhd') }, ctx(progress))
  t.equal(conv.format, 'vhd')
  t.ok(progress.length > 0 && progress.every(([d, n]) => d <= n && n === 32 * MiB), 'convert reports progress')
  if (!missing('qemu-img')) {
    const expected = Buffer.alloc(32 * MiB)
    expected.fill(0x5a, 0, 3 * MiB)
    expected.fill(0xa5, 8 * MiB, 8 * MiB + 4096)
    writeFileSync(join(dir, 'expected.raw'), expected)
    t.equal(runStatus('qemu-img', ['compare', '-f', 'vpc', '-F', 'raw', join(dir, 'flat.vhd'), join(dir, 'expected.raw')]).status, 0, 'converted VHD matches')
  }
  const merged = await call('vhd.merge', { path: child }, ctx(progress))
  t.equal(merged.parent, base)
  t.equal(merged.childRemoved, true)
  const check = await call('vhd.check', { path: base })
  t.equal(check.status, 'clean', JSON.stringify(check.problems))
})

t.test('vhd.check exit codes: problems 1, unreadable 2; missing file propagates ENOENT', async t => {
  const dir = tempDir(t)
  const exit = findMethod('vhd.check')!.cli!.exitCode!
  const p = join(dir, 'd.vhd')
  await call('vhd.create', { path: p, size: '4M' })
  const b = readFileSync(p)
  b[30] ^= 0xff // footer copy damaged: a problem, still readable
  writeFileSync(p, b)
  const r1 = await call('vhd.check', { path: p })
  t.equal(r1.status, 'problems')
  t.equal(exit(r1), 1)
  t.match(r1.problems[0], { structure: 'VHD footer copy', offset: 0, severity: 'error' })
  b[b.length - 512 + 30] ^= 0xff // and the end footer: nothing valid left
  writeFileSync(p, b)
  const r2 = await call('vhd.check', { path: p })
  t.equal(r2.status, 'unreadable')
  t.equal(exit(r2), 2)
  await t.rejects(call('vhd.check', { path: join(dir, 'none.vhd') }), { code: 'ENOENT' })
})

t.test('vhd.check on a differencing VHDX whose parent changed or vanished', async t => {
  const dir = tempDir(t)
  const base = join(dir, 'base.vhdx')
  const child = join(dir, 'child.avhdx')
  await call('vhd.create', { path: base, size: '8M', blockSize: '1M' })
  await call('vhd.create', { path: child, parent: base })
  t.equal((await call('vhd.check', { path: child })).status, 'clean')
  const input = join(dir, 'in.bin')
  writeFileSync(input, Buffer.alloc(512, 1))
  await call('vhd.write', { path: base, offset: 0, input }) // changes the parent's DataWriteGuid
  const r = await call('vhd.check', { path: child })
  t.equal(r.status, 'problems')
  t.match(r.problems[0], { structure: 'VHDX parent', severity: 'error', message: /DataWriteGuid/ })
})
