// Bundles the tracking domain (TypeScript sources) with esbuild into one temporary ESM file and imports it, so the
// tracking benchmarks run on plain node with no TypeScript loader in the hot path.
import { build } from 'esbuild'
import { mkdtempSync, rmSync, mkdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

export const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')

export async function loadTracking() {
  const dir = mkdtempSync(join(tmpdir(), 'hvcbt-tracking-bundle-'))
  const outfile = join(dir, 'tracking.mjs')
  const files = ['bitmap', 'store', 'tracked-disk', 'dirty-bitmap-context', 'ranges']
  const lines = files.map(f => `export * from ${JSON.stringify(join(root, `src/tracking/${f}.ts`))}`)
  lines.push(`export { openRaw } from ${JSON.stringify(join(root, 'src/formats/raw/raw-disk.ts'))}`)
  await build({
    stdin: { contents: lines.join('\n'), resolveDir: root, loader: 'ts' },
    bundle: true, platform: 'node', format: 'esm', target: 'node20', outfile, logLevel: 'error',
  })
  const mod = await import(pathToFileURL(outfile).href)
  rmSync(dir, { recursive: true, force: true })
  return mod
}

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]
}

export function saveResults(name, results) {
  const out = join(root, 'bench', 'results')
  mkdirSync(out, { recursive: true })
  writeFileSync(join(out, `${name}.json`), JSON.stringify(results, null, 2) + '\n')
}
