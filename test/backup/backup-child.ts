// Child process of interrupted.test.ts: runs one backup, printing "chunk <n>" after each chunk so the parent can
// SIGKILL it at a known point. Usage: node --import <tap ts loader> backup-child.ts <disk> <repo>
import { createBackup } from '../../src/backup/backup.js'

const [disk, repo] = process.argv.slice(2)
const r = await createBackup({
  diskPath: disk!, repoDir: repo!, concurrency: 1,
  onChunk: i => { process.stdout.write(`chunk ${i}\n`) },
})
process.stdout.write(`done ${r.id}\n`)
