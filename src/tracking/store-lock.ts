/**
 * One writer per tracking store: `<disk>.hvcbt/lock` holds the writer's pid. Two processes writing state.json and
 * journals of one store would lose marks, so a second read-write open fails with ResourceBusy naming the holder.
 * A lock whose process no longer exists (SIGKILL, power loss) is stale and taken over: that is the crash case the
 * journal recovers from. Readers (status, changes) take no lock.
 */
import fsp from 'node:fs/promises'
import path from 'node:path'
import { AppErrorCode, EngineError } from '../engine/errors.js'

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Take the lock; `allowOwnPid` lets this process take over its own lock (tests that simulate a crash in-process). */
export async function acquireStoreLock(dir: string, diskPath: string, allowOwnPid = false): Promise<() => Promise<void>> {
  const file = path.join(dir, 'lock')
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const h = await fsp.open(file, 'wx')
      await h.writeFile(`${process.pid}\n`)
      await h.close()
      return async () => { await fsp.rm(file, { force: true }) }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
    const pid = Number.parseInt(await fsp.readFile(file, 'utf8').catch(() => ''), 10)
    const stale = !Number.isSafeInteger(pid) || pid <= 0 || !alive(pid) || (allowOwnPid && pid === process.pid)
    if (!stale) {
      throw new EngineError(`change tracking for ${diskPath} is open for writing by process ${pid} (an NBD export?); ` +
        'run the command through that engine, or stop it first', 'ResourceBusy', AppErrorCode.Busy, { diskPath, pid })
    }
    await fsp.rm(file, { force: true })
  }
  throw new EngineError(`could not take the tracking lock of ${diskPath}`, 'ResourceBusy', AppErrorCode.Busy, { diskPath })
}
