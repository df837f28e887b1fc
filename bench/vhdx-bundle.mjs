// Bundles the VHDX engine (TypeScript sources) with esbuild into one temporary ESM file and imports it, so the
// long-running scripts under bench/ and test/long/ run on plain node with no TypeScript loader in the hot path.
import { build } from 'esbuild'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')

/** Write the bundle to `outfile` (for child processes that import it by path). */
export async function bundleVhdxTo(outfile, { withFuzz = false } = {}) {
  const lines = [`export * from ${JSON.stringify(join(root, 'src/formats/vhdx/index.ts'))}`]
  if (withFuzz) lines.push(`export { fuzzVhdx } from ${JSON.stringify(join(root, 'test/formats/vhdx/vhdx-fuzz-core.ts'))}`)
  await build({
    stdin: { contents: lines.join('\n'), resolveDir: root, loader: 'ts' },
    bundle: true, platform: 'node', format: 'esm', target: 'node20', outfile, logLevel: 'error',
  })
  return outfile
}

/** Import the VHDX engine (src/formats/vhdx/index.ts), plus the fuzz core when `withFuzz`. */
export async function loadVhdx({ withFuzz = false } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'hvcbt-vhdx-bundle-'))
  const outfile = join(dir, 'vhdx.mjs')
  await bundleVhdxTo(outfile, { withFuzz })
  const mod = await import(pathToFileURL(outfile).href)
  rmSync(dir, { recursive: true, force: true })
  return mod
}
