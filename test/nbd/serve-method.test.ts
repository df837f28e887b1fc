/**
 * nbd.serve / nbd.list / nbd.stop through the method handlers, serving raw, VHDX and VHD files made by qemu-img, with
 * qemu-io writing and qemu-img reading through the export, and the files checked by qemu-img afterwards.
 */
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { isLoopback, nbdMethods, parseListen } from '../../src/engine/methods/nbd.js'
import { listServices } from '../../src/engine/services.js'
import type { CallContext } from '../../src/engine/method.js'
import { MiB, missing, rng, run, tempDir } from './helpers.js'

const ctx: CallContext = { progress() {}, log() {}, signal: new AbortController().signal, interactive: false }
const method = (name: string) => nbdMethods.find(m => m.name === name)!
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const call = (name: string, params: any) => method(name).handler(params, ctx) as Promise<any>

t.test('parseListen and isLoopback', async t => {
  t.same(parseListen('127.0.0.1:10809'), { host: '127.0.0.1', port: 10809 })
  t.same(parseListen('[::1]:99'), { host: '::1', port: 99 })
  t.same(parseListen('localhost'), { host: 'localhost', port: 10809 })
  t.same(parseListen(':0'), { host: '127.0.0.1', port: 0 })
  t.same(parseListen('12345'), { host: '127.0.0.1', port: 12345 })
  t.throws(() => parseListen('1.2.3.4:99999'), /out of range/)
  t.throws(() => parseListen('a:b:c'), /not host:port/)
  t.ok(isLoopback('127.0.0.1') && isLoopback('127.1.2.3') && isLoopback('::1') && isLoopback('localhost'))
  t.notOk(isLoopback('0.0.0.0') || isLoopback('10.0.0.1') || isLoopback('::'))
})

t.test('non-loopback listen needs allowRemote', async t => {
  const dir = tempDir(t)
  const file = path.join(dir, 'a.raw')
  fs.writeFileSync(file, Buffer.alloc(MiB))
  await t.rejects(call('nbd.serve', { disk: file, listen: '0.0.0.0:0' }), /--allow-remote/)
  const r = await call('nbd.serve', { disk: file, listen: '0.0.0.0:0', allowRemote: true, readOnly: true })
  t.match(r.listen, /^0\.0\.0\.0:\d+$/)
  await call('nbd.stop', { id: r.id })
  await t.rejects(call('nbd.stop', { id: r.id }), /no NBD export/)
  await t.rejects(call('nbd.serve', { disk: path.join(dir, 'missing.raw'), listen: '127.0.0.1:0' }), { code: 'ENOENT' })
})

/** Serve `file`, write scattered patterns with qemu-io, read back with qemu-img convert, stop; returns the mirror. */
async function roundTrip(t: Tap, file: string, format: string, size: number, seed: number): Promise<Buffer> {
  const r = await call('nbd.serve', { disk: file, listen: '127.0.0.1:0', name: `e-${format}` })
  t.equal(r.sizeBytes, size, `${format}: size`)
  t.equal(r.readOnly, false)
  t.match(r.uri, new RegExp(`^nbd://127\\.0\\.0\\.1:\\d+/e-${format}$`))
  const listed = (await call('nbd.list', {})) as { id: string }[]
  t.ok(listed.some(x => x.id === r.id), 'nbd.list shows it')
  t.ok(listServices().some(s => s.id === r.id && s.kind === 'nbd'), 'registered as a service')
  const mirror = Buffer.alloc(size)
  const next = rng(seed)
  const args: string[] = []
  for (let i = 0; i < 24; i++) {
    const len = (1 + Math.floor(next() * 32)) * 4096
    const off = Math.floor(next() * ((size - len) / 4096)) * 4096
    const pat = 1 + Math.floor(next() * 254)
    args.push('-c', `write -P ${pat} ${off} ${len}`)
    mirror.fill(pat, off, off + len)
  }
  args.push('-c', `write -z ${2 * MiB} 512k`, '-c', 'flush')
  mirror.fill(0, 2 * MiB, 2 * MiB + 524288)
  await run('qemu-io', ['-f', 'raw', r.uri, ...args])
  const out = path.join(path.dirname(file), `out-${format}.raw`)
  await run('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', r.uri, out])
  t.ok(fs.readFileSync(out).equals(mirror), `${format}: read back through the export equals what was written`)
  if (!missing('nbdinfo')) {
    const map = JSON.parse(await run('nbdinfo', ['--json', '--map', r.uri])) as { offset: number; length: number; type: number }[]
    // every byte written non-zero must lie in a range base:allocation reports as data (type 0 or 2)
    let wrong = 0
    for (const m of map) {
      if (m.type & 1 && m.type & 2) {
        for (let i = m.offset; i < m.offset + m.length; i += 4096) if (mirror[i] !== 0) wrong++
      }
    }
    t.equal(wrong, 0, `${format}: no written data inside a reported hole`)
  }
  await call('nbd.stop', { id: r.id })
  t.notOk(listServices().some(s => s.id === r.id), 'service gone after stop')
  return mirror
}

type Tap = Parameters<Parameters<typeof t.test>[1]>[0]

t.test('raw, VHDX and VHD exports round-trip with qemu-io and qemu-img', { skip: missing('qemu-img', 'qemu-io') }, async t => {
  const dir = tempDir(t)
  const size = 32 * MiB
  const raw = path.join(dir, 'd.raw')
  await run('qemu-img', ['create', '-f', 'raw', raw, String(size)])
  const rawMirror = await roundTrip(t, raw, 'raw', size, 1)
  t.ok(fs.readFileSync(raw).equals(rawMirror), 'raw file holds the data')

  const vhdx = path.join(dir, 'd.vhdx')
  await run('qemu-img', ['create', '-f', 'vhdx', '-o', 'subformat=dynamic,block_size=1M', vhdx, String(size)])
  const vhdxMirror = await roundTrip(t, vhdx, 'vhdx', size, 2)
  const vhdxOut = path.join(dir, 'check-vhdx.raw')
  await run('qemu-img', ['convert', '-f', 'vhdx', '-O', 'raw', vhdx, vhdxOut])
  t.ok(fs.readFileSync(vhdxOut).equals(vhdxMirror), 'qemu-img reads the same data from the VHDX file')
  await run('qemu-img', ['check', '-f', 'vhdx', vhdx]).then(() => t.pass('qemu-img check accepts the VHDX'), err => t.fail(String(err)))

  const vhd = path.join(dir, 'd.vhd')
  await run('qemu-img', ['create', '-f', 'vpc', '-o', 'subformat=dynamic,force_size=on', vhd, String(size)])
  const vhdMirror = await roundTrip(t, vhd, 'vhd', size, 3)
  const vhdOut = path.join(dir, 'check-vhd.raw')
  await run('qemu-img', ['convert', '-f', 'vpc', '-O', 'raw', vhd, vhdOut])
  t.ok(fs.readFileSync(vhdOut).subarray(0, size).equals(vhdMirror), 'qemu-img reads the same data from the VHD file')
})

t.test('base:allocation of a VHDX is its allocated blocks', { skip: missing('qemu-img', 'qemu-io', 'nbdinfo') }, async t => {
  const dir = tempDir(t)
  const vhdx = path.join(dir, 'm.vhdx')
  await run('qemu-img', ['create', '-f', 'vhdx', '-o', 'subformat=dynamic,block_size=1M', vhdx, String(16 * MiB)])
  await run('qemu-io', ['-f', 'vhdx', vhdx, '-c', `write -P 1 ${3 * MiB} 64k`, '-c', `write -P 2 ${9 * MiB} 2M`])
  const r = await call('nbd.serve', { disk: vhdx, listen: '127.0.0.1:0', readOnly: true })
  t.teardown(() => call('nbd.stop', { id: r.id }))
  const map = JSON.parse(await run('nbdinfo', ['--json', '--map', r.uri])) as { offset: number; length: number; type: number }[]
  const dataOf = (ranges: [number, number][]) => {
    const merged: [number, number][] = []
    for (const [o, l] of ranges) {
      const last = merged[merged.length - 1]
      if (last && last[0] + last[1] === o) last[1] += l
      else merged.push([o, l])
    }
    return merged
  }
  const ours = dataOf(map.filter(m => (m.type & 1) === 0).map(m => [m.offset, m.length]))
  // qemu-img map cannot serve as the reference (its VHDX driver reports everything as data); the writes above
  // allocate exactly the 1 MiB payload blocks they touch
  t.same(ours, [[3 * MiB, MiB], [9 * MiB, 2 * MiB]], 'allocated ranges are the written 1 MiB blocks')
  t.ok(map.filter(m => m.type & 1).every(m => (m.type & 2) !== 0), 'holes read as zeros')
  t.ok(ours.length >= 2, 'both written blocks are allocated')
})
