// The engine's own writes to a tracked disk are tracked (src/tracking/open-for-write.ts): `hvcbt vhd write` keeps tracking trusted and exact.
import t from 'tap'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { runHvcbt } from '../helpers/engine.js'

const json = (args: string[]) => {
  const r = runHvcbt([...args, '--json'])
  if (r.status !== 0) throw new Error(`hvcbt ${args.join(' ')}: ${r.stderr}`)
  return JSON.parse(r.stdout)
}

t.test('vhd write on a tracked VHDX is recorded by tracking', async t => {
  const dir = mkdtempSync(path.join(tmpdir(), 'hvcbt-access-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const disk = path.join(dir, 'd.vhdx')
  json(['vhd', 'create', disk, '--size', '256M'])
  json(['tracking', 'enable', disk])
  const rp = json(['tracking', 'refpoint', 'create', disk]).id
  const input = path.join(dir, 'in.bin')
  writeFileSync(input, Buffer.alloc(70_000, 0x5a))
  json(['vhd', 'write', disk, '--offset', '10M', '--input', input])
  json(['vhd', 'write', disk, '--offset', '200M', '--input', input])
  const changes = json(['tracking', 'changes', disk, '--since', rp])
  t.same(changes.ranges, [
    { offset: 10 * 2 ** 20, length: 2 * 65536 },
    { offset: 200 * 2 ** 20, length: 2 * 65536 },
  ], 'exactly the written granules')
  t.equal(json(['tracking', 'status', disk]).trusted, true, 'tracking stays trusted after the engine wrote the disk')
})

t.test('vhd write on an untracked disk is a plain write', async t => {
  const dir = mkdtempSync(path.join(tmpdir(), 'hvcbt-access-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const disk = path.join(dir, 'u.vhdx')
  json(['vhd', 'create', disk, '--size', '64M'])
  const input = path.join(dir, 'in.bin')
  writeFileSync(input, Buffer.alloc(4096, 1))
  t.equal(json(['vhd', 'write', disk, '--offset', '0', '--input', input]).bytesWritten, 4096)
  const st = runHvcbt(['tracking', 'status', disk, '--json'])
  t.not(st.status, 0, 'no tracking store was created by the write')
})
