// Sparse-file primitives against real files in os.tmpdir(): the native addon (when built) and the forced fallback
// (HVCBT_NO_NATIVE=1) must leave identical bytes; the native path must also report holes and free blocks.
import t, { type Test } from 'tap'
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {
  allocate,
  extents,
  punchHole,
  punchHoleAsync,
  resetSparseForTests,
  setSparseWarningSink,
  sparseSupport,
  zeroRange,
  zeroRangeAsync,
  ZERO_CHUNK_BYTES,
  nativeAddon,
  type Extent,
} from '../../src/platform/sparse.js'
import { alignedBuffer, isDirectAligned } from '../../src/platform/direct-io.js'
import { sha256HexMany } from '../../src/backup/chunk-codec.js'

const MiB = 1024 * 1024
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hvcbt-sparse-'))
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))

const warnings: string[] = []
setSparseWarningSink(m => warnings.push(m))

function useNative(on: boolean): void {
  if (on) delete process.env.HVCBT_NO_NATIVE
  else process.env.HVCBT_NO_NATIVE = '1'
  resetSparseForTests()
}

useNative(true)
const nativeSkip = sparseSupport().native ? false : `native addon not loaded: ${sparseSupport().reason}`

let counter = 0
function tempFile(size: number): { file: string; fd: number } {
  const file = path.join(dir, `f${counter++}.bin`)
  const fd = fs.openSync(file, 'w+')
  fs.ftruncateSync(fd, size)
  t.teardown(() => fs.closeSync(fd))
  return { file, fd }
}

/** Runs must be in order, contiguous, non-empty and cover exactly [offset, offset + length). */
function checkCoverage(t: Test, runs: Extent[], offset: number, length: number): void {
  let pos = offset
  for (const [o, l] of runs) {
    t.equal(o, pos, `run starts at ${pos}`)
    t.ok(l > 0, 'run is not empty')
    pos = o + l
  }
  t.equal(pos, offset + length, 'runs cover the range')
}

function readAll(fd: number): Buffer {
  const size = fs.fstatSync(fd).size
  const b = Buffer.alloc(size)
  fs.readSync(fd, b, 0, size, 0)
  return b
}

t.test('extents of a file with data at scattered offsets', { skip: nativeSkip }, async t => {
  useNative(true)
  const size = 64 * MiB
  const { fd } = tempFile(size)
  const writes: [number, number][] = [
    [0, 4096],
    [3 * MiB + 123, 777],
    [17 * MiB, 256 * 1024],
    [40 * MiB - 10, 20],
    [size - 4096, 4096],
  ]
  for (const [o, l] of writes) fs.writeSync(fd, crypto.randomBytes(l), 0, l, o)
  const runs = extents(fd, 0, size)
  checkCoverage(t, runs, 0, size)
  for (const [o, l] of writes) {
    const covering = runs.filter(([ro, rl, d]) => d && ro <= o && o + l <= ro + rl)
    t.equal(covering.length, 1, `write at ${o} lies inside one data run`)
  }
  const dataBytes = runs.filter(r => r[2]).reduce((s, r) => s + r[1], 0)
  t.ok(dataBytes <= writes.length * MiB, `data runs (${dataBytes} bytes) stay near what was written`)
  const image = readAll(fd)
  for (const [o, l, isData] of runs) {
    if (!isData) t.ok(image.subarray(o, o + l).every(b => b === 0), `hole at ${o} reads as zeros`)
  }
  // A sub-range is clipped to its bounds, and past the end of file is a hole.
  const sub = extents(fd, 17 * MiB + 1000, 2 * MiB)
  checkCoverage(t, sub, 17 * MiB + 1000, 2 * MiB)
  t.same(sub[0]![2], true, 'sub-range starts in data')
  t.same(extents(fd, size, MiB), [[size, MiB, false]], 'past end of file is one hole')
  t.same(extents(fd, 5, 0), [], 'empty range has no runs')
  // maxExtents stops early at a run boundary.
  const capped = extents(fd, 0, size, 2)
  t.equal(capped.length, 2)
  t.same(capped, runs.slice(0, 2), 'capped map is a prefix of the full map')
})

t.test('punchHole zeroes bytes, frees blocks and keeps the size', { skip: nativeSkip }, async t => {
  useNative(true)
  const { fd } = tempFile(0)
  const data = crypto.randomBytes(4 * MiB)
  fs.writeSync(fd, data, 0, data.length, 0)
  fs.fsyncSync(fd)
  const before = fs.fstatSync(fd)
  t.equal(punchHole(fd, MiB, 2 * MiB), 'punch-hole')
  const after = fs.fstatSync(fd)
  t.equal(after.size, before.size, 'size unchanged')
  t.ok(before.blocks - after.blocks >= (2 * MiB) / 512 - 16, `st_blocks shrank (${before.blocks} -> ${after.blocks})`)
  const image = readAll(fd)
  t.ok(image.subarray(MiB, 3 * MiB).every(b => b === 0), 'punched range reads zeros')
  t.ok(image.subarray(0, MiB).equals(data.subarray(0, MiB)), 'bytes before the hole kept')
  t.ok(image.subarray(3 * MiB).equals(data.subarray(3 * MiB)), 'bytes after the hole kept')
  t.same(
    extents(fd, 0, 4 * MiB).map(r => r[2]),
    [true, false, true],
    'map is data, hole, data',
  )
  t.equal(punchHole(fd, 3 * MiB, 10 * MiB), 'punch-hole', 'range past the end is accepted')
  t.equal(fs.fstatSync(fd).size, 4 * MiB, 'and does not grow the file')
})

t.test('zeroRange and allocate', { skip: nativeSkip }, async t => {
  useNative(true)
  const { fd } = tempFile(0)
  fs.writeSync(fd, crypto.randomBytes(2 * MiB), 0, 2 * MiB, 0)
  const method = zeroRange(fd, 4096, MiB)
  t.ok(method === 'zero-range' || method === 'punch-hole', `zeroRange used ${method}`)
  t.ok(readAll(fd).subarray(4096, 4096 + MiB).every(b => b === 0), 'zeroed range reads zeros')
  t.equal(zeroRange(fd, 0, 0), 'none')
  zeroRange(fd, MiB, 8 * MiB)
  t.equal(fs.fstatSync(fd).size, 2 * MiB, 'zeroRange past the end keeps the size')

  t.equal(zeroRange(fd, 3 * MiB, MiB), 'none', 'zeroRange wholly past the end does nothing')

  fs.fsyncSync(fd)
  const blocksBefore = fs.fstatSync(fd).blocks
  t.ok(blocksBefore <= (2 * MiB) / 512 + 64, 'no blocks reserved past the end by zeroRange')
  t.equal(allocate(fd, 2 * MiB, 4 * MiB), true)
  const st = fs.fstatSync(fd)
  t.equal(st.size, 6 * MiB, 'allocate past the end grows the file')
  t.ok(st.blocks >= blocksBefore + (4 * MiB) / 512, 'and reserves blocks')
  t.ok(readAll(fd).subarray(2 * MiB).every(b => b === 0), 'reserved space reads zeros')
})

t.test('errors carry errno names and syscalls; bad ranges are refused', { skip: nativeSkip }, async t => {
  useNative(true)
  const { fd } = tempFile(MiB)
  const closed = fs.openSync(path.join(dir, 'closed.bin'), 'w')
  fs.closeSync(closed)
  t.throws(() => extents(closed, 0, 10), { code: 'EBADF', syscall: 'lseek' })
  t.throws(() => punchHole(closed, 0, 10), { code: 'EBADF', syscall: 'fallocate' })
  const ro = fs.openSync(path.join(dir, `f${counter - 1}.bin`), 'r')
  t.teardown(() => fs.closeSync(ro))
  t.throws(() => punchHole(ro, 0, 4096), { code: 'EBADF', syscall: 'fallocate' }, 'read-only fd')
  for (const [o, l] of [[-1, 1], [1.5, 1], [0, Number.NaN], [2 ** 53, 1], [2 ** 52, 2 ** 52]] as const) {
    t.throws(() => extents(fd, o, l), RangeError, `range (${o}, ${l}) refused`)
    t.throws(() => zeroRange(fd, o, l), RangeError)
  }
})

t.test('fallback without the addon gives the same bytes and warns once', async t => {
  const size = 3 * MiB + 12345
  const data = crypto.randomBytes(size)
  const twin = (): number => {
    const { fd } = tempFile(0)
    fs.writeSync(fd, data, 0, size, 0)
    return fd
  }
  const ops = (fd: number): string[] => [
    punchHole(fd, 100, ZERO_CHUNK_BYTES + 5000),
    zeroRange(fd, 2 * MiB + 1, MiB),
    punchHole(fd, size - 10, 4 * MiB),
  ]
  useNative(true)
  const nativeFd = twin()
  const nativeMethods = nativeSkip ? [] : ops(nativeFd)

  useNative(false)
  warnings.length = 0
  const support = sparseSupport()
  t.equal(support.native, false)
  t.match(support.reason, /HVCBT_NO_NATIVE/)
  const fallbackFd = twin()
  t.same(ops(fallbackFd), ['write', 'write', 'write'], 'every zeroing wrote zeros')
  t.same(extents(fallbackFd, 10, size), [[10, size, true]], 'extents: whole range as data')
  t.equal(allocate(fallbackFd, 0, 8 * MiB), false, 'allocate is a no-op')
  t.equal(fs.fstatSync(fallbackFd).size, size, 'no operation changed the size')
  t.equal(warnings.length, 1, 'one warning for many calls')
  t.match(warnings[0], /sparse files unsupported/)

  const expected = Buffer.from(data)
  expected.fill(0, 100, 100 + ZERO_CHUNK_BYTES + 5000)
  expected.fill(0, 2 * MiB + 1, 3 * MiB + 1)
  expected.fill(0, size - 10)
  t.ok(readAll(fallbackFd).equals(expected), 'fallback bytes are the expected zeroed image')
  if (!nativeSkip) {
    t.ok(nativeMethods.every(m => m !== 'write'), `native path used fallocate (${nativeMethods.join(', ')})`)
    t.ok(readAll(nativeFd).equals(readAll(fallbackFd)), 'native and fallback images are identical')
  }
})

t.test('async variants on a FileHandle, both paths', async t => {
  for (const native of nativeSkip ? [false] : [true, false]) {
    useNative(native)
    const file = path.join(dir, `async-${native}.bin`)
    const data = crypto.randomBytes(2 * MiB)
    fs.writeFileSync(file, data)
    const h = await fs.promises.open(file, 'r+')
    try {
      const p = await punchHoleAsync(h, 1000, MiB)
      const z = await zeroRangeAsync(h, MiB + 1000, 5000)
      t.equal(p === 'write', !native, `punchHoleAsync used ${p}`)
      t.equal(z === 'write', !native, `zeroRangeAsync used ${z}`)
      t.equal(await punchHoleAsync(h, 0, 0), 'none')
    } finally {
      await h.close()
    }
    const expected = Buffer.from(data)
    expected.fill(0, 1000, MiB + 6000)
    t.ok(fs.readFileSync(file).equals(expected), `bytes as expected (native=${native})`)
  }
})

t.test('alignedBuffer: page-aligned zeroed memory for direct I/O, ordinary memory without the addon', { skip: nativeSkip }, async t => {
  useNative(true)
  const native = nativeAddon()!
  const b = alignedBuffer(3 * 4096)
  t.equal(b.length, 3 * 4096)
  t.ok(b.every(x => x === 0), 'zero-filled')
  t.ok(isDirectAligned(0, b), 'the whole buffer is aligned')
  t.ok(isDirectAligned(8192, b.subarray(4096, 8192)), 'a view at a page boundary is aligned')
  t.notOk(isDirectAligned(512, b), 'file offset not a multiple of 4096')
  t.notOk(isDirectAligned(0, b.subarray(0, 4000)), 'length not a multiple of 4096')
  t.notOk(isDirectAligned(0, b.subarray(512, 512 + 4096)), 'memory not on a page boundary')
  t.notOk(isDirectAligned(0, b.subarray(0, 0)), 'empty')
  t.notOk(isDirectAligned(0, Buffer.alloc(4096)), 'ordinary memory is never taken as aligned')
  for (const bad of [0, -1, 1.5, 2 ** 31, Number.NaN, '4096']) {
    t.throws(() => native.alignedBuffer(bad as number), { code: 'ERR_INVALID_ARG_VALUE' }, `size ${String(bad)} refused`)
  }
  useNative(false)
  t.teardown(() => useNative(true))
  const plain = alignedBuffer(4096)
  t.equal(plain.length, 4096)
  t.notOk(isDirectAligned(0, plain), 'without the addon nothing goes direct')
})

t.test('sha256Batch hashes many buffers in one job, like node:crypto; bad arguments are refused', { skip: nativeSkip }, async t => {
  useNative(true)
  const native = nativeAddon()!
  const big = crypto.randomBytes(3 * MiB)
  const inputs = [big, Buffer.alloc(0), big.subarray(12345, 12345 + 65536), new Uint8Array([1, 2, 3]), alignedBuffer(4096)]
  const want = inputs.map(b => crypto.createHash('sha256').update(b).digest('hex'))
  const out = await native.sha256Batch(inputs)
  t.equal(out.length, 32 * inputs.length)
  inputs.forEach((_, i) => t.equal(out.toString('hex', 32 * i, 32 * i + 32), want[i], `buffer ${i}`))
  t.equal((await native.sha256Batch([])).length, 0, 'an empty batch')
  t.throws(() => native.sha256Batch('abc' as unknown as Uint8Array[]), { code: 'ERR_INVALID_ARG_VALUE' })
  t.throws(() => native.sha256Batch([big, 'abc' as unknown as Uint8Array]), /buffers\[1\] is not a Buffer/)
  t.throws(() => native.sha256Batch([new Uint16Array(4) as unknown as Uint8Array]), /buffers\[0\]/)
  // the chunk codec's batch gives the same hex with and without the addon
  t.same(await sha256HexMany(inputs), want, 'sha256HexMany with the addon')
  useNative(false)
  t.teardown(() => useNative(true))
  t.same(await sha256HexMany(inputs), want, 'sha256HexMany without it (WebCrypto)')
})
