#!/usr/bin/env node
// Long fuzz run of the VHD parsers: node bench/vhd-fuzz.mjs [iterations=20000] [seed]
// Exits 1 if any iteration threw something other than a FormatError (or a categorized EngineError), took longer
// than 5 s, or grew the heap past 512 MiB. The TypeScript sources are bundled with esbuild first.
import { build } from 'esbuild'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const iterations = Number(process.argv[2] ?? 20000)
const seed = Number(process.argv[3] ?? Date.now() % 2 ** 31)
const dir = mkdtempSync(join(tmpdir(), 'hvcbt-vhd-fuzz-'))
try {
  const outfile = join(dir, 'vhd-fuzz.mjs')
  await build({
    stdin: {
      contents: [
        `export { fuzzVhd } from ${JSON.stringify(join(root, 'test/formats/vhd-fuzz-core.ts'))}`,
        `export { createVhd } from ${JSON.stringify(join(root, 'src/formats/vhd/vhd-create.ts'))}`,
        `export { openVhd } from ${JSON.stringify(join(root, 'src/formats/vhd/vhd-disk.ts'))}`,
      ].join('\n'),
      resolveDir: root,
      loader: 'ts',
    },
    bundle: true, platform: 'node', format: 'esm', target: 'node20', outfile, logLevel: 'error',
    banner: { js: 'import { createRequire as __cr } from "module"; const require = __cr(import.meta.url);' },
  })
  const { fuzzVhd, createVhd, openVhd } = await import(pathToFileURL(outfile).href)
  const MiB = 1024 * 1024
  const dyn = join(dir, 'dyn.vhd')
  await createVhd(dyn, { sizeBytes: 12 * MiB, type: 'dynamic', blockSizeBytes: MiB })
  let d = await openVhd(dyn)
  await d.write(MiB, Buffer.alloc(MiB + 4096, 0x11))
  await d.close()
  const fixed = join(dir, 'fixed.vhd')
  await createVhd(fixed, { sizeBytes: 2 * MiB, type: 'fixed' })
  const child = join(dir, 'child.vhd')
  await createVhd(child, { type: 'differencing', parentPath: dyn })
  d = await openVhd(child)
  await d.write(5 * MiB + 1536, Buffer.alloc(2048, 0x22))
  await d.close()
  const t0 = Date.now()
  const stats = await fuzzVhd([{ path: dyn }, { path: fixed }, { path: child, parent: dyn }], iterations, seed, dir)
  const seconds = (Date.now() - t0) / 1000
  console.log(JSON.stringify({ seed, iterations: stats.iterations, formatErrors: stats.formatErrors, clean: stats.clean, findings: stats.findings.length, maxIterationMs: Math.round(stats.maxIterationMs), maxHeapMiB: Math.round(stats.maxHeapBytes / MiB), seconds }))
  for (const f of stats.findings.slice(0, 20)) console.error(f)
  process.exitCode = stats.findings.length ? 1 : 0
} finally {
  rmSync(dir, { recursive: true, force: true })
}
