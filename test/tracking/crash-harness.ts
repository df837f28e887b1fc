/**
 * One crash trial: image -> enable tracking -> child writes through TrackedDisk (first half of the disk only) ->
 * SIGKILL at a random moment after its first completed write ->
 * reopen -> the changes reported since the child's first reference point must cover every 512-byte sector that
 * differs from the pre-test image, and status must say it recovered. Used by crash.test.ts (a handful of trials)
 * and test/long/tracking-crash.mjs (hundreds).
 */
import { spawn } from 'node:child_process'
import fsp from 'node:fs/promises'
import path from 'node:path'
import { TrackingStore } from '../../src/tracking/store.js'
import { probeDiskIdentity } from '../../src/tracking/disk-identity.js'
import { diffUnits, makeRawImage } from './helpers.js'

export interface TrialResult {
  ok: boolean
  detail: string
  killedAfterMs: number
  changedSectors: number
  reportedBytes: number
  recovered: boolean
}

/** Run one trial in `dir` with the bundled child script `childJs`. */
export async function runCrashTrial(dir: string, childJs: string, seed: number, sizeBytes = 64 * 1024 * 1024): Promise<TrialResult> {
  const disk = path.join(dir, `disk-${seed}.raw`)
  await makeRawImage(disk, sizeBytes, seed)
  const before = await fsp.readFile(disk)
  await TrackingStore.enable(disk, sizeBytes, await probeDiskIdentity(disk), { granularityBytes: 64 * 1024, coarseRegionBytes: 1024 * 1024 })
  const child = spawn(process.execPath, [childJs, disk, String(seed)], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', d => { stderr += d })
  // the reference point's id, once the child has completed a write (so every trial has changes to find)
  const rpId = await new Promise<string>((resolve, reject) => {
    let out = ''
    child.stdout.on('data', d => {
      out += d
      const m = /ready (\S+)\n(?:.*\n)*wrote\n/.exec(out)
      if (m) resolve(m[1]!)
    })
    child.on('exit', code => reject(new Error(`child exited (${code}) before its first write: ${stderr}`)))
  })
  const killedAfterMs = 20 + (seed * 37) % 400
  await new Promise(res => setTimeout(res, killedAfterMs))
  const exited = new Promise(res => child.on('exit', res))
  child.kill('SIGKILL')
  await exited
  const after = await fsp.readFile(disk)
  const changed = diffUnits(before, after, 512)
  const store = await TrackingStore.open(disk, { identity: await probeDiskIdentity(disk), diskSizeBytes: sizeBytes })
  try {
    const status = store.status()
    const ranges = await store.changedRanges(rpId)
    let i = 0
    const missed: number[] = []
    for (const off of changed) {
      while (i < ranges.length && ranges[i]!.offset + ranges[i]!.length <= off) i++
      const r = ranges[i]
      if (!r || r.offset > off) missed.push(off)
    }
    const reportedBytes = ranges.reduce((n, r) => n + r.length, 0)
    const ok = missed.length === 0 && status.recoveredAfterCrash && status.trusted
    return {
      ok,
      detail: ok ? '' : `missed ${missed.length} sectors (first at ${missed[0]}), recovered=${status.recoveredAfterCrash}, ` +
        `trusted=${status.trusted} ${status.untrustedReason ?? ''} ${stderr}`,
      killedAfterMs, changedSectors: changed.length, reportedBytes, recovered: status.recoveredAfterCrash,
    }
  } finally {
    await store.close()
    await fsp.rm(disk, { force: true })
    await fsp.rm(`${disk}.hvcbt`, { recursive: true, force: true })
  }
}

/** Bundle the child entry (TypeScript) into one ESM file runnable by plain node. */
export async function bundleChild(outFile: string): Promise<string> {
  const esbuild = await import('esbuild')
  await esbuild.build({
    entryPoints: [path.join(import.meta.dirname ?? path.dirname(new URL(import.meta.url).pathname), 'crash-child.ts')],
    bundle: true, platform: 'node', format: 'esm', target: 'node20', outfile: outFile, logLevel: 'silent',
  })
  return outFile
}
