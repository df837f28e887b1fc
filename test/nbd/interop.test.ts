/**
 * The NBD export against real clients: qemu-io, qemu-img, nbdinfo, nbdcopy (libnbd). Each test serves a raw image
 * on a free loopback port and checks what the clients see against an in-memory mirror of what they wrote.
 */
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { MiB, missing, rng, run, serveRaw, sparseFile, tempDir } from './helpers.js'

const SIZE = 64 * MiB

/** Apply qemu-io style operations to a mirror buffer and build the matching -c arguments. */
function scatteredWrites(seed: number, count: number, size: number): { args: string[]; mirror: Buffer } {
  const next = rng(seed)
  const mirror = Buffer.alloc(size)
  const args: string[] = []
  for (let i = 0; i < count; i++) {
    const len = (1 + Math.floor(next() * 64)) * 4096
    const off = Math.floor(next() * ((size - len) / 512)) * 512
    const pattern = 1 + Math.floor(next() * 254)
    args.push('-c', `write -P 0x${pattern.toString(16)} ${off} ${len}`)
    mirror.fill(pattern, off, off + len)
  }
  return { args, mirror }
}

t.test('qemu-io writes at scattered offsets, qemu-img convert reads them back', { skip: missing('qemu-io', 'qemu-img') }, async t => {
  const dir = tempDir(t)
  const file = sparseFile(dir, 'disk.raw', SIZE)
  const { uri } = await serveRaw(t, file)
  const { args, mirror } = scatteredWrites(7, 40, SIZE)
  // discard and write-zeroes, both plain and with NO_HOLE (qemu-io 'write -z' without -u sends NO_HOLE)
  args.push('-c', `discard ${8 * MiB} ${MiB}`, '-c', `write -z ${16 * MiB} ${MiB}`, '-c', `write -z -u ${20 * MiB} ${MiB}`)
  mirror.fill(0, 8 * MiB, 9 * MiB)
  mirror.fill(0, 16 * MiB, 17 * MiB)
  mirror.fill(0, 20 * MiB, 21 * MiB)
  args.push('-c', `write -P 0x77 -f ${30 * MiB} 64k`, '-c', 'flush') // -f: FUA
  mirror.fill(0x77, 30 * MiB, 30 * MiB + 65536)
  const out = await run('qemu-io', ['-f', 'raw', uri, ...args])
  t.notMatch(out, /error|failed/i, 'qemu-io reports no error')
  const copy = path.join(dir, 'out.raw')
  await run('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', uri, copy])
  t.ok(fs.readFileSync(copy).equals(mirror), 'converted image equals what was written')
  t.ok(fs.readFileSync(file).equals(mirror), 'backing file equals what was written')
  const verify = await run('qemu-io', ['-f', 'raw', '-r', uri, '-c', `read -P 0x77 ${30 * MiB} 64k`, '-c', `read -P 0 ${16 * MiB} 1M`])
  t.notMatch(verify, /Pattern verification failed/, 'qemu-io verifies patterns through the export')
})

t.test('nbdinfo --json reports size and flags; read-only exports refuse writes', { skip: missing('nbdinfo', 'qemu-io') }, async t => {
  const dir = tempDir(t)
  const file = sparseFile(dir, 'disk.raw', SIZE)
  const rw = await serveRaw(t, file, { name: 'rw', export: { description: 'test disk' } })
  const info = JSON.parse(await run('nbdinfo', ['--json', rw.uri])) as { exports: Record<string, unknown>[] }
  const e = info.exports[0]!
  t.equal(e['export-size'], SIZE, 'size')
  t.equal(e['is_read_only'], false)
  t.equal(e['can_flush'], true)
  t.equal(e['can_fua'], true)
  t.equal(e['can_trim'], true)
  t.equal(e['can_zero'], true)
  t.equal(e['can_multi_conn'], true)
  t.equal(e['can_cache'], true)
  t.equal(e['can_df'], true)
  t.equal(e['block_size_minimum'], 512)
  t.equal(e['block_size_maximum'], 32 * MiB)
  t.equal(e['description'], 'test disk')
  t.ok((e['contexts'] as string[]).includes('base:allocation'), 'base:allocation listed')

  const ro = await serveRaw(t, file, { name: 'ro', readOnly: true })
  const roInfo = JSON.parse(await run('nbdinfo', ['--json', ro.uri])) as { exports: Record<string, unknown>[] }
  t.equal(roInfo.exports[0]!['is_read_only'], true)
  t.equal(roInfo.exports[0]!['can_trim'], false)
  const denied = await run('qemu-io', ['-f', 'raw', ro.uri, '-c', 'write 0 4k']).then(o => o, (err: Error) => err.message)
  t.match(denied, /Operation not permitted|read-only|Permission denied/i, 'write to a read-only export is refused')
  t.ok(fs.readFileSync(file).subarray(0, 4096).every(b => b === 0), 'nothing was written')

  const list = await run('nbdinfo', ['--list', '--json', rw.uri])
  t.match(list, /"export-name": "rw"/, 'nbdinfo --list shows the export')
})

t.test('nbdinfo --map (base:allocation) matches the disk extents', { skip: missing('nbdinfo', 'qemu-io') }, async t => {
  const dir = tempDir(t)
  const file = sparseFile(dir, 'disk.raw', SIZE)
  const { uri, disk } = await serveRaw(t, file)
  await run('qemu-io', ['-f', 'raw', uri, '-c', `write -P 1 ${4 * MiB} 1M`, '-c', `write -P 2 ${40 * MiB} 3M`, '-c', `discard ${41 * MiB} 1M`])
  const map = JSON.parse(await run('nbdinfo', ['--map', '--json', uri])) as { offset: number; length: number; type: number }[]
  const extents = await disk.extents(0, disk.size)
  const expected: { offset: number; length: number; type: number }[] = []
  for (const x of extents) {
    const type = x.state === 'data' || x.state === 'parent' ? 0 : 3
    const last = expected[expected.length - 1]
    if (last && last.type === type) last.length += x.length
    else expected.push({ offset: x.offset, length: x.length, type })
  }
  t.same(map.map(m => ({ offset: m.offset, length: m.length, type: m.type })), expected, 'map equals extents')
  t.ok(map.some(m => m.type === 0 && m.offset <= 4 * MiB && m.offset + m.length >= 5 * MiB), 'written range is data')
  if (extents.some(x => x.state === 'zero')) {
    t.ok(map.some(m => m.type === 3 && m.offset <= 41 * MiB && m.offset + m.length >= 42 * MiB), 'discarded range is a hole')
  }
  const total = await run('nbdinfo', ['--map', '--totals', uri])
  t.match(total, /data|hole|zero/, 'nbdinfo --totals works')
})

t.test('nbdcopy both ways, over several connections', { skip: missing('nbdcopy', 'qemu-img') }, async t => {
  const dir = tempDir(t)
  const src = path.join(dir, 'src.raw')
  const data = Buffer.alloc(SIZE)
  const next = rng(99)
  for (let off = 0; off < SIZE; off += MiB) {
    if (next() < 0.5) data.fill(Math.floor(next() * 255) + 1, off, off + MiB / 2) // half the MiBs partly filled
  }
  fs.writeFileSync(src, data)
  const target = sparseFile(dir, 'target.raw', SIZE)
  const served = await serveRaw(t, target)
  await run('nbdcopy', ['--connections=4', '--requests=16', src, served.uri])
  t.ok(fs.readFileSync(target).equals(data), 'nbdcopy into the export wrote the source exactly')
  const back = path.join(dir, 'back.raw')
  await run('nbdcopy', ['--connections=4', served.uri, back])
  t.ok(fs.readFileSync(back).equals(data), 'nbdcopy out of the export reads the same bytes')
  const sums = await run('nbdcopy', ['--connections=2', served.uri, 'null:']).then(() => 'ok')
  t.equal(sums, 'ok', 'nbdcopy to null: succeeds')
})

t.test('several clients at once write disjoint regions', { skip: missing('qemu-io', 'qemu-img') }, async t => {
  const dir = tempDir(t)
  const file = sparseFile(dir, 'disk.raw', SIZE)
  const { uri, server } = await serveRaw(t, file)
  const mirror = Buffer.alloc(SIZE)
  const jobs: Promise<string>[] = []
  for (let c = 0; c < 6; c++) {
    const base = c * 8 * MiB
    const args: string[] = []
    for (let k = 0; k < 8; k++) {
      const off = base + k * MiB + 4096 * c
      args.push('-c', `aio_write -P 0x${(0x10 + c * 8 + k).toString(16)} ${off} 256k`)
      mirror.fill(0x10 + c * 8 + k, off, off + 262144)
    }
    args.push('-c', 'aio_flush')
    jobs.push(run('qemu-io', ['-f', 'raw', uri, ...args]))
  }
  await Promise.all(jobs)
  const copy = path.join(dir, 'out.raw')
  await run('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', uri, copy])
  t.ok(fs.readFileSync(copy).equals(mirror), 'all six clients\' writes landed')
  t.equal(server.connectionCount, 0, 'every connection closed')
})
