// Restore's native unpack job (native/src/unpack.cc through Repository.getChunksInto): chunks land at their
// offsets with nothing else touched; damaged records, short packs and missing chunks are errors naming the pack;
// the C++ LZ4 decoder agrees with the JS one (lz4BlockDecode) on valid and fuzzed input; random damage to a pack
// never crashes and never passes wrong content. The same requests without the addon go through getChunks.
import t, { type Test } from 'tap'
import fsp from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { randomBytes } from 'node:crypto'
import { CHUNK_HEADER_BYTES, encodeChunk, lz4BlockDecode, sha256Hex } from '../../src/backup/chunk-codec.js'
import { Repository } from '../../src/backup/repository.js'
import type { UnpackRequest } from '../../src/backup/pack-store.js'
import { nativeAddon, resetSparseForTests, sparseSupport } from '../../src/platform/sparse.js'
import { FormatError } from '../../src/engine/errors.js'

const nativeSkip = sparseSupport().native ? false : `native addon not loaded: ${sparseSupport().reason}`
const KiB = 1024

function useNative(on: boolean): void {
  if (on) delete process.env.HVCBT_NO_NATIVE
  else process.env.HVCBT_NO_NATIVE = '1'
  resetSparseForTests()
}
t.teardown(() => useNative(true))

function textish(n: number, seed = 0): Buffer {
  const b = Buffer.alloc(n)
  for (let i = 0; i < n; i += 48) b.write(`line ${(i * 7 + seed) % 5000} of text, more text `, i)
  return b
}

/** A repository holding `chunks` (flushed into one pack); the pack's path and each chunk's hash. */
async function repoWith(t: Test, chunks: Buffer[]): Promise<{ dir: string; hashes: Buffer; pack: string }> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'hvcbt-unpack-'))
  t.teardown(() => fsp.rm(dir, { recursive: true, force: true }))
  const repo = await Repository.open(dir, { create: true })
  const hashes = Buffer.concat(chunks.map(c => Buffer.from(sha256Hex(c), 'hex')))
  for (const [k, c] of chunks.entries()) await repo.putChunk(hashes.toString('hex', 32 * k, 32 * k + 32), c)
  await repo.syncChunks()
  await repo.close()
  const pack = (await fsp.readdir(path.join(dir, 'packs'))).find(n => n.endsWith('.pack'))!
  return { dir, hashes, pack: path.join(dir, 'packs', pack) }
}

/**
 * getChunksInto for every chunk (chunk k at k * 64 KiB + 512 of a fresh buffer), with the native job or without;
 * `opened` runs once the repository is open.
 */
async function unpack(dir: string, hashes: Buffer, lengths: number[], native: boolean,
  opened?: (repo: Repository) => Promise<void>): Promise<{ dest: Buffer; errors: Array<Error | null> }> {
  useNative(native)
  const repo = await Repository.open(dir)
  try {
    await opened?.(repo)
    const dest = Buffer.alloc(lengths.length * 64 * KiB + 1024, 0xee)
    const wanted: UnpackRequest[] = lengths.map((length, k) => ({ hashes, at: 32 * k, to: k * 64 * KiB + 512, length }))
    return { dest, errors: await repo.getChunksInto(dest, wanted) }
  } finally {
    await repo.close()
    useNative(true)
  }
}

async function patch(file: string, offset: number, f: (b: Buffer) => void, length = 1): Promise<void> {
  const fh = await fsp.open(file, 'r+')
  const b = Buffer.alloc(length)
  await fh.read(b, 0, length, offset)
  f(b)
  await fh.write(b, 0, length, offset)
  await fh.close()
}

t.test('chunks land at their offsets, stored and lz4 alike, with and without the addon', { skip: nativeSkip }, async t => {
  const chunks = [randomBytes(64 * KiB), textish(64 * KiB), textish(1536, 3), randomBytes(64 * KiB)]
  t.equal(encodeChunk(chunks[1]!)[5], 1, 'the text chunk is lz4')
  const { dir, hashes } = await repoWith(t, chunks)
  for (const native of [true, false]) {
    const { dest, errors } = await unpack(dir, hashes, chunks.map(c => c.length), native)
    t.same(errors, chunks.map(() => null), `native ${native}: no errors`)
    chunks.forEach((c, k) => {
      const at = k * 64 * KiB + 512
      t.ok(dest.subarray(at, at + c.length).equals(c), `native ${native}: chunk ${k} in place`)
    })
    t.ok(dest.subarray(0, 512).every(x => x === 0xee) && dest.subarray(2 * 64 * KiB + 512 + 1536, 3 * 64 * KiB + 512).every(x => x === 0xee),
      `native ${native}: bytes outside the chunks untouched`)
  }
})

t.test('damaged records, short packs and missing chunks are errors naming the pack', { skip: nativeSkip }, async t => {
  const stored = randomBytes(64 * KiB)
  const text = textish(64 * KiB)
  const storedRecord = 32 + CHUNK_HEADER_BYTES + stored.length
  type Case = [string, (pack: string) => Promise<void>, number[], RegExp]
  const cases: Case[] = [
    ['a flipped content byte', p => patch(p, 16 + 32 + 16 + 1000, b => { b[0]! ^= 1 }), [0], /SHA-256 is [0-9a-f]{64}, expected/],
    ['a flipped lz4 byte', p => patch(p, 16 + storedRecord + 32 + 16 + 200, b => { b[0]! ^= 0x40 }), [1], /lz4 block|SHA-256 is/],
    ['an unknown codec', p => patch(p, 16 + 32 + 5, b => { b[0] = 9 }), [0], /unknown codec 9/],
    ['a bad magic', p => patch(p, 16 + 32, b => { b[0] = 0x58 }), [0], /magic/],
    ['a record holding another hash', p => patch(p, 16, b => { b[0]! ^= 0xff }), [0], /holds chunk [0-9a-f]{64}, the index says/],
    ['a wrong size prefix', p => patch(p, 16 + storedRecord + 32 + 16, b => { b[0]! ^= 1 }), [1], /size prefix/],
  ]
  for (const [name, damage, bad, message] of cases) {
    const { dir, hashes, pack } = await repoWith(t, [stored, text])
    await damage(pack)
    for (const native of [true, false]) {
      const { errors } = await unpack(dir, hashes, [stored.length, text.length], native)
      for (let k = 0; k < 2; k++) {
        if (!bad.includes(k)) {
          t.equal(errors[k], null, `${name}, native ${native}: chunk ${k} is fine`)
          continue
        }
        t.type(errors[k], Error, `${name}, native ${native}: chunk ${k} fails`)
        t.match(errors[k]!.message, new RegExp(path.basename(pack)), `${name}, native ${native}: names the pack`)
        if (native) t.match(errors[k]!.message, message, `${name}: ${errors[k]!.message.slice(0, 120)}`)
      }
    }
  }
  // a pack cut short after the repository indexed it
  {
    const { dir, hashes, pack } = await repoWith(t, [text, stored])
    const whole = await fsp.readFile(pack)
    for (const native of [true, false]) {
      await fsp.writeFile(pack, whole)
      const { errors } = await unpack(dir, hashes, [text.length, stored.length], native, async repo => {
        t.ok(await repo.locateChunk(hashes.toString('hex', 32, 64)), 'indexed before the cut')
        await fsp.truncate(pack, whole.length - 1000)
      })
      t.equal(errors[0], null, `native ${native}: the record before the cut reads`)
      t.match(errors[1]?.message, /pack record at offset \d+: pack ends after \d+ of the record's \d+ bytes/, `native ${native}: short pack`)
    }
  }
  // a chunk the repository does not have; a length that is not the chunk's
  const { dir, hashes } = await repoWith(t, [stored])
  const missing = Buffer.concat([hashes, randomBytes(32)])
  for (const native of [true, false]) {
    const { errors } = await unpack(dir, missing, [stored.length, stored.length], native)
    t.equal(errors[0], null)
    t.match(errors[1], { category: 'ObjectNotFound', message: /is missing from/ }, `native ${native}: missing chunk`)
    const short = await unpack(dir, hashes, [stored.length - 512], native)
    t.match(short.errors[0]?.message, /bytes/, `native ${native}: wrong length refused: ${short.errors[0]?.message}`)
  }
})

t.test('unpackChunks refuses a malformed plan before reading anything', { skip: nativeSkip }, async t => {
  const { unpackChunks } = nativeAddon()!
  t.throws(() => unpackChunks(Buffer.alloc(10), Buffer.alloc(63)), { name: 'TypeError', message: /multiple of 64/ })
  const plan = Buffer.alloc(64)
  plan.writeUInt32LE(100, 8) // record length
  plan.writeUInt32LE(8, 12) // dest offset
  plan.writeUInt32LE(52, 16) // content length: 8 + 52 > 50
  t.throws(() => unpackChunks(Buffer.alloc(50), plan), { name: 'TypeError', message: /plan entry 0: content at 8 runs past the 50-byte destination/ })
  plan.writeUInt32LE(10, 8)
  t.throws(() => unpackChunks(Buffer.alloc(100), plan), { name: 'TypeError', message: /record length 10/ })
  plan.writeUInt32LE(100, 8)
  plan.writeInt32LE(-1, 0)
  t.throws(() => unpackChunks(Buffer.alloc(100), plan), { name: 'TypeError', message: /fd/ })
  plan.writeInt32LE(987654, 0) // not open: an errno, not a throw
  const [r] = await unpackChunks(Buffer.alloc(100), plan)
  t.match(r, { code: 'EBADF', syscall: 'preadv' })
})

/** The JS decoder's outcome as the native one reports it. */
function jsDecode(src: Buffer, raw: number): { out?: Buffer; message?: string; offset?: number } {
  try {
    return { out: lz4BlockDecode(src, raw) }
  } catch (err) {
    const e = err as FormatError
    return { message: e.message.replace(/^lz4: lz4 block at offset \d+: /, ''), offset: Number(e.offset) }
  }
}

function nativeDecode(src: Buffer, raw: number): { out?: Buffer; message?: string; offset?: number } {
  try {
    return { out: nativeAddon()!.lz4Decode(src, raw) }
  } catch (err) {
    const e = err as Error & { offset: number }
    return { message: e.message, offset: e.offset }
  }
}

t.test('fuzz: the C++ LZ4 decoder agrees with lz4BlockDecode on valid, mutated and random blocks', { skip: nativeSkip }, async t => {
  let seed = 0x2545f491
  const rand = (n: number): number => {
    seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5
    return (seed >>> 0) % n
  }
  const blocks: Buffer[] = []
  for (const n of [1, 17, 300, 4096, 65536]) {
    for (const data of [textish(n, n), Buffer.concat([textish(n >> 1), randomBytes(n - (n >> 1))]), Buffer.alloc(n, 7)]) {
      const enc = encodeChunk(data, 'lz4')
      if (enc[5] === 1) blocks.push(enc.subarray(CHUNK_HEADER_BYTES))
    }
  }
  t.ok(blocks.length >= 8, `${blocks.length} lz4 blocks to start from`)
  let agreed = 0
  let failures = 0
  for (let i = 0; i < 3000; i++) {
    const base = blocks[rand(blocks.length)]!
    const raw0 = base.readUInt32LE(0)
    let src: Buffer = Buffer.from(base.subarray(4))
    let raw = raw0
    switch (i % 6) {
      case 0: break // as written
      case 1: for (let k = 0, n = 1 + rand(4); k < n; k++) src[rand(src.length)] = rand(256); break
      case 2: src = src.subarray(0, rand(src.length + 1)); break
      case 3: raw = rand(raw0 * 2 + 2); break
      case 4: src = randomBytes(rand(200)); raw = rand(2000); break
      case 5: src = Buffer.concat([src, randomBytes(1 + rand(8))]); break
    }
    const js = jsDecode(src, raw)
    const c = nativeDecode(src, raw)
    if (js.out && c.out ? js.out.equals(c.out) : js.message === c.message && js.offset === c.offset) agreed++
    else t.fail(`case ${i}: js ${js.message ?? 'ok'} @${js.offset}, native ${c.message ?? 'ok'} @${c.offset}`)
    if (!js.out) failures++
  }
  t.equal(agreed, 3000, 'every block decodes the same, or fails the same way at the same offset')
  t.ok(failures > 500, `the fuzz reached the error paths (${failures} failures)`)
})

t.test('fuzz: random damage to a pack is an error or the exact content, never a crash', { skip: nativeSkip }, async t => {
  const chunks = [textish(64 * KiB, 1), randomBytes(64 * KiB), textish(40 * KiB, 2), Buffer.concat([textish(32 * KiB), randomBytes(32 * KiB)])]
  const { dir, hashes, pack } = await repoWith(t, chunks)
  const good = await fsp.readFile(pack)
  let seed = 77
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) >>> 0
    return seed % n
  }
  let errors = 0
  for (let i = 0; i < 150; i++) {
    const bad = Buffer.from(good)
    for (let k = 0, n = 1 + rand(3); k < n; k++) bad[16 + rand(bad.length - 16)] = rand(256)
    await fsp.writeFile(pack, i % 10 === 9 ? bad.subarray(0, rand(bad.length)) : bad)
    const r = await unpack(dir, hashes, chunks.map(c => c.length), true)
    chunks.forEach((c, k) => {
      const at = k * 64 * KiB + 512
      if (r.errors[k] === null && !r.dest.subarray(at, at + c.length).equals(c)) t.fail(`round ${i}: chunk ${k} passed with wrong content`)
      if (r.errors[k] !== null) errors++
    })
  }
  t.ok(errors > 100, `damage was detected (${errors} chunk errors in 150 rounds)`)
})
