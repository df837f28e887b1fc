// End to end: the real engine process (`hvcbt rpc`), real disks made by qemu-img.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { RpcProcess, which } from '../helpers/engine.js'
import { methods } from '../../src/engine/registry.js'

t.test('rpc.discover lists every registered method as OpenRPC', async t => {
  const rpc = new RpcProcess()
  t.teardown(() => rpc.close())
  const r = await rpc.call('rpc.discover')
  const doc = r.result as { openrpc: string; methods: Array<{ name: string; params: unknown[]; result: unknown }> }
  t.equal(doc.openrpc, '1.2.6')
  t.same(doc.methods.map(m => m.name).sort(), methods.map(m => m.name).sort())
  const info = doc.methods.find(m => m.name === 'vhd.info')!
  t.match(info.params, [{ name: 'path', required: true, schema: { type: 'string' } }])
})

t.test('garbage lines get -32700 and the engine keeps serving; stdout carries protocol only', async t => {
  const rpc = new RpcProcess()
  rpc.sendRaw('garbage\n{"unterminated": \n\u0000\u0001\n')
  const v = await rpc.call('engine.version')
  t.match(v.result, { name: 'hvcbt', protocolVersion: 1 })
  const parseErrors = rpc.messages.filter(m => m.error?.code === -32700)
  t.equal(parseErrors.length, 3)
  t.ok(parseErrors.every(m => m.id === null))
  t.equal(await rpc.close(), 0, 'exits 0 when stdin closes')
})

t.test('a request piped in before stdin closes is still answered', async t => {
  const { engineCommand } = await import('../helpers/engine.js')
  const [cmd, ...pre] = engineCommand()
  const r = spawnSync(cmd!, [...pre, 'rpc'], {
    input: '{"jsonrpc":"2.0","id":1,"method":"engine.version"}\n',
    encoding: 'utf8',
    env: { ...process.env, NODE_OPTIONS: '' },
  })
  t.equal(r.status, 0)
  const lines = r.stdout.trim().split('\n').map(l => JSON.parse(l))
  t.equal(lines.find(l => l.id === 1)?.result?.name, 'hvcbt')
})

t.test('several requests in flight', async t => {
  const rpc = new RpcProcess()
  t.teardown(() => rpc.close())
  const rs = await Promise.all(Array.from({ length: 20 }, () => rpc.call('engine.version')))
  t.equal(new Set(rs.map(r => r.id)).size, 20)
  t.ok(rs.every(r => (r.result as { name: string }).name === 'hvcbt'))
})

t.test('vhd.info agrees with qemu-img info', { skip: which('qemu-img') ? false : 'qemu-img not installed' }, async t => {
  const dir = mkdtempSync(path.join(tmpdir(), 'hvcbt-e2e-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const disks = [
    ['a.vhdx', ['-f', 'vhdx'], '3G'],
    ['b.vhdx', ['-f', 'vhdx', '-o', 'block_size=1M,subformat=dynamic'], '100M'],
    ['c.vhd', ['-f', 'vpc'], '1G'],
    ['d.vhd', ['-f', 'vpc', '-o', 'subformat=fixed'], '20M'],
    ['e.img', ['-f', 'raw'], '10M'],
  ] as const
  const rpc = new RpcProcess()
  t.teardown(() => rpc.close())
  for (const [name, opts, size] of disks) {
    const file = path.join(dir, name)
    const c = spawnSync('qemu-img', ['create', '-q', ...opts, file, size], { encoding: 'utf8' })
    t.equal(c.status, 0, `qemu-img create ${name}: ${c.stderr}`)
    const fmt = opts[1]
    const q = JSON.parse(spawnSync('qemu-img', ['info', '-f', fmt, '--output=json', file], { encoding: 'utf8' }).stdout)
    const r = await rpc.call('vhd.info', { path: file })
    t.notOk(r.error, `${name}: ${JSON.stringify(r.error)}`)
    const info = r.result as Record<string, unknown>
    t.equal(info.virtualSizeBytes, q['virtual-size'], `${name} virtual size`)
    t.equal(info.fileSizeBytes, statSync(file).size, `${name} file size`)
    t.equal(info.format, fmt === 'vpc' ? 'vhd' : fmt, `${name} format`)
    t.equal(info.path, file)
    if (q['cluster-size'] !== undefined && fmt === 'vhdx') t.equal(info.blockSizeBytes, q['cluster-size'], `${name} block size`)
  }
})

t.test('a missing file is ObjectNotFound naming the path', async t => {
  const rpc = new RpcProcess()
  t.teardown(() => rpc.close())
  const r = await rpc.call('vhd.info', { path: '/no/such/disk.vhdx' })
  t.equal(r.error?.data?.category, 'ObjectNotFound')
  t.match(r.error?.message, '/no/such/disk.vhdx')
  const bad = await rpc.call('vhd.info', { path: 42 } as unknown as Record<string, unknown>)
  t.equal(bad.error?.code, -32602)
  t.ok(Array.isArray(bad.error?.data?.errors))
})
