// The CLI as a user runs it: the real engine process, one command per run.
import t from 'tap'
import { execFile, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { engineCommand, runHvcbt, which } from '../helpers/engine.js'
import { methods } from '../../src/engine/registry.js'
import { version } from '../../src/engine/version.js'

t.test('--version prints the version', async t => {
  const r = runHvcbt(['--version'])
  t.equal(r.status, 0)
  t.equal(r.stdout.trim(), version)
})

t.test('--help works on every command and lists its options', async t => {
  const top = runHvcbt(['--help'])
  t.equal(top.status, 0)
  const [cmd, ...pre] = engineCommand()
  const cli = methods.filter(m => !m.rpcOnly)
  // one process per command, four at a time: the engine's start-up dominates
  const helps = new Array<{ code: number; stdout: string }>(cli.length)
  let next = 0
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      for (let i = next++; i < cli.length; i = next++) {
        const words = cli[i]!.cli?.command ?? cli[i]!.name.split('.')
        helps[i] = await new Promise(resolve =>
          execFile(cmd!, [...pre, ...words, '--help'], { env: { ...process.env, NODE_OPTIONS: '' } }, (err, stdout) =>
            resolve({ code: err ? Number(err.code ?? 1) : 0, stdout }),
          ),
        )
      }
    }),
  )
  cli.forEach((m, i) => {
    const words = (m.cli?.command ?? m.name.split('.')).join(' ')
    const r = helps[i]!
    const text = r.stdout.replace(/\s+/g, ' ')
    t.equal(r.code, 0, `${words} --help`)
    t.ok(text.includes(m.summary.replace(/\s+/g, ' ')), `${words} --help shows the summary`)
    for (const p of Object.keys((m.params.properties ?? {}) as object)) {
      const flag = p.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase()
      t.ok(text.includes(flag), `${words} --help mentions ${flag}`)
    }
  })
})

t.test('usage errors exit 2 with one clear message on stderr', async t => {
  const r = runHvcbt(['vhd', 'info'])
  t.equal(r.status, 2)
  t.equal(r.stdout, '')
  t.match(r.stderr, /^hvcbt: .*\nRun 'hvcbt vhd info --help' for usage\.\n$/)
  const u = runHvcbt(['no-such-command'])
  t.equal(u.status, 2)
  t.match(u.stderr, /Unknown argument: no-such-command/)
})

t.test('a missing file exits 1 naming the path; --json puts a JSON error on stderr', async t => {
  const r = runHvcbt(['vhd', 'info', '/no/such.vhdx'])
  t.equal(r.status, 1)
  t.equal(r.stderr, 'hvcbt: /no/such.vhdx: no such file or directory\n')
  const j = runHvcbt(['vhd', 'info', '/no/such.vhdx', '--json'])
  t.equal(j.status, 1)
  t.equal(j.stdout, '')
  t.match(JSON.parse(j.stderr), { error: { category: 'ObjectNotFound', data: { path: '/no/such.vhdx' } } })
})

t.test('vhd info: human list and --json agree with qemu-img', { skip: which('qemu-img') ? false : 'qemu-img not installed' }, async t => {
  const dir = mkdtempSync(path.join(tmpdir(), 'hvcbt-cli-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = path.join(dir, 'x.vhdx')
  spawnSync('qemu-img', ['create', '-q', '-f', 'vhdx', file, '2G'])
  const j = runHvcbt(['vhd', 'info', file, '--json'])
  t.equal(j.status, 0, j.stderr)
  const info = JSON.parse(j.stdout)
  t.equal(info.virtualSizeBytes, 2 * 1024 ** 3)
  const h = runHvcbt(['vhd', 'info', file])
  t.equal(h.status, 0)
  t.match(h.stdout, /Virtual size\s+: 2 GiB \(2147483648 bytes\)/)
  t.match(h.stdout, /Format\s+: VHDX/)
})

t.test('a file that is not a disk is reported as raw, a directory is an error', async t => {
  const dir = mkdtempSync(path.join(tmpdir(), 'hvcbt-cli-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = path.join(dir, 'plain.img')
  writeFileSync(file, Buffer.alloc(4096, 1))
  const r = runHvcbt(['vhd', 'info', file, '--json'])
  t.equal(r.status, 0, r.stderr)
  t.match(JSON.parse(r.stdout), { format: 'raw', virtualSizeBytes: 4096 })
  const d = runHvcbt(['vhd', 'info', dir])
  t.equal(d.status, 1)
  t.match(d.stderr, /^hvcbt: .+\n$/)
})
