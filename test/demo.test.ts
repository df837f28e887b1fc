// The README's first command (`npm run demo` = build/demo.sh) must keep working: it is what a newcomer runs first.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { repoRoot } from './helpers/engine.js'

t.test('npm run demo walks a disk through full, incremental and differential backups and restores each exactly', async t => {
  const r = spawnSync('bash', [path.join(repoRoot, 'build/demo.sh')], {
    cwd: repoRoot,
    encoding: 'utf8',
    env: { ...process.env, NODE_OPTIONS: '' },
    timeout: 280_000,
  })
  t.equal(r.status, 0, r.stderr.slice(-2000))
  t.match(r.stdout, /change source: tracking/, 'the incremental used the tracking bitmap')
  t.equal((r.stdout.match(/: identical \(sha256/g) ?? []).length, 3, 'three restores identical to their sources')
  t.match(r.stdout, /OK: 3 backup\(s\)/, 'the repository verifies')
  t.match(r.stdout, /Done: three backups, all restored exactly/)
})
