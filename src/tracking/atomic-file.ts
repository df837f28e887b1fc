/**
 * Crash-safe file replacement: write a temporary file in the same directory, fsync it, rename it over the target,
 * then fsync the directory so the rename itself is durable. After a crash the target holds either the old or the
 * new content, never a mix; a leftover temporary (name ends in `.tmp`) is ignored and removed by cleanTemporaries.
 */
import fsp from 'node:fs/promises'
import path from 'node:path'
import { randomBytes } from 'node:crypto'

/** fsync a directory so renames and unlinks inside it are durable (no-op where directories cannot be opened). */
export async function fsyncDir(dir: string): Promise<void> {
  let h: fsp.FileHandle | undefined
  try {
    h = await fsp.open(dir, 'r')
    await h.sync()
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code !== 'EISDIR' && code !== 'EPERM' && code !== 'EINVAL') throw err
  } finally {
    await h?.close()
  }
}

/** Write `data` to `file` atomically. `syncDir: false` lets a caller batch several files under one directory fsync. */
export async function writeFileAtomic(file: string, data: Uint8Array | string, syncDir = true): Promise<void> {
  const tmp = `${file}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`
  const h = await fsp.open(tmp, 'w')
  try {
    await h.writeFile(data)
    await h.sync()
  } finally {
    await h.close()
  }
  try {
    await fsp.rename(tmp, file)
  } catch (err) {
    await fsp.rm(tmp, { force: true })
    throw err
  }
  if (syncDir) await fsyncDir(path.dirname(file))
}

/** Remove temporaries left by a crash in the middle of writeFileAtomic. */
export async function cleanTemporaries(dir: string): Promise<void> {
  for (const name of await fsp.readdir(dir)) {
    if (name.endsWith('.tmp')) await fsp.rm(path.join(dir, name), { force: true })
  }
}
