// Bundles the NBD server and the raw disk (TypeScript sources) with esbuild into one temporary ESM file and imports
// it, so the NBD benchmarks and the long fuzz run work on plain node with no TypeScript loader in the hot path.
// The bundle is written under bench/ (not the system temp dir) so the sparse-file addon in native/build is found by
// its loader, which walks up from the module's folder.
import { build } from 'esbuild'
import { mkdtempSync, rmSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')

/**
 * Import NbdServer, openRaw and openDisk (plus fuzzNbd when `withFuzz`, and runExportCrashTrial and RpcProcess when
 * `withCrash`; those run the engine from dist/, so `npm run build:ts` first).
 */
export async function loadNbd({ withFuzz = false, withCrash = false } = {}) {
  const lines = [
    `export { NbdServer } from ${JSON.stringify(join(root, 'src/nbd/server.ts'))}`,
    `export { openRaw } from ${JSON.stringify(join(root, 'src/formats/raw/raw-disk.ts'))}`,
    `export { openDisk } from ${JSON.stringify(join(root, 'src/formats/open.ts'))}`,
    `export { sparseSupport } from ${JSON.stringify(join(root, 'src/platform/sparse.ts'))}`,
  ]
  if (withFuzz) lines.push(`export { fuzzNbd } from ${JSON.stringify(join(root, 'test/nbd/nbd-fuzz-core.ts'))}`)
  if (withCrash) {
    lines.push(`export { runExportCrashTrial } from ${JSON.stringify(join(root, 'test/nbd/export-crash-core.ts'))}`)
    lines.push(`export { RpcProcess } from ${JSON.stringify(join(root, 'test/helpers/engine.ts'))}`)
  }
  const dir = mkdtempSync(join(root, 'bench', 'nbd-bundle.tmp-'))
  const outfile = join(dir, 'nbd.mjs')
  try {
    await build({
      stdin: { contents: lines.join('\n'), resolveDir: root, loader: 'ts' },
      bundle: true, platform: 'node', format: 'esm', target: 'node20', outfile, logLevel: 'error',
    })
    return await import(pathToFileURL(outfile).href)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/**
 * Bundle the whole engine (src/main.ts) to `<dir>/main.js` under bench/ and return its path, so long runs that
 * spawn the engine do not depend on dist/ (which other work may be rebuilding meanwhile). Remove `dir` afterwards.
 */
export async function bundleEngine() {
  const dir = mkdtempSync(join(root, 'bench', 'nbd-engine.tmp-'))
  const outfile = join(dir, 'main.js')
  await build({
    entryPoints: [join(root, 'src/main.ts')],
    bundle: true, platform: 'node', format: 'esm', target: 'node20', outfile, logLevel: 'error',
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  })
  return { dir, main: outfile }
}
