// Tracking methods in-process, and the Done-when interop: a tracked NBD export written by qemu-io, read back by
// nbdinfo --map=qemu:dirty-bitmap:<id> and by tracking.changes, which must agree with what was written.
import t from 'tap'
import { execFile } from 'node:child_process'
import fsp from 'node:fs/promises'
import path from 'node:path'
import { promisify } from 'node:util'
import type { CallContext } from '../../src/engine/method.js'
import { findMethod } from '../../src/engine/registry.js'
import { getCheckpointView } from '../../src/engine/methods/tracking.js'
import { stopService } from '../../src/engine/services.js'
import { tempDir } from './helpers.js'

const run = promisify(execFile)
const ctx: CallContext = { progress() {}, log() {}, signal: new AbortController().signal, interactive: false }
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const call = (name: string, params: any): Promise<any> => findMethod(name)!.handler(params, ctx)
const KiB = 1024
const MiB = 1024 * KiB

async function have(tool: string): Promise<boolean> {
  try {
    await run('which', [tool])
    return true
  } catch {
    return false
  }
}

t.test('enable, refpoints, changes, status, reset, disable without an export', async t => {
  const dir = await tempDir()
  t.teardown(() => fsp.rm(dir, { recursive: true, force: true }))
  const disk = path.join(dir, 'd.raw')
  await fsp.writeFile(disk, '')
  await fsp.truncate(disk, 32 * MiB)
  const st = await call('tracking.enable', { disk, granularity: '128K' })
  t.equal(st.granularityBytes, 128 * KiB)
  t.equal(st.trusted, true)
  await t.rejects(call('tracking.enable', { disk }), { category: 'ResourceExists' })
  const rp = await call('tracking.refpoint.create', { disk })
  t.match(rp.id, /^rp-/)
  t.same((await call('tracking.refpoint.list', { disk })).map((r: { id: string }) => r.id), [rp.id])
  const none = await call('tracking.changes', { disk, since: rp.id })
  t.equal(none.rangeCount, 0)
  t.match(findMethod('tracking.changes')!.cli!.human!(none, { disk, since: rp.id }), /0 range\(s\)/)
  // a write outside tracking: detected
  const fh = await fsp.open(disk, 'r+')
  await fh.write(Buffer.from('hello'), 0, 5, 4096)
  await fh.close()
  const bad = await call('tracking.status', { disk })
  t.equal(bad.trusted, false)
  t.match(bad.untrustedReason, /outside tracking/)
  await t.rejects(call('tracking.changes', { disk, since: rp.id }), { category: 'InvalidData' })
  const reset = await call('tracking.reset', { disk })
  t.equal(reset.trusted, true)
  t.equal(reset.refPoints.length, 0)
  t.same(await call('tracking.disable', { disk }), { diskPath: disk, disabled: true })
  await t.rejects(call('tracking.status', { disk }), { category: 'ObjectNotFound' })
})

t.test('content scan finds changed blocks and verifies tracking', async t => {
  const dir = await tempDir()
  t.teardown(() => fsp.rm(dir, { recursive: true, force: true }))
  const disk = path.join(dir, 'd.raw')
  await fsp.writeFile(disk, '')
  await fsp.truncate(disk, 8 * MiB)
  await call('tracking.enable', { disk })
  const rp = await call('tracking.refpoint.create', { disk })
  const first = await call('tracking.scan', { disk, refpoint: rp.id })
  t.equal(first.changedBytes, null)
  t.equal(first.blocks, 128)
  const fh = await fsp.open(disk, 'r+')
  await fh.write(Buffer.from('x'), 0, 1, 3 * MiB + 5)
  await fh.close()
  const second = await call('tracking.scan', { disk, save: false })
  t.same(second.ranges, [{ offset: 3 * MiB, length: 64 * KiB }])
  // the write bypassed tracking: the store is untrusted, so verify fails loudly rather than passing
  await t.rejects(call('tracking.scan', { disk, verify: true, save: false }), { category: 'InvalidData' })
})

t.test('tracked NBD export: qemu-io writes, nbdinfo dirty-bitmap map and tracking.changes agree', async t => {
  for (const tool of ['qemu-io', 'nbdinfo', 'qemu-img']) {
    if (!(await have(tool))) return t.skip(`${tool} not installed`)
  }
  const dir = await tempDir()
  t.teardown(() => fsp.rm(dir, { recursive: true, force: true }))
  const disk = path.join(dir, 'd.raw')
  await fsp.writeFile(disk, '')
  await fsp.truncate(disk, 64 * MiB)
  await call('tracking.enable', { disk })
  const exp = await call('nbd.serve', { disk, listen: '127.0.0.1:0' })
  let stopped = false
  t.teardown(async () => { if (!stopped) await stopService(exp.id) })
  const rp = await call('tracking.refpoint.create', { disk })
  await run('qemu-io', ['-f', 'raw', exp.uri,
    '-c', 'write -P 0xab 1M 4k', '-c', 'write -P 0xcd 20M 100k', '-c', 'write -z 40M 64k', '-c', 'discard 50M 128k'])
  const expected = [
    { offset: 1 * MiB, length: 64 * KiB },
    { offset: 20 * MiB, length: 128 * KiB },
    { offset: 40 * MiB, length: 64 * KiB },
    { offset: 50 * MiB, length: 128 * KiB },
  ]
  const changes = await call('tracking.changes', { disk, since: rp.id })
  t.same(changes.ranges, expected, 'tracking.changes (live store) reports exactly the written granules')

  // What a CLI in another process sees (no access to the live store): exact once the idle checkpoint ran.
  await new Promise(res => setTimeout(res, 1200))
  const { TrackingStore } = await import('../../src/tracking/store.js')
  const other = await TrackingStore.open(disk, { readOnly: true })
  t.same(await other.changedRanges(rp.id), expected, 'a reader in another process gets the same ranges')
  t.equal(other.status().openElsewhereOrCrashed, true)
  await other.close()

  const { stdout } = await run('nbdinfo', ['--json', `--map=qemu:dirty-bitmap:${rp.id}`, exp.uri])
  const map = JSON.parse(stdout) as Array<{ offset: number; length: number; type: number }>
  const dirty = map.filter(e => e.type & 1).map(e => ({ offset: e.offset, length: e.length }))
  t.same(dirty, expected, 'nbdinfo --map=qemu:dirty-bitmap reports the same ranges')
  t.equal(map.reduce((n, e) => n + e.length, 0), 64 * MiB, 'the map covers the whole disk')

  const zeroFiltered = await call('tracking.changes', { disk, since: rp.id, skipZeroes: true })
  t.same(zeroFiltered.ranges, expected.slice(0, 2), 'zeroed and discarded granules are filtered out')

  // A checkpoint on the live export: later writes don't show in its view.
  const before = await fsp.readFile(disk)
  const cp = await call('tracking.refpoint.create', { disk, checkpoint: true })
  t.equal(cp.checkpoint, true)
  await run('qemu-io', ['-f', 'raw', exp.uri, '-c', 'write -P 0x11 1M 64k', '-c', 'write -P 0x22 33M 1M'])
  const view = getCheckpointView(cp.id)!
  const seen = new Uint8Array(64 * MiB)
  await view.read(0, seen)
  t.ok(Buffer.from(seen).equals(before), 'the checkpoint view is the image at its reference point')
  t.same((await call('tracking.changes', { disk, since: cp.id })).ranges,
    [{ offset: MiB, length: 64 * KiB }, { offset: 33 * MiB, length: MiB }])
  t.same(await call('tracking.checkpoint.close', { disk, id: cp.id }), { id: cp.id, closed: true })
  t.equal(getCheckpointView(cp.id), undefined)
  const changed = [...expected, { offset: 33 * MiB, length: MiB }].sort((a, b) => a.offset - b.offset)

  const out = path.join(dir, 'out.raw')
  await run('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', exp.uri, out])
  t.ok((await fsp.readFile(out)).equals(await fsp.readFile(disk)), 'qemu-img convert reads what was written')

  await stopService(exp.id)
  stopped = true
  const after = await call('tracking.changes', { disk, since: rp.id })
  t.same(after.ranges, changed, 'after the export stops, the persisted store gives the same answer')
  const st = await call('tracking.status', { disk })
  t.equal(st.trusted, true)
  t.equal(st.openElsewhereOrCrashed, false)
})

t.test('tracked VHDX export: our own writes keep trust, a write outside tracking breaks it', async t => {
  if (!(await have('qemu-io'))) return t.skip('qemu-io not installed')
  const { createDisk } = await import('../../src/formats/create.js')
  const dir = await tempDir()
  t.teardown(() => fsp.rm(dir, { recursive: true, force: true }))
  const disk = path.join(dir, 'd.vhdx')
  await createDisk(disk, { format: 'vhdx', type: 'dynamic', sizeBytes: 64 * MiB })
  await call('tracking.enable', { disk })
  const rp = await call('tracking.refpoint.create', { disk })
  const exp = await call('nbd.serve', { disk, listen: '127.0.0.1:0' })
  await run('qemu-io', ['-f', 'raw', exp.uri, '-c', 'write -P 0x42 5M 8k'])
  await stopService(exp.id)
  const st = await call('tracking.status', { disk })
  t.equal(st.trusted, true, `trusted after our own writes (${st.untrustedReason})`)
  t.same((await call('tracking.changes', { disk, since: rp.id })).ranges, [{ offset: 5 * MiB, length: 64 * KiB }])
  // now write the VHDX directly (qemu-io on the file): a new DataWriteGuid
  await run('qemu-io', ['-f', 'vhdx', '-c', 'write -P 0x43 9M 4k', disk])
  const bad = await call('tracking.status', { disk })
  t.equal(bad.trusted, false)
  t.match(bad.untrustedReason, /DataWriteGuid/)
})

t.test('import: a differencing child and a content-scan diff feed the same store and queries', async t => {
  const { createDisk } = await import('../../src/formats/create.js')
  const { openDisk } = await import('../../src/formats/open.js')
  const dir = await tempDir()
  t.teardown(() => fsp.rm(dir, { recursive: true, force: true }))
  const disk = path.join(dir, 'base.vhdx')
  const child = path.join(dir, 'child.avhdx')
  await createDisk(disk, { format: 'vhdx', type: 'dynamic', sizeBytes: 64 * MiB })
  await call('tracking.enable', { disk })
  const rp = await call('tracking.refpoint.create', { disk })
  await createDisk(child, { format: 'vhdx', type: 'differencing', parentPath: disk })
  const d = await openDisk(child)
  await d.write(7 * MiB, new Uint8Array(4096).fill(1))
  await d.close()
  await t.rejects(call('tracking.import', { disk }), { category: 'InvalidArgument' })
  const r = await call('tracking.import', { disk, fromDifferencing: child })
  t.equal(r.importedBytes, 4096)
  t.same((await call('tracking.changes', { disk, since: rp.id })).ranges, [{ offset: 7 * MiB, length: 64 * KiB }])
  await t.rejects(call('tracking.import', { disk, fromScan: true }), { category: 'InvalidOperation' }, 'no scan yet')
})
