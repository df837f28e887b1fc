// The single executable (build/out/hvcbt, made by `npm run build`; test/run-all.sh always builds it first).
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { repoRoot, which } from '../helpers/engine.js'
import { version } from '../../src/engine/version.js'

const exe = path.join(repoRoot, 'build', 'out', 'hvcbt')
const missing = existsSync(exe) ? false : `${exe} not built (npm run build)`
if (missing && process.env.CI) throw new Error(missing)

const run = (args: string[], input?: string) =>
  spawnSync(exe, args, { input, encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' }, timeout: 30_000 })

t.test('the single executable runs the engine', { skip: missing }, async t => {
  const v = run(['--version'])
  t.equal(v.status, 0, v.stderr)
  t.equal(v.stdout.trim(), version)
  t.equal(v.stderr, '', 'no experimental-feature warning or other noise')

  const r = run(['rpc'], '{"jsonrpc":"2.0","id":1,"method":"engine.version"}\nnot json\n{"jsonrpc":"2.0","id":2,"method":"rpc.discover"}\n')
  t.equal(r.status, 0, r.stderr)
  const msgs = r.stdout.trim().split('\n').map(l => JSON.parse(l))
  const ver = msgs.find(m => m.id === 1).result
  t.equal(ver.version, version)
  t.equal(ver.native, existsSync(path.join(repoRoot, 'native/build/Release/hvcbt_native.node')), 'the embedded addon loads when it was built')
  t.ok(msgs.some(m => m.error?.code === -32700))
  t.ok(msgs.find(m => m.id === 2).result.methods.length > 2)
})

t.test('the bundle has no dynamic import(): a single executable cannot load modules at run time', { skip: missing }, async t => {
  // esbuild turns import('./local.js') into a require of the bundled module, but leaves import('node:x') and
  // computed specifiers as real dynamic imports, which fail inside a SEA ("A dynamic import callback was not
  // specified") only when that code path runs
  const bundle = readFileSync(path.join(repoRoot, 'build', 'out', 'hvcbt.cjs'), 'utf8')
  const lines = bundle.split('\n').filter(l => /(^|[^.\w$])import\(/.test(l) && !/^\s*(\/\/|\*)/.test(l))
  t.same(lines.map(l => l.trim().slice(0, 160)), [], 'no import( call left in build/out/hvcbt.cjs')
})

t.test('vhd info through the single executable', { skip: missing || (which('qemu-img') ? false : 'qemu-img not installed') }, async t => {
  const dir = mkdtempSync(path.join(tmpdir(), 'hvcbt-sea-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  for (const [name, fmt] of [['s.vhdx', 'vhdx'], ['s.vhd', 'vpc']]) {
    const file = path.join(dir, name!)
    spawnSync('qemu-img', ['create', '-q', '-f', fmt!, file, '64M'])
    const q = JSON.parse(spawnSync('qemu-img', ['info', '-f', fmt!, '--output=json', file], { encoding: 'utf8' }).stdout)
    const r = run(['vhd', 'info', file, '--json'])
    t.equal(r.status, 0, r.stderr)
    t.equal(JSON.parse(r.stdout).virtualSizeBytes, q['virtual-size'], name)
  }
})

t.test('backups from the single executable are compressed (lz4-napi embedded as an asset)', { skip: missing }, async t => {
  const dir = mkdtempSync(path.join(tmpdir(), 'hvcbt-sea-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const disk = path.join(dir, 'text.raw')
  writeFileSync(disk, Buffer.alloc(2 * 1024 * 1024, 'hello hyper-v world '))
  const r = run(['backup', 'create', disk, '--repo', path.join(dir, 'repo'), '--json'])
  t.equal(r.status, 0, r.stderr)
  const stats = JSON.parse(r.stdout).stats
  t.equal(stats.bytesRead, 2 * 1024 * 1024)
  t.ok(stats.bytesWritten < 64 * 1024, `2 MiB of text stored as ${stats.bytesWritten} bytes`)
})
