/**
 * The change-source ladder: tracking -> differencing disk -> content scan, and that every fallback is stated.
 * - a disk written outside tracking: the incremental falls back to a content scan, says why, resets tracking, and
 *   the next incremental uses tracking again (writes made through TrackedDisk, the layer the NBD export uses);
 * - a differencing VHDX whose parent was backed up: the child's first backup uses the child's allocation.
 */
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { randomBytes } from 'node:crypto'
import { createBackup } from '../../src/backup/backup.js'
import { restoreBackup } from '../../src/backup/restore.js'
import { createDisk } from '../../src/formats/create.js'
import { openDisk } from '../../src/formats/open.js'
import { openRaw } from '../../src/formats/raw/raw-disk.js'
import { TrackingStore } from '../../src/tracking/store.js'
import { TrackedDisk } from '../../src/tracking/tracked-disk.js'
import { probeDiskIdentity } from '../../src/tracking/disk-identity.js'
import { MiB, tempDir } from '../nbd/helpers.js'

async function image(file: string): Promise<Buffer> {
  const d = await openDisk(file, { readOnly: true })
  try {
    const b = Buffer.alloc(d.size)
    await d.read(0, b)
    return b
  } finally {
    await d.close()
  }
}

t.test('untrusted tracking: loud fallback to a content scan, reset, then tracking again', async t => {
  const dir = tempDir(t)
  const disk = path.join(dir, 'd.raw')
  const repo = path.join(dir, 'repo')
  fs.writeFileSync(disk, randomBytes(16 * MiB))
  await TrackingStore.enable(disk, 16 * MiB, await probeDiskIdentity(disk))
  const full = await createBackup({ diskPath: disk, repoDir: repo })
  t.ok(full.referencePoint)

  // written behind tracking's back
  await new Promise(res => setTimeout(res, 20))
  const fd = fs.openSync(disk, 'r+')
  fs.writeSync(fd, randomBytes(4096), 0, 4096, 5 * MiB)
  fs.closeSync(fd)
  const warnings: string[] = []
  const inc = await createBackup({ diskPath: disk, repoDir: repo, log: (l, m) => { if (l === 'warning') warnings.push(m) } })
  t.equal(inc.changeSource, 'content-scan')
  t.equal(inc.fellBack, true)
  t.match(inc.reasons.join('\n'), /cannot be trusted.*modified outside tracking/s, 'the reason names what happened')
  t.match(inc.reasons.join('\n'), /tracking was reset/)
  t.ok(warnings.length > 0, 'warned')
  t.equal(inc.stats.chunksChanged, 1, 'the scan finds the one changed chunk')
  t.ok(inc.referencePoint, 'a fresh reference point after the reset')

  const td = await TrackedDisk.attach(disk, await openRaw(disk))
  await td.write(9 * MiB, randomBytes(8192))
  await td.close()
  const inc2 = await createBackup({ diskPath: disk, repoDir: repo })
  t.equal(inc2.changeSource, 'tracking', `back on tracking: ${inc2.reasons.join('; ')}`)
  t.equal(inc2.stats.bytesRead, 64 * 1024, 'reads only the changed 64 KiB chunk')
  const out = path.join(dir, 'r.raw')
  await restoreBackup({ repoDir: repo, id: inc2.id, output: out })
  t.ok(fs.readFileSync(out).equals(fs.readFileSync(disk)))

  // differential after that: since the full, whose reference point is of the old generation
  const diff = await createBackup({ diskPath: disk, repoDir: repo, mode: 'differential' })
  t.equal(diff.parentId, full.id)
  t.equal(diff.changeSource, 'content-scan')
  t.match(diff.reasons.join('\n'), /reset since base backup/)
})

t.test('differencing disk: the child allocation is the change set against the parent backup', async t => {
  const dir = tempDir(t)
  const parent = path.join(dir, 'base.vhdx')
  const child = path.join(dir, 'child.avhdx')
  const repo = path.join(dir, 'repo')
  await createDisk(parent, { sizeBytes: 32 * MiB, blockSizeBytes: MiB })
  {
    const d = await openDisk(parent)
    await d.write(0, randomBytes(24 * MiB))
    await d.close()
  }
  const pfull = await createBackup({ diskPath: parent, repoDir: repo })
  await new Promise(res => setTimeout(res, 20))
  await createDisk(child, { parentPath: parent })
  {
    const d = await openDisk(child)
    await d.write(3 * MiB, randomBytes(64 * 1024))
    await d.write(20 * MiB + 4096, randomBytes(4096))
    await d.write(28 * MiB, randomBytes(MiB)) // beyond the parent's data
    await d.close()
  }
  const cb = await createBackup({ diskPath: child, repoDir: repo })
  t.equal(cb.mode, 'incremental', 'the parent backup is the base of the child')
  t.equal(cb.parentId, pfull.id)
  t.equal(cb.changeSource, 'differencing', cb.reasons.join('; '))
  t.ok(cb.stats.bytesRead <= 3 * MiB, `reads only the child's blocks (${cb.stats.bytesRead} bytes)`)
  const out = path.join(dir, 'r.vhdx')
  await restoreBackup({ repoDir: repo, id: cb.id, output: out })
  t.ok((await image(out)).equals(await image(child)), 'the restored child equals the chain')
})
