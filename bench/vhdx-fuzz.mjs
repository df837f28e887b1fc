#!/usr/bin/env node
// Long fuzz run of the VHDX parsers: node bench/vhdx-fuzz.mjs [iterations=20000] [seed]
// Exits 1 if any iteration threw something other than FormatError, hung (> 5 s) or grew the heap past 512 MiB.
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadVhdx } from './vhdx-bundle.mjs'

const MiB = 1024 * 1024
const iterations = Number(process.argv[2] ?? 20000)
const seed = Number(process.argv[3] ?? Date.now() % 2 ** 31)
const { createVhdx, openVhdx, fuzzVhdx } = await loadVhdx({ withFuzz: true })
const dir = mkdtempSync(join(tmpdir(), 'hvcbt-vhdx-fuzz-'))
try {
  const dyn = join(dir, 'dynamic.vhdx')
  await createVhdx(dyn, { sizeBytes: 24 * MiB, type: 'dynamic', blockSizeBytes: MiB })
  const d = await openVhdx(dyn, {})
  await d.write(MiB, Buffer.alloc(2 * MiB, 0x11))
  const withLog = join(dir, 'with-log.vhdx')
  copyFileSync(dyn, withLog)
  const guid = d.dataWriteGuid
  await d.close()
  const fixed = join(dir, 'fixed.vhdx')
  await createVhdx(fixed, { sizeBytes: 8 * MiB, type: 'fixed', blockSizeBytes: 2 * MiB, logicalSectorSize: 4096 })
  const child = join(dir, 'child.avhdx')
  await createVhdx(child, { sizeBytes: 24 * MiB, type: 'differencing', blockSizeBytes: MiB, parent: { path: dyn, dataWriteGuid: guid, logicalSectorSize: 512, relativePath: 'dynamic.vhdx' } })
  const c = await openVhdx(child, { withoutParent: true })
  await c.write(3 * MiB + 4096, Buffer.alloc(8192, 0x22))
  await c.close()
  const t0 = Date.now()
  const stats = await fuzzVhdx([dyn, fixed, child, withLog], iterations, seed)
  const secs = (Date.now() - t0) / 1000
  console.log(JSON.stringify({ seed, iterations: stats.iterations, formatErrors: stats.formatErrors, clean: stats.clean, findings: stats.findings.length, maxIterationMs: Math.round(stats.maxIterationMs), maxHeapMiB: Math.round(stats.maxHeapBytes / MiB), seconds: secs }))
  for (const f of stats.findings.slice(0, 20)) console.error(f)
  process.exitCode = stats.findings.length ? 1 : 0
} finally {
  rmSync(dir, { recursive: true, force: true })
}
