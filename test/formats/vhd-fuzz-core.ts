/**
 * Fuzzing of the VHD parsers, shared by the in-suite run (vhd-fuzz.test.ts) and the long run (bench/vhd-fuzz.mjs).
 *
 * Each iteration copies one seed file, damages it (bit flips, interesting values written over fields of the footer,
 * the dynamic header, the BAT, the locators and the bitmaps, truncation), and in half of the cases recomputes the
 * footer and dynamic-header checksums so the damage reaches past the checksum tests. Then it runs every reader:
 * inspectVhd, openVhd (read-only, with the seed's parent where it has one) with reads at random places and a full
 * extents map, checkVhd, and in some iterations a read-write open with writes, zeroings and a flush. A FormatError is the expected outcome for bad input; anything else thrown, an
 * iteration slower than `maxIterationMs`, or a heap above `maxHeapBytes` is a finding.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { EngineError, FormatError } from '../../src/engine/errors.js'
import { checkVhd } from '../../src/formats/vhd/vhd-check.js'
import { openVhd } from '../../src/formats/vhd/vhd-disk.js'
import { inspectVhd } from '../../src/formats/vhd/vhd-inspect.js'
import { vhdChecksum } from '../../src/formats/vhd/vhd-layout.js'
import type { VirtualDisk } from '../../src/formats/virtual-disk.js'
import { xorshift32 as rng } from '../helpers/prng.js'

export interface FuzzSeed {
  path: string
  /** Parent to read through when the seed is a differencing disk. */
  parent?: string
}

export interface FuzzStats {
  iterations: number
  formatErrors: number
  clean: number
  findings: string[]
  maxIterationMs: number
  maxHeapBytes: number
}

const INTERESTING_U32 = [0, 1, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff, 0x200, 0x1000, 0x100000, 0x200000]


/** Damage the file image `b` (a copy of a seed) and return the bytes to write. */
function mutate(b: Buffer, r: () => number): Buffer {
  const pick = (n: number): number => Math.floor(r() * n)
  const end = b.length
  // Places worth hitting: footer fields, footer copy, dynamic header fields, the BAT and locators (just after it).
  const hot = (): number => {
    const where = pick(5)
    if (where === 0) return end - 512 + pick(88)
    if (where === 1) return pick(88)
    if (where === 2) return 512 + pick(1024)
    if (where === 3) return 1536 + pick(Math.max(1, Math.min(4096, end - 1536)))
    return pick(end)
  }
  const count = 1 + pick(4)
  for (let i = 0; i < count; i++) {
    const op = pick(4)
    const at = Math.min(hot(), end - 4)
    if (at < 0) break
    if (op === 0) b[at]! ^= 1 << pick(8)
    else if (op === 1) b.writeUInt32BE(INTERESTING_U32[pick(INTERESTING_U32.length)]!, at - (at % 4))
    else if (op === 2) b.writeUInt32BE(Math.floor(r() * 0x1_0000_0000), at)
    else b[at] = pick(256)
  }
  if (r() < 0.5) {
    // Repair the checksums so the damage is seen by the code behind them.
    const footerAt = end - 512
    if (b.toString('latin1', footerAt, footerAt + 8) === 'conectix') b.writeUInt32BE(vhdChecksum(b.subarray(footerAt, end), 64), footerAt + 64)
    if (b.toString('latin1', 0, 8) === 'conectix') b.writeUInt32BE(vhdChecksum(b.subarray(0, 512), 64), 64)
    if (end >= 1536 && b.toString('latin1', 512, 520) === 'cxsparse') b.writeUInt32BE(vhdChecksum(b.subarray(512, 1536), 36), 512 + 36)
  }
  if (r() < 0.08) return b.subarray(0, pick(end))
  return b
}

async function exercise(path: string, parentPath: string | undefined, r: () => number): Promise<void> {
  await inspectVhd(path)
  let parent: VirtualDisk | null = null
  if (parentPath) parent = await openVhd(parentPath, { readOnly: true })
  let disk: VirtualDisk
  try {
    disk = await openVhd(path, { readOnly: true }, parent)
  } catch (err) {
    await parent?.close() // the child owns its parent only once opened
    throw err
  }
  try {
    const sectors = Math.floor(disk.size / 512)
    for (let i = 0; i < 4 && sectors > 0; i++) {
      const len = Math.min(sectors, 1 + Math.floor(r() * 4096))
      const first = Math.floor(r() * (sectors - len + 1))
      await disk.read(first * 512, new Uint8Array(len * 512))
    }
    await disk.extents(0, disk.size)
  } finally {
    await disk.close()
  }
  await checkVhd(path)
  if (r() < 0.3) {
    // Writing into a damaged file: allocation, footer moves and flushes must fail cleanly or succeed.
    const rwParent = parentPath ? await openVhd(parentPath, { readOnly: true }) : null
    let rw: VirtualDisk
    try {
      rw = await openVhd(path, {}, rwParent)
    } catch (err) {
      await rwParent?.close()
      throw err
    }
    try {
      const sectors = Math.floor(rw.size / 512)
      for (let i = 0; i < 3 && sectors > 0; i++) {
        const len = Math.min(sectors, 1 + Math.floor(r() * 2048))
        const first = Math.floor(r() * (sectors - len + 1))
        if (r() < 0.3) await rw.writeZeroes(first * 512, len * 512)
        else await rw.write(first * 512, new Uint8Array(len * 512).fill(0x5a))
      }
      await rw.flush()
    } finally {
      await rw.close()
    }
  }
}

export async function fuzzVhd(seeds: FuzzSeed[], iterations: number, seed: number, work: string, opts: { maxIterationMs?: number; maxHeapBytes?: number } = {}): Promise<FuzzStats> {
  const maxMs = opts.maxIterationMs ?? 5000
  const maxHeap = opts.maxHeapBytes ?? 512 * 1024 * 1024
  const r = rng(seed)
  const stats: FuzzStats = { iterations: 0, formatErrors: 0, clean: 0, findings: [], maxIterationMs: 0, maxHeapBytes: 0 }
  const images = seeds.map(s => readFileSync(s.path))
  for (let i = 0; i < iterations; i++) {
    const k = Math.floor(r() * seeds.length)
    const s = seeds[k]!
    const target = `${work}/fuzz-${k}.vhd`
    writeFileSync(target, mutate(Buffer.from(images[k]!), r))
    const t0 = performance.now()
    try {
      await exercise(target, s.parent, r)
      stats.clean++
    } catch (err) {
      if (err instanceof FormatError) stats.formatErrors++
      else if (err instanceof EngineError && err.category !== 'NotSpecified') stats.formatErrors++
      else stats.findings.push(`iteration ${i} (seed ${seed}, file ${s.path}): ${(err as Error).stack ?? String(err)}`)
    }
    const ms = performance.now() - t0
    stats.maxIterationMs = Math.max(stats.maxIterationMs, ms)
    if (ms > maxMs) stats.findings.push(`iteration ${i} (seed ${seed}): took ${Math.round(ms)} ms`)
    const heap = process.memoryUsage().heapUsed
    stats.maxHeapBytes = Math.max(stats.maxHeapBytes, heap)
    if (heap > maxHeap) stats.findings.push(`iteration ${i} (seed ${seed}): heap ${heap} bytes`)
    stats.iterations++
  }
  return stats
}
