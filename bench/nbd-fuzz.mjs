#!/usr/bin/env node
// Long fuzz run of the NBD handshake and request parsers: node bench/nbd-fuzz.mjs [iterations=20000] [seed]
// Exits 1 on any finding: an uncaught exception, a session that did not end within 5 s after its input ended, the
// heap past 512 MiB, or a clean session answered differently after the fuzzed ones (see test/nbd/nbd-fuzz-core.ts).
import { loadNbd } from './nbd-bundle.mjs'

const iterations = Number(process.argv[2] ?? 20000)
const seed = Number(process.argv[3] ?? Date.now() % 2 ** 31)
const { fuzzNbd } = await loadNbd({ withFuzz: true })
const t0 = Date.now()
const stats = await fuzzNbd(iterations, seed)
const seconds = (Date.now() - t0) / 1000
console.log(JSON.stringify({
  seed, iterations: stats.iterations, closedEarly: stats.closedEarly, findings: stats.findings.length,
  maxIterationMs: stats.maxIterationMs, maxHeapMiB: Math.round(stats.maxHeapBytes / 2 ** 20), seconds,
}))
for (const f of stats.findings.slice(0, 20)) console.error(f)
process.exitCode = stats.findings.length ? 1 : 0
