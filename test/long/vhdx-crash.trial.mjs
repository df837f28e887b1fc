// One crash trial, shared by test/formats/vhdx/vhdx-crash.test.ts (a handful) and test/long/vhdx-crash.mjs (>= 200):
// create a dynamic VHDX, let the child write, SIGKILL it after `killAfterMs`, then open the file read-write (which
// replays the log), check every byte that only operations before the last reported flush touched, run checkVhdx and
// `qemu-img check`.
import { spawn, spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { CRASH_BLOCK_SIZE, CRASH_DISK_SIZE, genOps } from './vhdx-crash.child.mjs'

const childScript = fileURLToPath(new URL('./vhdx-crash.child.mjs', import.meta.url))

/**
 * Returns { flushed, started, finished, log: 'clean' | 'guid-only' | 'replayed', problems: string[] } (problems empty =
 * the trial passed).
 */
export async function crashTrial({ bundle, dir, seed, killAfterMs, qemu = true }) {
  const { createVhdx, openVhdx, checkVhdx } = await import(pathToFileURL(bundle).href)
  const disk = join(dir, `crash-${seed}.vhdx`)
  await createVhdx(disk, { sizeBytes: CRASH_DISK_SIZE, type: 'dynamic', blockSizeBytes: CRASH_BLOCK_SIZE })
  const child = spawn(process.execPath, [childScript, bundle, disk, String(seed)], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout.on('data', b => (out += b))
  child.stderr.on('data', b => (err += b))
  // 'close', not 'exit': 'exit' can come before the last stdout chunks are delivered, and a truncated report would
  // make operations that really ran look as if they never started.
  const exited = new Promise(res => child.on('close', (code, signal) => res({ code, signal })))
  await new Promise(res => {
    const onData = () => {
      if (out.includes('READY')) {
        child.stdout.off('data', onData)
        res()
      }
    }
    child.stdout.on('data', onData)
    child.on('exit', res)
  })
  const timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs)
  const { code, signal } = await exited
  clearTimeout(timer)
  const problems = []
  if (signal !== 'SIGKILL' && code !== 0) problems.push(`child failed (code ${code}): ${err.slice(0, 2000)}`)
  let flushed = 0
  let started = -1
  for (const line of out.split('\n')) {
    if (line.startsWith('F ')) flushed = Number(line.slice(2))
    else if (line.startsWith('S ')) started = Number(line.slice(2))
  }
  const ops = genOps(seed)
  // Expected contents after the durable operations; sectors touched later may hold anything they wrote.
  const expected = Buffer.alloc(CRASH_DISK_SIZE)
  for (const op of ops.slice(0, flushed)) expected.fill(op.kind === 'write' ? op.fill : 0, op.offset, op.offset + op.length)
  const tainted = new Uint8Array(CRASH_DISK_SIZE / 512)
  for (const op of ops.slice(flushed, started + 1)) tainted.fill(1, op.offset / 512, (op.offset + op.length) / 512)
  // Before opening: was the log live (LogGuid set), and did it hold entries to replay?
  const before = (await checkVhdx(disk)).find(p => p.structure === 'log')
  const log = before === undefined ? 'clean' : /must be replayed/.test(before.message) ? 'replayed' : 'guid-only'
  let d
  try {
    d = await openVhdx(disk, {})
  } catch (e) {
    problems.push(`open after crash failed: ${e.message}`)
    return { flushed, started, finished: signal !== 'SIGKILL', log, problems }
  }
  const got = Buffer.alloc(CRASH_DISK_SIZE)
  await d.read(0, got)
  await d.close()
  let bad = 0
  for (let s = 0; s < tainted.length; s++) {
    if (tainted[s]) continue
    if (!got.subarray(s * 512, s * 512 + 512).equals(expected.subarray(s * 512, s * 512 + 512))) {
      if (bad++ < 3) problems.push(`sector ${s} (offset ${s * 512}) lost a flushed write`)
    }
  }
  if (bad > 3) problems.push(`... ${bad} sectors in all`)
  const errors = (await checkVhdx(disk)).filter(p => p.severity === 'error')
  for (const p of errors.slice(0, 3)) problems.push(`checkVhdx: ${p.structure} at ${p.offset}: ${p.message}`)
  if (qemu) {
    const q = spawnSync('qemu-img', ['check', '-f', 'vhdx', disk], { encoding: 'utf8' })
    if (q.error) problems.push(`qemu-img: ${q.error.message}`)
    else if (q.status !== 0) problems.push(`qemu-img check exit ${q.status}: ${q.stdout}${q.stderr}`)
  }
  return { flushed, started, finished: signal !== 'SIGKILL', log, problems }
}
