// Backups taken within the same second keep their order: the base of an incremental is the newest backup.
import t from 'tap'
import fs from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { createBackup } from '../../src/backup/backup.js'
import { Repository } from '../../src/backup/repository.js'

t.test('several backups in one second list oldest first and chain to the newest', async t => {
  const dir = fs.mkdtempSync(path.join(tmpdir(), 'hvcbt-order-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const disk = path.join(dir, 'd.raw')
  const repoDir = path.join(dir, 'repo')
  fs.writeFileSync(disk, Buffer.alloc(2 * 1024 * 1024, 7))
  const ids: string[] = []
  const parents: Array<string | null> = []
  for (let i = 0; i < 6; i++) {
    const r = await createBackup({ diskPath: disk, repoDir })
    ids.push(r.id)
  }
  const repo = await Repository.open(repoDir)
  const { manifests } = await repo.listManifests()
  for (const m of manifests) parents.push(m.parentId)
  t.same(manifests.map(m => m.id), ids, 'listed in the order they were taken')
  t.same(parents, [null, ...ids.slice(0, -1)], 'each incremental is based on the backup just before it')
})
