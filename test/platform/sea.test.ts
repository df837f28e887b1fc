// build/build-sea.mjs end to end with a throwaway entry (test/platform/fixtures/sea-entry.ts): the executable runs
// without Node's experimental warning, and inside it src/platform/sparse.ts loads the addon from the SEA asset,
// written once to a content-hashed 0700 file under TMPDIR and never taken from a file with other content.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const addonBuilt = fs.existsSync(path.join(root, 'native', 'build', 'Release', 'hvcbt_native.node'))
const skip =
  process.platform !== 'linux'
    ? 'single-executable test runs on Linux only'
    : !fs.existsSync(path.join(root, 'node_modules', '.bin', 'postject'))
      ? 'postject not installed'
      : false

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hvcbt-sea-'))
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))

function build(args: string[]): ReturnType<typeof spawnSync> {
  return spawnSync(process.execPath, [path.join(root, 'build', 'build-sea.mjs'), '--skip-gen', ...args], {
    cwd: root,
    encoding: 'utf8',
  })
}

t.test('build failures name the step', { skip }, async t => {
  const missing = build(['--entry', path.join(dir, 'missing.ts'), '--out-dir', path.join(dir, 'bad')])
  t.equal(missing.status, 1)
  t.match(missing.stderr, /entry .*missing\.ts does not exist/)
  const bad = path.join(dir, 'bad.ts')
  fs.writeFileSync(bad, 'export const x = ;\n')
  const syntax = build(['--entry', bad, '--out-dir', path.join(dir, 'bad')])
  t.equal(syntax.status, 1)
  t.match(syntax.stderr, /build-sea: bundle: .* failed: 1 esbuild error/)
})

t.test('single executable with the native asset', { skip }, async t => {
  const out = path.join(dir, 'out')
  const r = build(['--entry', path.join(root, 'test', 'platform', 'fixtures', 'sea-entry.ts'), '--out-dir', out])
  t.equal(r.status, 0, `build-sea exits 0${r.status ? `: ${r.stderr}` : ''}`)
  const exe = path.join(out, 'hvcbt')
  t.match(r.stdout, new RegExp(`${exe} \\d+ bytes`), 'prints the output path and size')
  t.equal(r.stdout.trimEnd().split('\n').at(-1)!.split(' ')[1], String(fs.statSync(exe).size), 'printed size is real')
  const config = JSON.parse(fs.readFileSync(path.join(out, 'sea-config.json'), 'utf8'))
  t.equal(config.useCodeCache, true)
  t.equal(config.disableExperimentalSEAWarning, true)
  t.equal('hvcbt_native.node' in config.assets, addonBuilt, 'asset present exactly when the addon was built')

  const version = spawnSync(exe, ['--version'], { encoding: 'utf8' })
  t.equal(version.stdout, 'hvcbt-fixture 0.0.0\n')
  t.equal(version.stderr, '', 'no experimental warning on stderr')

  const rpc = spawnSync(exe, ['rpc'], { encoding: 'utf8', input: '{"jsonrpc":"2.0","id":7,"method":"engine.version"}\n' })
  t.same(JSON.parse(rpc.stdout), { jsonrpc: '2.0', id: 7, result: { name: 'hvcbt-fixture', version: '0.0.0' } })

  // A sparse file: one data block in a 16 MiB hole.
  const sparse = path.join(dir, 'sparse.bin')
  const fd = fs.openSync(sparse, 'w')
  fs.ftruncateSync(fd, 16 << 20)
  fs.writeSync(fd, Buffer.alloc(4096, 7), 0, 4096, 5 << 20)
  fs.closeSync(fd)
  const tmp = path.join(dir, 'tmp')
  fs.mkdirSync(tmp)
  const env = { ...process.env, TMPDIR: tmp }
  delete env.HVCBT_NO_NATIVE
  const runSparse = (extra: Record<string, string> = {}) => {
    const s = spawnSync(exe, ['sparse', sparse], { encoding: 'utf8', env: { ...env, ...extra } })
    t.equal(s.status, 0, `sparse run exits 0 ${s.stderr}`)
    return JSON.parse(s.stdout) as { support: { native: boolean; reason?: string }; extents: [number, number, boolean][] }
  }

  if (!addonBuilt) {
    t.equal(runSparse().support.native, false, 'no addon built: the executable falls back')
    return
  }
  const first = runSparse()
  t.same(first.support, { native: true })
  t.same(first.extents.map(e => e[2]), [false, true, false], 'extents found the data block inside the executable')
  const extracted = fs.readdirSync(tmp)
  t.equal(extracted.length, 1, 'one extracted addon')
  t.match(extracted[0], /^hvcbt-native-\d+-[0-9a-f]{24}\.node$/)
  const file = path.join(tmp, extracted[0]!)
  const st = fs.statSync(file)
  t.equal(st.mode & 0o777, 0o700, 'mode 0700')
  t.ok(fs.readFileSync(file).equals(fs.readFileSync(path.join(root, 'native', 'build', 'Release', 'hvcbt_native.node'))))

  runSparse()
  t.equal(fs.statSync(file).ino, st.ino, 'second run reuses the same file')

  // A file at that name with other content is replaced, never loaded.
  fs.writeFileSync(file, 'not an addon', { mode: 0o700 })
  t.same(runSparse().support, { native: true }, 'tampered copy is not used')
  t.ok(fs.readFileSync(file).length > 1000, 'and is rewritten')

  const off = runSparse({ HVCBT_NO_NATIVE: '1' })
  t.equal(off.support.native, false)
  t.same(off.extents, [[0, 16 << 20, true]], 'forced fallback: whole file as data')
})
