/**
 * A backup killed midway (SIGKILL from the parent after 400 of 768 chunks): the repository stays consistent (verify
 * clean, no half manifest), the stale lock is taken over, and the next backup completes, reusing the chunks the
 * killed one stored, and restores exactly.
 */
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { createBackup } from '../../src/backup/backup.js'
import { restoreBackup } from '../../src/backup/restore.js'
import { verifyRepository } from '../../src/backup/verify.js'
import { Repository } from '../../src/backup/repository.js'
import { MiB, tempDir } from '../nbd/helpers.js'

const here = path.dirname(fileURLToPath(import.meta.url))
const loader = path.join(here, '..', '..', 'node_modules', '@tapjs', 'typescript', 'dist', 'esm', 'import.mjs')

t.test('SIGKILL in the middle of a backup', async t => {
  const dir = tempDir(t)
  const disk = path.join(dir, 'd.raw')
  const repo = path.join(dir, 'repo')
  fs.writeFileSync(disk, randomBytes(48 * MiB))
  // a first, complete backup so there is something verify must still find intact
  // small packs, so the killed backup has finalized (durable, indexed) some before the kill
  const first = await createBackup({ diskPath: disk, repoDir: repo, mode: 'full', packSizeBytes: 256 * 1024 })
  const fd = fs.openSync(disk, 'r+')
  for (let i = 0; i < 48; i += 2) fs.writeSync(fd, randomBytes(4096), 0, 4096, i * MiB + 8192) // 24 changed chunks
  fs.closeSync(fd)

  const child = spawn(process.execPath, [`--import=${loader}`, path.join(here, 'backup-child.ts'), disk, repo], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stderr.on('data', d => { err += d })
  const killedAt = await new Promise<number>((resolve, reject) => {
    child.stdout.on('data', d => {
      out += d
      const m = /chunk (\d+)\n/g
      const seen = [...out.matchAll(m)].length
      if (seen >= 400 && child.exitCode === null && !child.killed) {
        child.kill('SIGKILL')
        resolve(seen)
      }
    })
    child.on('exit', code => { if (!child.killed) reject(new Error(`child exited ${code} before the kill: ${out} ${err}`)) })
  })
  await new Promise(res => child.on('close', res))
  t.ok(killedAt >= 400 && !/done/.test(out), `killed after ${killedAt} chunks, before the commit`)
  t.ok(fs.existsSync(path.join(repo, 'lock')), 'the killed writer left its lock')

  const repoObj = await Repository.open(repo)
  const { manifests, damaged } = await repoObj.listManifests()
  t.same(manifests.map(m => m.id), [first.id], 'no manifest of the killed backup')
  t.same(damaged, [])
  const v = await verifyRepository({ repoDir: repo })
  t.equal(v.ok, true, 'verify is clean after the kill')

  const next = await createBackup({ diskPath: disk, repoDir: repo })
  t.equal(next.mode, 'incremental', 'the next backup runs (stale lock taken over)')
  t.ok(next.stats.chunksStored < next.stats.chunksChanged, `it reuses chunks the killed backup stored (${next.stats.chunksStored} new of ${next.stats.chunksChanged} changed)`)
  const out2 = path.join(dir, 'r.raw')
  await restoreBackup({ repoDir: repo, id: next.id, output: out2 })
  t.ok(fs.readFileSync(out2).equals(fs.readFileSync(disk)), 'and restores exactly')
  t.equal((await verifyRepository({ repoDir: repo, deep: true })).ok, true)
})
