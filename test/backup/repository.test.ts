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

t.test('repository: create, put/get chunks in packs, corrupt chunk detected, temporaries ignored', async t => {
  const dir = await tmp(t)
  const repo = await Repository.open(dir, { create: true })
  t.teardown(() => repo.close())
  t.equal(repo.chunkSizeBytes, 64 * 1024, 'default chunk = the tracking granule')
  const cfg = JSON.parse(await fsp.readFile(path.join(dir, REPOSITORY_FILE), 'utf8'))
  t.equal(cfg.version, 2)
  t.equal(cfg.packSizeBytes, 32 << 20)
  const data = textish(64 * 1024)
  const h = sha256Hex(data)
  t.ok(await repo.putChunk(h, data) > 0)
  t.equal(await repo.putChunk(h, data), 0, 'an existing chunk is not written again')
  t.ok((await repo.getChunk(h)).equals(data), 'readable before the pack is finalized')
  t.same((await fsp.readdir(path.join(dir, 'packs'))).map(n => n.replace(/^[0-9a-f]{32}/, 'X')), ['X.pack.tmp'], 'one pack, still being written')
  await repo.syncChunks()
  const names = (await fsp.readdir(path.join(dir, 'packs'))).sort()
  t.same(names.map(n => n.replace(/^[0-9a-f]{32}/, 'X')), ['X.idx', 'X.pack'], 'flushed: the pack and its index')
  // a second process sees the chunk through the index
  const other = await Repository.open(dir)
  t.teardown(() => other.close())
  t.ok((await other.getChunk(h)).equals(data))
  // a leftover temporary of a killed writer is neither a pack nor an error
  await fsp.writeFile(path.join(dir, 'packs', `${'ab'.repeat(16)}.pack.tmp`), 'partial')
  t.equal(await repo.removeTemporaries(), 1, 'the temporary is removed')
  // flip one byte in the record: the hash check names the chunk
  const where = (await repo.locateChunk(h))!
  const fh = await fsp.open(where.file, 'r+')
  const b = Buffer.alloc(1)
  await fh.read(b, 0, 1, where.offset + where.length - 3)
  b[0] ^= 1
  await fh.write(b, 0, 1, where.offset + where.length - 3)
  await fh.close()
  const fresh = await Repository.open(dir)
  t.teardown(() => fresh.close())
  await t.rejects(fresh.getChunk(h), { name: 'FormatError', message: /\.pack/ })
  await t.rejects(fresh.getChunk('00'.repeat(32)), { code: -32001 })
  // reopen: not a repository / development version 1 / wrong version
  await t.rejects(Repository.open(path.join(dir, 'nope')), { category: 'ObjectNotFound' })
  await fsp.writeFile(path.join(dir, REPOSITORY_FILE), JSON.stringify({ ...cfg, version: 1 }))
  await t.rejects(Repository.open(dir), /version 1 \(loose chunk files.*new repository/)
  await fsp.writeFile(path.join(dir, REPOSITORY_FILE), JSON.stringify({ ...cfg, version: 99 }))
  await t.rejects(Repository.open(dir), /version 99/)
  const nonEmpty = await tmp(t)
  await fsp.writeFile(path.join(nonEmpty, 'x'), 'y')
  await t.rejects(Repository.open(nonEmpty, { create: true }), /not empty/)
})

t.test('packs: rotate at the pack size; a missing or damaged index is rebuilt by scanning the pack', async t => {
  const dir = await tmp(t)
  const repo = await Repository.open(dir, { create: true, packSizeBytes: 256 * 1024 })
  const chunks = Array.from({ length: 12 }, () => randomBytes(64 * 1024))
  const hashes = chunks.map(c => sha256Hex(c))
  await Promise.all(chunks.map((c, i) => repo.putChunk(hashes[i]!, c)))
  await repo.syncChunks()
  await repo.close()
  const packs = (await fsp.readdir(path.join(dir, 'packs'))).filter(n => n.endsWith('.pack')).sort()
  t.equal(packs.length, 3, '12 x 64 KiB random chunks in 256 KiB packs: 3 packs')
  const idx = packs.map(p => path.join(dir, 'packs', p.replace('.pack', '.idx')))
  await fsp.rm(idx[0]!) // as if killed between the rename and the index
  const damaged = await fsp.readFile(idx[1]!)
  damaged[20] ^= 1
  await fsp.writeFile(idx[1]!, damaged)
  const warnings: string[] = []
  const again = await Repository.open(dir, { warn: m => warnings.push(m) })
  t.teardown(() => again.close())
  for (let i = 0; i < chunks.length; i++) t.ok((await again.getChunk(hashes[i]!)).equals(chunks[i]!), `chunk ${i} readable`)
  t.match(warnings.join('\n'), /pack index.*SHA-256 does not match.*scanning the pack/, 'the damaged index is named')
  // a truncated pack: the records before the cut stay readable, the rest are missing (not garbage)
  const p2 = path.join(dir, 'packs', packs[2]!)
  const st = await fsp.stat(p2)
  await fsp.truncate(p2, st.size - 1000)
  await fsp.rm(idx[2]!)
  const cut = await Repository.open(dir, { warn: m => warnings.push(m) })
  t.teardown(() => cut.close())
  let missing = 0
  for (const h of hashes) {
    try { await cut.getChunk(h) } catch (err) { t.equal((err as { category?: string }).category, 'ObjectNotFound'); missing++ }
  }
  t.equal(missing, 1, 'only the cut record is lost')
  t.match(warnings.join('\n'), /does not parse/)
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
  const only = listB.subarray(0, 32).toString('hex') // chunk 0 of b: only b has it, alone in b's pack
  const { file } = (await R.locateChunk(only))!
  await fsp.rm(file)
  await fsp.rm(file.replace(/\.pack$/, '.idx'))
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
  t.equal(p2.chunksRemoved, 0, 'one unreferenced chunk in a pack of 48 is not worth a rewrite')
  t.equal(p2.packsRewritten + p2.packsRemoved, 0)
  await R.close()
})

t.test('prune: packs nothing uses are removed, mostly unused packs rewritten, the kept backup restores exactly', async t => {
  const { createBackup } = await import('../../src/backup/backup.js')
  const { restoreBackup } = await import('../../src/backup/restore.js')
  const { verifyRepository } = await import('../../src/backup/verify.js')
  const { pruneRepository } = await import('../../src/backup/prune.js')
  const dir = await tmp(t)
  const disk = path.join(dir, 'd.raw')
  const repo = path.join(dir, 'repo')
  await fsp.writeFile(disk, randomBytes(4 << 20))
  await createBackup({ diskPath: disk, repoDir: repo, packSizeBytes: 1 << 20 })
  const rewrite = async (bytes: number): Promise<void> => {
    const fh = await fsp.open(disk, 'r+')
    await fh.write(randomBytes(bytes), 0, bytes, 0)
    await fh.close()
  }
  await rewrite(1536 * 1024)
  await createBackup({ diskPath: disk, repoDir: repo })
  await rewrite(1 << 20)
  const c = await createBackup({ diskPath: disk, repoDir: repo })
  const packBytes = async (): Promise<number> => {
    let n = 0
    for (const f of await fsp.readdir(path.join(repo, 'packs'))) n += (await fsp.stat(path.join(repo, 'packs', f))).size
    return n
  }
  const before = await packBytes()
  const dry = await pruneRepository({ repoDir: repo, keepLast: 1, graceMinutes: 0, dryRun: true })
  t.equal(await packBytes(), before, 'a dry run changes nothing')
  const p = await pruneRepository({ repoDir: repo, keepLast: 1, graceMinutes: 0 })
  t.same({ ...p, dryRun: true }, dry, 'the dry run said what the prune did')
  t.ok(p.packsRemoved >= 1, `${p.packsRemoved} pack(s) held only unused chunks`)
  t.ok(p.packsRewritten >= 1, `${p.packsRewritten} pack(s) rewritten`)
  // 40 chunks are unused (the full's first 1.5 MiB, the second backup's first MiB); a few may share a pack with
  // enough used ones that a rewrite does not pay (pack boundaries depend on the order the workers stored chunks)
  t.ok(p.chunksRemoved >= 32 && p.chunksRemoved <= 40, `${p.chunksRemoved} of the 40 unused chunks removed`)
  const after = await packBytes()
  t.ok(before - after >= p.bytesFreed * 0.9 && after < before, `${before - after} bytes freed (said ${p.bytesFreed})`)
  t.equal((await verifyRepository({ repoDir: repo, deep: true })).ok, true)
  await restoreBackup({ repoDir: repo, id: c.id, output: path.join(dir, 'r.raw') })
  t.ok((await fsp.readFile(path.join(dir, 'r.raw'))).equals(await fsp.readFile(disk)), 'the kept backup restores exactly after the rewrite')
  const again = await pruneRepository({ repoDir: repo, keepLast: 1, graceMinutes: 0 })
  t.equal(again.chunksRemoved + again.packsRewritten + again.packsRemoved, 0, 'nothing left to collect')
})

t.test('restore: several units, holes, a partial last chunk, and chunks larger than a unit come back exactly', async t => {
  const { createBackup } = await import('../../src/backup/backup.js')
  const { restoreBackup } = await import('../../src/backup/restore.js')
  const dir = await tmp(t)
  const disk = path.join(dir, 'd.raw')
  // 40 MiB + 3 sectors: three 16 MiB restore units with 64 KiB chunks, the last chunk 1536 bytes long
  const size = 40 * 1024 * 1024 + 1536
  const content = randomBytes(size)
  content.fill(0, 5 * 1024 * 1024, 9 * 1024 * 1024) // zero chunks inside a unit: holes between runs
  content.fill(0, 33 * 1024 * 1024, 34 * 1024 * 1024 + 4096) // zero pieces inside a 32 MiB chunk
  textish(6 * 1024 * 1024).copy(content, 12 * 1024 * 1024) // lz4 chunks among stored ones
  await fsp.writeFile(disk, content)
  const { resetSparseForTests } = await import('../../src/platform/sparse.js')
  t.teardown(() => { delete process.env.HVCBT_NO_NATIVE; resetSparseForTests() })
  for (const chunk of [64 * 1024, 32 * 1024 * 1024]) {
    const repo = path.join(dir, `repo-${chunk}`)
    const b = await createBackup({ diskPath: disk, repoDir: repo, chunkSizeBytes: chunk })
    for (const [concurrency, native] of [[1, true], [3, true], [3, false]] as const) {
      // without the addon: the JS unpacking path and buffered writes
      if (native) delete process.env.HVCBT_NO_NATIVE
      else process.env.HVCBT_NO_NATIVE = '1'
      resetSparseForTests()
      const out = path.join(dir, `r-${chunk}-${concurrency}-${native}.raw`)
      const r = await restoreBackup({ repoDir: repo, id: b.id, output: out, concurrency })
      t.ok((await fsp.readFile(out)).equals(content), `${chunk}-byte chunks, ${concurrency} worker(s), native ${native}: restored exactly`)
      if (chunk === 64 * 1024) t.equal(r.zeroChunks, 80, 'the 5 MiB of whole zero chunks are 80 zero chunks, not written')
      t.ok((await fsp.stat(out)).blocks * 512 < size - 4 * 1024 * 1024, 'zeros stay holes')
    }
  }
})
