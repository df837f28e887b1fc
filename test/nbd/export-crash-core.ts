/**
 * One crash trial of the tracked NBD export, end to end through the real engine: a raw image with tracking enabled
 * and a reference point; `hvcbt serve nbd` in its own process; a client pipelining writes (some FUA) at random
 * non-overlapping places; SIGKILL to the export at a random moment. Then, in another engine process:
 *   - `tracking.status` must report the store trusted and recovered after the crash;
 *   - `tracking.changes --since <refpoint>` must cover every 512-byte sector that differs from the pre-test image
 *     (over-reporting is allowed, under-reporting never; how much is over-reported is returned, not judged);
 *   - every write the export acknowledged must be in the file (a process kill loses no acknowledged write).
 * Used by export-crash.test.ts (a handful of trials) and bench/nbd-export-crash.mjs (hundreds).
 */
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { engineCommand, type RpcProcess } from '../helpers/engine.js'
import * as P from '../../src/nbd/protocol.js'
import { RawClient } from './raw-client.js'
import { xorshift32 as rng } from '../helpers/prng.js'

const SIZE = 32 * 1024 * 1024
const SLOT = 16 * 1024
/** Coarse journal region the trial enables tracking with. */
const REGION = 1024 * 1024

export interface ExportCrashResult {
  ok: boolean
  detail: string
  killedAfterMs: number
  writesSent: number
  writesAcked: number
  differingSectors: number
  reportedBytes: number
  /** Bytes of the 1 MiB journal regions the trial wrote into (the precision a crash recovery can reach). */
  writtenRegionBytes: number
  recovered: boolean
}


function randomBytes(r: () => number, n: number): Buffer {
  const b = Buffer.allocUnsafe(n)
  for (let i = 0; i < n; i += 4) b.writeUInt32LE(Math.floor(r() * 0x100000000), i)
  return b
}

async function call<T>(rpc: RpcProcess, method: string, params: Record<string, unknown>): Promise<T> {
  const m = await rpc.call(method, params)
  if (m.error) throw new Error(`${method}: ${m.error.message}`)
  return m.result as T
}

export async function runExportCrashTrial(dir: string, rpc: RpcProcess, seed: number): Promise<ExportCrashResult> {
  const r = rng(seed)
  const disk = path.join(dir, `disk-${seed}.raw`)
  fs.writeFileSync(disk, randomBytes(r, SIZE))
  const before = fs.readFileSync(disk)
  await call(rpc, 'tracking.enable', { disk, granularity: 65536, journalRegion: REGION })
  const rp = await call<{ id: string }>(rpc, 'tracking.refpoint.create', { disk })

  const [cmd, ...pre] = engineCommand()
  const child = spawn(cmd!, [...pre, 'serve', 'nbd', disk, '--listen', '127.0.0.1:0', '--json'], {
    env: { ...process.env, NODE_OPTIONS: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stderr = ''
  child.stderr!.on('data', d => (stderr += d))
  const exited = new Promise<void>(resolve => child.once('exit', () => resolve()))
  const info = await new Promise<{ listen: string; name: string }>((resolve, reject) => {
    let out = ''
    child.stdout!.on('data', d => {
      out += d
      try {
        resolve(JSON.parse(out))
      } catch {
        // incomplete
      }
    })
    void exited.then(() => reject(new Error(`export exited before listening: ${stderr}`)))
  })
  const client = await RawClient.connect(Number(info.listen.split(':').pop()))
  await client.start()
  await client.go(info.name, { structured: true })

  // writes at shuffled, non-overlapping slots inside 6 of the 32 MiB-sized regions (so that a correct answer is
  // far from "everything changed" and the coverage check means something), up to 8 in flight, until the kill
  const regions = Array.from({ length: SIZE / REGION }, (_, i) => i).sort(() => r() - 0.5).slice(0, 6)
  const slots = regions.flatMap(g => Array.from({ length: REGION / SLOT }, (_, i) => (g * REGION) / SLOT + i))
  for (let i = slots.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1))
    ;[slots[i], slots[j]] = [slots[j]!, slots[i]!]
  }
  const pending = new Map<bigint, { offset: number; data: Buffer }>()
  const acked: { offset: number; data: Buffer }[] = []
  let sent = 0
  let killed = false
  const killAfterMs = Math.floor(r() * 400)
  const t0 = Date.now()
  const send = () => {
    while (!killed && pending.size < 8 && sent < slots.length) {
      const len = (1 + Math.floor(r() * (SLOT / 512))) * 512
      const offset = slots[sent]! * SLOT + Math.floor(r() * ((SLOT - len) / 512 + 1)) * 512
      const data = randomBytes(r, len)
      const cookie = BigInt(++sent)
      pending.set(cookie, { offset, data })
      client.request(P.NBD_CMD_WRITE, cookie, offset, len, r() < 0.2 ? P.NBD_CMD_FLAG_FUA : 0, data)
    }
  }
  const kill = () => {
    killed = true
    child.kill('SIGKILL')
  }
  // the random moment counts from the first acknowledged write, so every trial kills during a stream of writes
  let killer = setTimeout(kill, 10_000)
  send()
  try {
    for (;;) {
      const reply = await client.readFullReply()
      if (acked.length === 0 && reply.error === 0) {
        clearTimeout(killer)
        killer = setTimeout(kill, killAfterMs)
      }
      const w = pending.get(reply.cookie)
      pending.delete(reply.cookie)
      if (w && reply.error === 0) acked.push(w)
      if (sent >= slots.length && pending.size === 0) break
      send()
    }
  } catch {
    // the export died under us: expected
  }
  clearTimeout(killer)
  if (!killed) kill()
  await exited
  client.close()
  const killedAfterMs = Date.now() - t0

  const status = await call<{ trusted: boolean; recoveredAfterCrash: boolean; untrustedReason: string | null }>(rpc, 'tracking.status', { disk })
  const changes = await call<{ ranges: { offset: number; length: number }[]; changedBytes: number }>(rpc, 'tracking.changes', { disk, since: rp.id })
  const after = fs.readFileSync(disk)
  const problems: string[] = []
  if (!status.trusted) problems.push(`tracking untrusted after the crash: ${status.untrustedReason}`)
  if (!status.recoveredAfterCrash) problems.push('status does not say it recovered after a crash')
  const ranges = changes.ranges
  let differing = 0
  let ri = 0
  for (let s = 0; s < SIZE; s += 512) {
    if (before.compare(after, s, s + 512, s, s + 512) === 0) continue
    differing++
    while (ri < ranges.length && ranges[ri]!.offset + ranges[ri]!.length <= s) ri++
    const rg = ranges[ri]
    if (!rg || rg.offset > s) {
      if (problems.length < 10) problems.push(`sector at ${s} changed but is not reported`)
    }
  }
  for (const w of acked) {
    if (!after.subarray(w.offset, w.offset + w.data.length).equals(w.data)) {
      if (problems.length < 10) problems.push(`acknowledged write at ${w.offset}+${w.data.length} is not in the file`)
    }
  }
  fs.rmSync(disk, { force: true })
  fs.rmSync(`${disk}.hvcbt`, { recursive: true, force: true })
  return {
    ok: problems.length === 0,
    detail: problems.join('; '),
    killedAfterMs,
    writesSent: sent,
    writesAcked: acked.length,
    differingSectors: differing,
    reportedBytes: changes.changedBytes,
    writtenRegionBytes: regions.length * REGION,
    recovered: status.recoveredAfterCrash,
  }
}
