/**
 * Structure-aware fuzzing of the VHDX parsers, shared by the in-suite run (vhdx-fuzz.test.ts) and the long run
 * (bench/vhdx-fuzz.mjs). Each iteration patches a few bytes of a seed file in place (a header, a region table,
 * the metadata table or items, the BAT or the log), usually fixing the CRC-32C up so the mutation reaches the
 * code behind the checksum, then runs inspectVhdx, openVhdx + reads + extents, and checkVhdx (or, one time in
 * seven, a read-write round on a copy: open, write, writeZeroes, close, check clean), and restores the bytes. Any exception other than FormatError is a finding; so is an iteration slower than `maxMs` (a hang) or
 * heap growth past `maxHeapBytes`.
 */
import { copyFile, open, unlink } from 'node:fs/promises'
import { FormatError } from '../../../src/engine/errors.js'
import { crc32cWithZeroedField } from '../../../src/formats/crc32c.js'
import { checkVhdx } from '../../../src/formats/vhdx/vhdx-check.js'
import { inspectVhdx } from '../../../src/formats/vhdx/vhdx-inspect.js'
import { openVhdx } from '../../../src/formats/vhdx/vhdx-open.js'
import { xorshift32 as rng } from '../../helpers/prng.js'

const KiB = 1024
const MiB = 1024 * KiB

interface Target {
  name: string
  start: number
  length: number
  /** Where the structure's CRC-32C lives and what it covers, if it has one. */
  crc?: { at: number; length: number }
}

/** createVhdx's layout: log 1 MiB, metadata 2 MiB, BAT 3 MiB. */
const targets: Target[] = [
  { name: 'file identifier', start: 0, length: 16 },
  { name: 'header 1', start: 64 * KiB, length: 96, crc: { at: 64 * KiB, length: 4 * KiB } },
  { name: 'header 2', start: 128 * KiB, length: 96, crc: { at: 128 * KiB, length: 4 * KiB } },
  { name: 'region table 1', start: 192 * KiB, length: 16 + 3 * 32, crc: { at: 192 * KiB, length: 64 * KiB } },
  { name: 'region table 2', start: 256 * KiB, length: 16 + 3 * 32, crc: { at: 256 * KiB, length: 64 * KiB } },
  { name: 'metadata table', start: 2 * MiB, length: 32 + 7 * 32 },
  { name: 'metadata items', start: 2 * MiB + 64 * KiB, length: 256 },
  { name: 'BAT', start: 3 * MiB, length: 512 },
  { name: 'log', start: MiB, length: 256, crc: { at: MiB, length: 8 * KiB } },
]

export interface FuzzStats {
  iterations: number
  formatErrors: number
  clean: number
  findings: string[]
  maxIterationMs: number
  maxHeapBytes: number
}


const interesting = [0, 1, 0x7f, 0x80, 0xff, 0xfe, 0x10, 0x20, 0x40]

/**
 * Read-write round on a copy: a mutated file that opens read-write must take a write, a writeZeroes and a clean
 * close, and then check without errors (the open validated everything the writer relies on).
 */
async function exerciseWrite(path: string, scratch: string, r: () => number): Promise<'clean' | 'format'> {
  await copyFile(path, scratch)
  let d
  try {
    d = await openVhdx(scratch, { withoutParent: true })
  } catch (e) {
    if (e instanceof FormatError) return 'format'
    throw e
  }
  try {
    const sectors = d.size / d.logicalSectorSize
    const at = Math.floor(r() * sectors) * d.logicalSectorSize
    const len = Math.min(d.size - at, d.logicalSectorSize * (1 + Math.floor(r() * 64)))
    await d.write(at, new Uint8Array(len).fill(0x5a))
    await d.writeZeroes(Math.floor(r() * sectors) * d.logicalSectorSize, d.logicalSectorSize)
  } finally {
    await d.close()
  }
  const errors = (await checkVhdx(scratch)).filter(p => p.severity === 'error')
  if (errors.length) throw new Error(`file opened read-write but checks with errors after writing: ${JSON.stringify(errors.slice(0, 3))}`)
  return 'clean'
}

async function exercise(path: string): Promise<'clean' | 'format'> {
  let sawFormat = false
  const guard = async (fn: () => Promise<unknown>) => {
    try {
      await fn()
    } catch (e) {
      if (e instanceof FormatError) sawFormat = true
      else throw e
    }
  }
  await guard(() => inspectVhdx(path))
  await guard(async () => {
    const d = await openVhdx(path, { readOnly: true, withoutParent: true })
    try {
      const n = Math.min(d.size, 4 * MiB)
      if (!d.hasParent) await d.read(0, new Uint8Array(n))
      await d.extents(0, d.size)
    } finally {
      await d.close()
    }
  })
  const problems = await checkVhdx(path)
  if (sawFormat && !problems.some(p => p.severity === 'error')) throw new Error('openVhdx/inspectVhdx failed but checkVhdx reported no error')
  return sawFormat ? 'format' : 'clean'
}

export async function fuzzVhdx(seedFiles: string[], iterations: number, seed: number, opts: { maxMs?: number; maxHeapBytes?: number } = {}): Promise<FuzzStats> {
  const maxMs = opts.maxMs ?? 5000
  const maxHeap = opts.maxHeapBytes ?? 512 * MiB
  const r = rng(seed)
  const stats: FuzzStats = { iterations: 0, formatErrors: 0, clean: 0, findings: [], maxIterationMs: 0, maxHeapBytes: 0 }
  for (let i = 0; i < iterations; i++) {
    const path = seedFiles[Math.floor(r() * seedFiles.length)]!
    const target = targets[Math.floor(r() * targets.length)]!
    const fh = await open(path, 'r+')
    const span = target.crc ? Math.max(target.crc.length, target.length) : target.length
    const base = target.crc ? target.crc.at : target.start
    const original = new Uint8Array(span)
    await fh.read(original, 0, span, base)
    const patched = Buffer.from(original)
    const edits = 1 + Math.floor(r() * 4)
    for (let k = 0; k < edits; k++) {
      const at = target.start - base + Math.floor(r() * target.length)
      const mode = r()
      if (mode < 0.4) patched[at] = interesting[Math.floor(r() * interesting.length)]!
      else if (mode < 0.7) patched[at]! ^= 1 << Math.floor(r() * 8)
      else if (mode < 0.9) patched[at] = Math.floor(r() * 256)
      else patched.fill(0xff, at, Math.min(at + 8, patched.length))
    }
    if (target.crc && r() < 0.75) patched.writeUInt32LE(crc32cWithZeroedField(patched.subarray(0, target.crc.length), 4), 4)
    await fh.write(patched, 0, span, base)
    const t0 = performance.now()
    try {
      const outcome = r() < 0.15 ? await exerciseWrite(path, `${path}.rw-scratch`, r) : await exercise(path)
      if (outcome === 'format') stats.formatErrors++
      else stats.clean++
    } catch (e) {
      stats.findings.push(`iteration ${i} (${target.name} of ${path}): ${(e as Error).stack ?? e}`)
    } finally {
      await fh.write(original, 0, span, base)
      await fh.close()
    }
    const ms = performance.now() - t0
    if (ms > stats.maxIterationMs) stats.maxIterationMs = ms
    if (ms > maxMs) stats.findings.push(`iteration ${i} (${target.name} of ${path}) took ${ms.toFixed(0)} ms`)
    const heap = process.memoryUsage().heapUsed
    if (heap > stats.maxHeapBytes) stats.maxHeapBytes = heap
    if (heap > maxHeap) stats.findings.push(`iteration ${i}: heap ${heap} bytes exceeds ${maxHeap}`)
    stats.iterations++
  }
  for (const p of seedFiles) await unlink(`${p}.rw-scratch`).catch(() => undefined)
  return stats
}
