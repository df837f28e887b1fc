// Repository unit tests: chunk codec (lz4, stored, pure-JS decoder, damaged input), atomic chunk and manifest
// writes, the writer lock (busy, stale take-over), corrupt chunk detection, retention rules.
import t from 'tap'
import fsp from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { randomBytes } from 'node:crypto'
import { spawnSync } from 'node:child_process'
import { Codec, codecStatus, decodeChunk, encodeChunk, lz4BlockDecode, sha256Hex, CHUNK_HEADER_BYTES } from '../../src/backup/chunk-codec.js'
import { Repository, REPOSITORY_FILE } from '../../src/backup/repository.js'
import { acquireLock, LOCK_FILE } from '../../src/backup/repository-lock.js'
import { retained } from '../../src/backup/prune.js'
import type { Manifest } from '../../src/backup/manifest.js'

async function tmp(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'hvcbt-repo-'))
  t.teardown(() => fsp.rm(dir, { recursive: true, force: true }))
  return dir
}

function textish(n: number): Buffer {
  const b = Buffer.alloc(n)
  for (let i = 0; i < n; i += 64) b.write(`block ${i % 4096} of some repetitive text, `, i)
  return b
}

t.test('codec: lz4 compresses text, random data is stored, both decode back', async t => {
  t.equal(codecStatus().codec, 'lz4', `lz4-napi loads here (${codecStatus().reason ?? 'ok'})`)
  const text = textish(1 << 20)
  const enc = encodeChunk(text)
  t.equal(enc[5], Codec.lz4)
  t.ok(enc.length < text.length / 4, `text compresses (${enc.length} bytes)`)
  t.ok(decodeChunk(enc, 'x').equals(text))
  // the pure-JS decoder reads what the native encoder wrote (fallback when the addon cannot load)
  t.ok(lz4BlockDecode(enc.subarray(CHUNK_HEADER_BYTES + 4), text.length).equals(text))
  const rnd = randomBytes(1 << 20)
  const enc2 = encodeChunk(rnd)
  t.equal(enc2[5], Codec.stored, 'incompressible data is stored as is')
  t.ok(decodeChunk(enc2, 'x').equals(rnd))
  t.equal(encodeChunk(text, 'stored')[5], Codec.stored)
})

t.test('codec: damaged chunk files are FormatErrors, never crashes or huge allocations', async t => {
  const enc = encodeChunk(textish(256 * 1024))
  const cases: [string, (b: Buffer) => Buffer][] = [
    ['short', b => b.subarray(0, 10)],
    ['magic', b => { const c = Buffer.from(b); c[0] = 0x58; return c }],
    ['codec', b => { const c = Buffer.from(b); c[5] = 9; return c }],
    ['huge size', b => { const c = Buffer.from(b); c.writeUInt32LE(0xffffffff, 8); return c }],
    ['truncated payload', b => b.subarray(0, b.length - 5)],
  ]
  for (const [name, f] of cases) t.throws(() => decodeChunk(f(enc), 'c'), { name: 'FormatError' }, name)
  // flipped bytes in the lz4 payload: either a FormatError or different content (caught by the hash), never a hang
  for (let k = 0; k < 50; k++) {
    const c = Buffer.from(enc)
    c[CHUNK_HEADER_BYTES + 4 + Math.floor(Math.random() * (c.length - CHUNK_HEADER_BYTES - 4))] ^= 0x5a
    try {
      lz4BlockDecode(c.subarray(CHUNK_HEADER_BYTES + 4), 256 * 1024)
    } catch (err) {
      t.equal((err as Error).name, 'FormatError')
    }
  }
})

t.test('repository: create, put/get chunks, corrupt chunk detected, temporaries ignored', async t => {
  const dir = await tmp(t)
  const repo = await Repository.open(dir, { create: true })
  t.equal(repo.chunkSizeBytes, 1 << 20)
  const cfg = JSON.parse(await fsp.readFile(path.join(dir, REPOSITORY_FILE), 'utf8'))
  t.equal(cfg.version, 1)
  const data = textish(1 << 20)
  const h = sha256Hex(data)
  t.ok(await repo.putChunk(h, data) > 0)
  t.equal(await repo.putChunk(h, data), 0, 'an existing chunk is not written again')
  t.ok((await repo.getChunk(h)).equals(data))
  t.ok(await fsp.stat(path.join(dir, 'chunks', h.slice(0, 2), h)), 'fan-out layout chunks/ab/abcd...')
  // a leftover temporary of a killed writer is neither a chunk nor an error
  await fsp.writeFile(path.join(dir, 'chunks', h.slice(0, 2), `${h}.123-abcd.tmp`), 'partial')
  t.same((await repo.listChunks()).map(c => c.hash), [h])
  t.equal(await repo.removeTemporaries(), 1)
  // flip one byte: the hash check names the chunk
  const file = repo.chunkPath(h)
  const bytes = await fsp.readFile(file)
  bytes[bytes.length - 100] ^= 1
  await fsp.writeFile(file, bytes)
  await t.rejects(repo.getChunk(h), { name: 'FormatError' })
  await t.rejects(repo.getChunk('00'.repeat(32)), { code: -32001 })
  // reopen: not a repository / wrong version
  await t.rejects(Repository.open(path.join(dir, 'nope')), { category: 'ObjectNotFound' })
  await fsp.writeFile(path.join(dir, REPOSITORY_FILE), JSON.stringify({ ...cfg, version: 99 }))
  await t.rejects(Repository.open(dir), /version 99/)
  const other = await tmp(t)
  await fsp.writeFile(path.join(other, 'x'), 'y')
  await t.rejects(Repository.open(other, { create: true }), /not empty/)
})

t.test('lock: second writer refused with the holder named; a dead holder is taken over', async t => {
  const dir = await tmp(t)
  const a = await acquireLock(dir, 'backup create')
  await t.rejects(acquireLock(dir, 'backup prune'), { category: 'ResourceBusy', message: new RegExp(`process ${process.pid}`) })
  await a.release()
  const b = await acquireLock(dir, 'again')
  await b.release()
  // a lock left by a process that no longer runs (same host) is stale
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString()
  await fsp.writeFile(path.join(dir, LOCK_FILE), JSON.stringify({ pid: Number(dead), host: os.hostname(), purpose: 'killed', startedAt: 'x' }))
  const c = await acquireLock(dir, 'after crash')
  t.equal(c.tookOverStale?.pid, Number(dead))
  await c.release()
  // another host's lock cannot be checked: refused unless broken explicitly
  await fsp.writeFile(path.join(dir, LOCK_FILE), JSON.stringify({ pid: 1, host: 'elsewhere', purpose: 'backup', startedAt: 'x' }))
  await t.rejects(acquireLock(dir, 'x'), /host elsewhere.*--break-lock/)
  const d = await acquireLock(dir, 'x', { breakLock: true })
  await d.release()
  await t.rejects(fsp.access(path.join(dir, LOCK_FILE)), 'release removes the lock file')
})

t.test('retention rules', async t => {
  const mk = (iso: string, n: number): Manifest => ({ id: `${iso.replace(/[-:]/g, '').slice(0, 15)}Z-00000${n}`, finishedAt: iso } as Manifest)
  const ms = [
    mk('2026-11-01T10:00:00Z', 1), mk('2026-11-01T12:00:00Z', 2), mk('2026-11-02T10:00:00Z', 3),
    mk('2026-11-09T10:00:00Z', 4), mk('2026-11-10T10:00:00Z', 5), mk('2026-11-10T11:00:00Z', 6),
  ]
  t.same([...retained(ms, { keepLast: 2 })].sort(), [ms[4]!.id, ms[5]!.id].sort())
  t.same([...retained(ms, { keepDaily: 3 })].sort(), [ms[2]!.id, ms[3]!.id, ms[5]!.id].sort(), 'newest of each of the last 3 days')
  t.same([...retained(ms, { keepWeekly: 2 })].sort(), [ms[2]!.id, ms[5]!.id].sort(), 'newest of each of the last 2 ISO weeks')
})

t.test('verify: a missing chunk and a damaged chunk list are named; prune refuses to collect then; grace period', async t => {
  const { createBackup } = await import('../../src/backup/backup.js')
  const { verifyRepository } = await import('../../src/backup/verify.js')
  const { pruneRepository } = await import('../../src/backup/prune.js')
  const dir = await tmp(t)
  const disk = path.join(dir, 'd.raw')
  const repo = path.join(dir, 'repo')
  await fsp.writeFile(disk, Buffer.concat([randomBytes(3 << 20), Buffer.alloc(1 << 20)]))
  const a = await createBackup({ diskPath: disk, repoDir: repo })
  const fh = await fsp.open(disk, 'r+')
  await fh.write(randomBytes(4096), 0, 4096, 0)
  await fh.close()
  const b = await createBackup({ diskPath: disk, repoDir: repo })
  t.equal(b.stats.chunksStored, 1)
  const R = await Repository.open(repo)
  const listB = await R.readChunkList(await R.readManifest(b.id))
  const only = listB.subarray(0, 32).toString('hex') // chunk 0 of b: only b has it
  await fsp.rm(R.chunkPath(only))
  const v = await verifyRepository({ repoDir: repo })
  t.same(v.affected, [b.id], 'only the backup that uses the chunk is affected')
  t.equal(v.backups.find(x => x.id === b.id)!.problems[0]!.problem, 'missing')
  // a damaged chunk list
  const listFile = path.join(repo, 'manifests', `${a.id}.chunks`)
  const bytes = await fsp.readFile(listFile)
  bytes[5] ^= 1
  await fsp.writeFile(listFile, bytes)
  const v2 = await verifyRepository({ repoDir: repo })
  t.same([...v2.affected].sort(), [a.id, b.id].sort())
  t.match(v2.backups.find(x => x.id === a.id)!.manifestProblem, /chunk list.*SHA-256/)
  await t.rejects(pruneRepository({ repoDir: repo, keepLast: 2 }), /prune refused.*nothing was removed/, 'no gc while a kept chunk list is unreadable')
  t.equal((await R.listManifests()).manifests.length, 2)
  // repair: drop the damaged backup's files by hand; then prune with a grace period keeps fresh unreferenced chunks
  await fsp.rm(listFile)
  await fsp.rm(path.join(repo, 'manifests', `${a.id}.json`))
  const p = await pruneRepository({ repoDir: repo, keepLast: 1, dryRun: true })
  t.equal(p.chunksRemoved, 0)
  t.ok(p.chunksKeptInGrace >= 1, 'the old chunk 0 is unreferenced but recent: kept')
  const p2 = await pruneRepository({ repoDir: repo, keepLast: 1, graceMinutes: 0 })
  t.equal(p2.chunksRemoved, p.chunksKeptInGrace)
})
