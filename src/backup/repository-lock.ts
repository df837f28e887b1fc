/**
 * The repository's writer lock: one file, `lock`, created with O_EXCL (open flag 'wx'), holding the holder's pid,
 * host name, purpose and start time as JSON. Every writer (backup, prune) takes it for its whole run, so two
 * writers never interleave and garbage collection never runs beside a backup that is still adding chunks.
 *
 * Stale locks: a lock whose host is this host and whose pid no longer runs (kill(pid, 0) -> ESRCH) was left by a
 * killed writer and is taken over (removed, then created again with O_EXCL, so two takers cannot both win). A lock
 * from another host (a repository on a share) cannot be checked; it is reported with its holder and age, and only
 * `breakLock` removes it. Readers (list, verify, restore) do not lock: every file they read is replaced atomically.
 */
import fsp from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { AppErrorCode, EngineError } from '../engine/errors.js'

export const LOCK_FILE = 'lock'

export interface LockInfo {
  /** Process id of the holder. */
  pid: number
  /** os.hostname() of the holder. */
  host: string
  /** What the holder is doing, e.g. 'backup create'. */
  purpose: string
  /** ISO time the lock was taken. */
  startedAt: string
}

export interface RepositoryLock {
  readonly info: LockInfo
  /** True when a stale lock was taken over; `staleHolder` says whose. */
  readonly tookOverStale: LockInfo | null
  release(): Promise<void>
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM' // exists, owned by someone else
  }
}

async function readLock(file: string): Promise<LockInfo | null> {
  try {
    const j = JSON.parse(await fsp.readFile(file, 'utf8')) as Partial<LockInfo>
    if (typeof j.pid !== 'number' || typeof j.host !== 'string') return null
    return { pid: j.pid, host: j.host, purpose: String(j.purpose ?? '?'), startedAt: String(j.startedAt ?? '?') }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw err
    return null // torn or garbage: the writer died while writing it (the file is tiny, written in one call)
  }
}

/** Take the lock of the repository at `dir`, or throw ResourceBusy naming the holder. */
export async function acquireLock(dir: string, purpose: string, options: { breakLock?: boolean } = {}): Promise<RepositoryLock> {
  const file = path.join(dir, LOCK_FILE)
  const info: LockInfo = { pid: process.pid, host: os.hostname(), purpose, startedAt: new Date().toISOString() }
  let tookOver: LockInfo | null = null
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const h = await fsp.open(file, 'wx')
      try {
        await h.writeFile(JSON.stringify(info))
        await h.sync()
      } finally {
        await h.close()
      }
      let released = false
      return {
        info,
        tookOverStale: tookOver,
        async release() {
          if (released) return
          released = true
          const now = await readLock(file).catch(() => null)
          if (now && now.pid === info.pid && now.host === info.host && now.startedAt === info.startedAt) {
            await fsp.rm(file, { force: true })
          }
        },
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
    let holder: LockInfo | null
    try {
      holder = await readLock(file)
    } catch {
      continue // released meanwhile: try again
    }
    const stale = holder === null
      ? (await lockAgeMs(file)) > 60_000 // unreadable for a minute: its writer died mid-write
      : holder.host === os.hostname() && !alive(holder.pid)
    if (stale || options.breakLock) {
      tookOver = holder ?? { pid: 0, host: '?', purpose: 'unreadable lock file', startedAt: '?' }
      await fsp.rm(file, { force: true })
      continue
    }
    if (holder === null) {
      throw new EngineError(`repository ${dir} is locked (the lock file is being written); try again`, 'ResourceBusy', AppErrorCode.Busy)
    }
    const where = holder.host === os.hostname() ? `process ${holder.pid}` : `process ${holder.pid} on host ${holder.host}`
    throw new EngineError(`repository ${dir} is locked by ${where} (${holder.purpose}, since ${holder.startedAt})` +
      (holder.host === os.hostname() ? '' : '; if that host is gone, pass --break-lock'),
    'ResourceBusy', AppErrorCode.Busy, { lockFile: file, holder })
  }
  throw new EngineError(`repository ${dir}: could not take the lock after 5 attempts`, 'ResourceBusy', AppErrorCode.Busy)
}

async function lockAgeMs(file: string): Promise<number> {
  try {
    return Date.now() - (await fsp.stat(file)).mtimeMs
  } catch {
    return 0
  }
}
