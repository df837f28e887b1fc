/**
 * The header update rules: a read-only open (and a read-write open without writes) changes nothing; the first
 * write of a session sets a new FileWriteGuid, DataWriteGuid and LogGuid in both slots with higher sequence
 * numbers; a clean close leaves LogGuid = 0; a metadata-only change keeps DataWriteGuid.
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { createVhdx } from '../../../src/formats/vhdx/vhdx-create.js'
import { GUID_ZERO, decodeHeader, validateHeader } from '../../../src/formats/vhdx/vhdx-layout.js'
import { openVhdx } from '../../../src/formats/vhdx/vhdx-open.js'
import { tempDir } from './helpers.js'

const MiB = 1024 * 1024

function headers(path: string) {
  const b = readFileSync(path)
  return [64 * 1024, 128 * 1024].map(at => {
    const img = b.subarray(at, at + 4096)
    return { valid: validateHeader(img).length === 0, ...decodeHeader(img) }
  })
}

function current(path: string) {
  const [a, b] = headers(path)
  return a!.sequenceNumber > b!.sequenceNumber ? a! : b!
}

t.test('header GUID and sequence rules', async t => {
  const dir = tempDir(t)
  const p = join(dir, 'h.vhdx')
  await createVhdx(p, { sizeBytes: 16 * MiB, type: 'dynamic', blockSizeBytes: MiB })
  const original = readFileSync(p)
  const h0 = current(p)
  t.equal(h0.logGuid, GUID_ZERO)

  const ro = await openVhdx(p, { readOnly: true })
  await ro.read(0, new Uint8Array(MiB))
  await t.rejects(ro.write(0, new Uint8Array(512)), /read-only/)
  await ro.close()
  const rw = await openVhdx(p, {})
  await rw.read(0, new Uint8Array(4096))
  await rw.flush()
  await rw.close()
  t.ok(readFileSync(p).equals(original), 'read-only and write-less read-write opens change no byte')

  const w = await openVhdx(p, {})
  await w.write(0, new Uint8Array(4096).fill(1))
  const mid = headers(p)
  t.ok(mid.every(h => h.valid), 'both slots valid during the session')
  t.ok(mid.every(h => h.fileWriteGuid !== h0.fileWriteGuid && h.dataWriteGuid !== h0.dataWriteGuid && h.logGuid !== GUID_ZERO), 'both slots carry the new GUIDs')
  t.ok(mid.every(h => h.sequenceNumber > h0.sequenceNumber), 'sequence numbers grow')
  const session = current(p)
  await w.write(MiB, new Uint8Array(4096).fill(2))
  t.equal(current(p).dataWriteGuid, session.dataWriteGuid, 'DataWriteGuid changes once per session')
  await w.close()
  const h1 = current(p)
  t.equal(h1.logGuid, GUID_ZERO, 'clean close: LogGuid = 0')
  t.equal(h1.fileWriteGuid, session.fileWriteGuid)
  t.equal(h1.dataWriteGuid, session.dataWriteGuid)
  t.ok(headers(p).every(h => h.valid && h.logGuid === GUID_ZERO))

  // Metadata-only change (parent locator rewrite) keeps DataWriteGuid; a following data write changes it.
  const c = join(dir, 'c.avhdx')
  await createVhdx(c, { sizeBytes: 16 * MiB, type: 'differencing', blockSizeBytes: MiB, parent: { path: p, dataWriteGuid: h1.dataWriteGuid, logicalSectorSize: 512, relativePath: 'h.vhdx' } })
  const c0 = current(c)
  const cd = await openVhdx(c, { withoutParent: true })
  await cd.rewriteParentLocator([['parent_linkage', `{${h1.dataWriteGuid}}`], ['relative_path', 'moved\\h.vhdx']])
  t.equal(current(c).dataWriteGuid, c0.dataWriteGuid, 'metadata-only change keeps DataWriteGuid')
  t.not(current(c).fileWriteGuid, c0.fileWriteGuid, 'but sets a new FileWriteGuid')
  await cd.write(0, new Uint8Array(512).fill(3))
  t.not(current(c).dataWriteGuid, c0.dataWriteGuid, 'a data write then changes DataWriteGuid')
  await cd.close()
  const again = await openVhdx(c, { readOnly: true, withoutParent: true })
  t.equal(again.structure.parentLocator?.entries.get('relative_path'), 'moved\\h.vhdx')
  await again.close()
})
