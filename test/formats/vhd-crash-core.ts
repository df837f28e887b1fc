/**
 * Crash trials for VHD writes, shared by the in-suite run (vhd-crash.test.ts) and the long run
 * (test/long/vhd-crash.mjs).
 *
 * A trial creates a dynamic VHD (or a differencing child of a patterned dynamic parent), starts a writer process
 * (vhd-crash-writer.ts, bundled) that issues a deterministic sequence of writes and zeroings, flushing every few
 * operations and printing "w <i>" before operation i and "f <i>" after a flush that covered it; SIGKILLs it a
 * random time after it reports ready; then requires that
 *   1. the file opens read-write (which repairs a torn end footer) and closes,
 *   2. checkDisk reports no errors,
 *   3. every sector reads as the model says after the last completed flush, except sectors touched by operations
 *      issued after it (those may hold the old or the new bytes).
 */
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { checkDisk } from '../../src/formats/check.js'
import { openDisk } from '../../src/formats/open.js'
import { createVhd } from '../../src/formats/vhd/vhd-create.js'
import { xorshift32 } from '../helpers/prng.js'

export const CRASH_DISK_BYTES = 24 * 1024 * 1024

export interface CrashOp {
  kind: 'write' | 'zero'
  offset: number
  length: number
  fill: number
}

/** The i-th operation of the sequence for `seed` (pure: the writer and the checker agree). */
export function* crashOps(seed: number): Generator<CrashOp> {
  const r = xorshift32(seed)
  for (let i = 0; ; i++) {
    const zero = r() < 0.12
    const length = (1 + Math.floor(r() * (zero ? 8192 : 512))) * 512
    const offset = Math.floor((r() * (CRASH_DISK_BYTES - length)) / 512) * 512
    yield { kind: zero ? 'zero' : 'write', offset, length, fill: (i % 251) + 1 }
  }
}

/** The parent's content in differencing trials: every byte 0xA0 in the first 8 MiB. */
export function parentByte(offset: number): number {
  return offset < 8 * 1024 * 1024 ? 0xa0 : 0
}

export async function makeTrialDisk(dir: string, differencing: boolean): Promise<string> {
  if (!differencing) {
    const p = join(dir, 'crash.vhd')
    await createVhd(p, { sizeBytes: CRASH_DISK_BYTES, type: 'dynamic' })
    return p
  }
  const parent = join(dir, 'parent.vhd')
  await createVhd(parent, { sizeBytes: CRASH_DISK_BYTES, type: 'dynamic' })
  const d = await openDisk(parent)
  await d.write(0, Buffer.alloc(8 * 1024 * 1024, 0xa0))
  await d.close()
  const child = join(dir, 'crash-child.vhd')
  await createVhd(child, { type: 'differencing', parentPath: parent })
  return child
}

export interface CrashTrialResult {
  /** null when every requirement holds, else what went wrong. */
  problem: string | null
  /** Operations covered by the last completed flush, and operations started, before the kill. */
  flushedOps: number
  startedOps: number
}

export async function crashTrial(writerBundle: string, dir: string, seed: number, differencing: boolean, killAfterMs: number): Promise<CrashTrialResult> {
  let lastFlushed = -1
  let lastStarted = -1
  const problem = await runTrial(writerBundle, dir, seed, differencing, killAfterMs, (f, s) => {
    lastFlushed = f
    lastStarted = s
  })
  return { problem, flushedOps: lastFlushed + 1, startedOps: lastStarted + 1 }
}

async function runTrial(writerBundle: string, dir: string, seed: number, differencing: boolean, killAfterMs: number, report: (flushed: number, started: number) => void): Promise<string | null> {
  const disk = await makeTrialDisk(dir, differencing)
  let lastFlushed = -1
  let lastStarted = -1
  const child = spawn(process.execPath, [writerBundle, disk, String(seed)], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', d => (stderr += d))
  let pending = ''
  let onReady: () => void = () => undefined
  const ready = new Promise<void>(resolve => (onReady = resolve))
  child.stdout.on('data', (d: Buffer) => {
    pending += d.toString('latin1')
    const lines = pending.split('\n')
    pending = lines.pop()!
    for (const line of lines) {
      const [k, n] = line.split(' ')
      if (k === 'ready') onReady()
      else if (k === 'w') lastStarted = Number(n)
      else if (k === 'f') lastFlushed = Number(n)
    }
  })
  // 'close', not 'exit': the lines the writer put in the pipe before it died must all be read, or operations it
  // started would be missing from the model.
  const exited = new Promise<number | null>(resolve => child.on('close', code => resolve(code)))
  await Promise.race([ready, exited, new Promise(r => setTimeout(r, 10000))])
  await new Promise(r => setTimeout(r, killAfterMs))
  child.kill('SIGKILL')
  const code = await exited
  report(lastFlushed, lastStarted)
  if (code !== null && code !== 0) return `writer failed (exit ${code}): ${stderr}`

  try {
    const rw = await openDisk(disk)
    await rw.close()
  } catch (err) {
    return `seed ${seed}: reopen failed after ${lastFlushed + 1} flushed ops: ${(err as Error).message}`
  }
  const check = await checkDisk(disk)
  if (check.status !== 'clean') return `seed ${seed}: check ${check.status}: ${check.problems.map(p => `${p.structure}@${p.offset}: ${p.message}`).join('; ')}`

  // Model: the state after operation `lastFlushed`; sectors touched later are uncertain.
  const size = CRASH_DISK_BYTES
  const model = Buffer.alloc(size)
  if (differencing) model.fill(0xa0, 0, 8 * 1024 * 1024)
  const uncertain = new Uint8Array(size / 512)
  let i = 0
  for (const op of crashOps(seed)) {
    if (i > lastStarted + 1) break
    if (i <= lastFlushed) {
      if (op.kind === 'write') model.fill(op.fill, op.offset, op.offset + op.length)
      else model.fill(0, op.offset, op.offset + op.length)
    } else uncertain.fill(1, op.offset / 512, (op.offset + op.length) / 512)
    i++
  }
  const d = await openDisk(disk, { readOnly: true })
  const got = Buffer.alloc(size)
  try {
    await d.read(0, got)
  } finally {
    await d.close()
  }
  for (let s = 0; s < size / 512; s++) {
    if (uncertain[s]) continue
    if (!got.subarray(s * 512, s * 512 + 512).equals(model.subarray(s * 512, s * 512 + 512))) {
      return `seed ${seed}: sector ${s} differs from the model after ${lastFlushed + 1} flushed ops (read ${got[s * 512]}, expected ${model[s * 512]})`
    }
  }
  return null
}
