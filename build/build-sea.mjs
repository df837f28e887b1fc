// Builds the engine as one Node 20 single executable application (SEA).
//
// Output: build/out/hvcbt (Linux x64 ELF, ~90 MB: the Node binary with the engine injected). Intermediate files sit
// beside it in build/out/ (gitignored): hvcbt.cjs (the bundle), sea-config.json, hvcbt.blob, gen/ (validators).
//
// Steps, each failing with a message that names it:
//   1. validators  build/gen-validators.mjs, when present, writes build/out/gen/validators.mjs (ajv standalone code);
//   2. bundle      esbuild src/main.ts -> hvcbt.cjs (CJS, node20). import.meta.url becomes the bundle's file URL via
//                  a banner; src/engine's `./precompiled-validators.js` resolves to the generated validators;
//   3. blob        sea-config.json (code cache on, no experimental warning, etcd3's .proto files as the assets
//                  `etcd3-proto/*.proto`, lz4-napi's module as the asset `lz4-napi.node`, the native addon as the asset
//                  `hvcbt_native.node` when native/ was built) -> node --experimental-sea-config;
//   4. executable  copy of process.execPath, stripped when `strip` exists (both sizes printed), blob injected with
//                  postject under the SEA sentinel fuse.
//
// Usage: node build/build-sea.mjs [--entry <file.ts>] [--out-dir <dir>] [--name <exe>] [--skip-gen] [--no-strip]
// (the options exist for tests, which build a throwaway executable elsewhere; `npm run build` uses the defaults).
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { createRequire } from 'node:module'

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const SENTINEL_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2'
const ADDON_ASSET = 'hvcbt_native.node'

const { values: opts } = parseArgs({
  options: {
    entry: { type: 'string', default: path.join(root, 'src', 'main.ts') },
    'out-dir': { type: 'string', default: path.join(root, 'build', 'out') },
    name: { type: 'string', default: 'hvcbt' },
    'skip-gen': { type: 'boolean', default: false },
    'no-strip': { type: 'boolean', default: false },
  },
})
const outDir = path.resolve(opts['out-dir'])
const entry = path.resolve(opts.entry)
const exe = path.join(outDir, opts.name + (process.platform === 'win32' ? '.exe' : ''))
const bundle = path.join(outDir, `${opts.name}.cjs`)
const blob = path.join(outDir, `${opts.name}.blob`)
const seaConfig = path.join(outDir, 'sea-config.json')
const genScript = path.join(root, 'build', 'gen-validators.mjs')
const genValidators = path.join(root, 'build', 'out', 'gen', 'validators.mjs')
const addon = path.join(root, 'native', 'build', 'Release', ADDON_ASSET)
// lz4-napi's prebuilt module for this platform (backup chunk compression); src/backup/chunk-codec.ts loads it
// from the asset 'lz4-napi.node' inside the executable
const LZ4_ASSET = 'lz4-napi.node'
const lz4 = (() => {
  const triple = { 'linux-x64': 'linux-x64-gnu', 'linux-arm64': 'linux-arm64-gnu', 'win32-x64': 'win32-x64-msvc' }[`${process.platform}-${process.arch}`]
  try {
    const pkg = createRequire(path.join(root, 'package.json')).resolve(`@antoniomuso/lz4-napi-${triple}/package.json`)
    return path.join(path.dirname(pkg), `lz4-napi.${triple}.node`)
  } catch {
    return null
  }
})()

class StepError extends Error {}

/** Run one step; any failure is reported as `build-sea: <step> failed: <why>` with exit code 1. */
async function step(name, fn) {
  const started = Date.now()
  try {
    const r = await fn()
    console.log(`build-sea: ${name} (${Date.now() - started} ms)`)
    return r
  } catch (err) {
    const why =
      err instanceof StepError
        ? err.message
        : Array.isArray(err?.errors) // esbuild has already printed each error with its source line
          ? `${err.errors.length} esbuild error(s), shown above`
          : (err?.stack ?? String(err))
    console.error(`build-sea: ${name} failed: ${why}`)
    process.exit(1)
  }
}

/**
 * Spawn a command; throws a StepError naming it when it does not exit 0. `quiet` keeps its output (postject's
 * banner and LIEF's harmless "Can't find string offset" warnings) unless it fails.
 */
function run(cmd, args, what = path.basename(cmd), quiet = false) {
  const r = spawnSync(cmd, args, { stdio: ['ignore', quiet ? 'pipe' : 'inherit', quiet ? 'pipe' : 'inherit'], cwd: root })
  if (r.error) throw new StepError(`${what}: ${r.error.message}`)
  if (r.status !== 0) {
    const output = quiet ? `\n${r.stdout}${r.stderr}`.trimEnd() : ''
    throw new StepError(`${what} exited with ${r.status ?? r.signal}${output}`)
  }
}

/** A path relative to the repository when inside it, else absolute. */
function show(p) {
  const rel = path.relative(root, p)
  return rel.startsWith('..') || path.isAbsolute(rel) ? p : rel
}

function mib(bytes) {
  return `${(bytes / 1048576).toFixed(1)} MiB`
}

if (!fs.existsSync(entry)) {
  console.error(`build-sea: entry ${show(entry)} does not exist (write it, or pass --entry)`)
  process.exit(1)
}
fs.mkdirSync(outDir, { recursive: true })

if (!opts['skip-gen'] && fs.existsSync(genScript)) {
  await step('validators: build/gen-validators.mjs', () => run(process.execPath, [genScript], 'gen-validators.mjs'))
}

/** Points src/engine's `./precompiled-validators.js` at the generated standalone validators, when they exist. */
const precompiledValidators = {
  name: 'precompiled-validators',
  setup(build) {
    const engineDir = path.join(root, 'src', 'engine')
    build.onResolve({ filter: /^\.\/precompiled-validators\.js$/ }, args => {
      if (path.resolve(args.resolveDir) !== engineDir || !fs.existsSync(genValidators)) return undefined
      return { path: genValidators }
    })
  },
}

await step(`bundle: ${show(entry)} -> ${show(bundle)}`, async () => {
  const esbuild = await import('esbuild')
  const result = await esbuild.build({
    entryPoints: [entry],
    outfile: bundle,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    // ESM code reads import.meta.url (createRequire, yargs); in CJS it is the bundle's own file URL.
    define: { 'import.meta.url': '__importMetaUrl' },
    banner: { js: "const __importMetaUrl = require('url').pathToFileURL(__filename).href;" },
    plugins: [precompiledValidators],
    legalComments: 'none',
    logLevel: 'warning',
    metafile: true,
  })
  const usedGen = Object.keys(result.metafile.inputs).some(i => path.resolve(root, i) === genValidators)
  console.log(`build-sea: bundle ${mib(fs.statSync(bundle).size)}, validators ${usedGen ? 'precompiled' : 'compiled at run time'}`)
})

await step('blob: node --experimental-sea-config', () => {
  const config = {
    main: bundle,
    output: blob,
    disableExperimentalSEAWarning: true,
    useCodeCache: true,
    assets: {
      // etcd3 reads its gRPC definitions from files at load time; src/witness/membership/etcd-protos.ts serves
      // them from these assets inside the executable
      ...Object.fromEntries(
        ['rpc.proto', 'kv.proto', 'auth.proto'].map(f => [`etcd3-proto/${f}`, path.join(root, 'node_modules', 'etcd3', 'proto', f)]),
      ),
      ...(fs.existsSync(addon) ? { [ADDON_ASSET]: addon } : {}),
      ...(lz4 && fs.existsSync(lz4) ? { [LZ4_ASSET]: lz4 } : {}),
    },
  }
  if (!fs.existsSync(addon)) console.warn(`build-sea: ${show(addon)} not built: the executable runs without sparse-file support`)
  if (!lz4 || !fs.existsSync(lz4)) console.warn('build-sea: lz4-napi has no module for this platform: backups from the executable are stored uncompressed')
  fs.writeFileSync(seaConfig, JSON.stringify(config, null, 2) + '\n')
  run(process.execPath, ['--experimental-sea-config', seaConfig], 'node --experimental-sea-config')
})

await step(`executable: ${show(exe)}`, () => {
  fs.rmSync(exe, { force: true })
  fs.copyFileSync(process.execPath, exe)
  fs.chmodSync(exe, 0o755)
  const copied = fs.statSync(exe).size
  const strip = process.platform === 'linux' && !opts['no-strip'] ? findOnPath('strip') : null
  if (strip) {
    run(strip, ['--strip-all', exe], 'strip')
    console.log(`build-sea: node binary ${mib(copied)}, stripped ${mib(fs.statSync(exe).size)}`)
  } else {
    console.log(`build-sea: node binary ${mib(copied)} (not stripped${opts['no-strip'] ? '' : ': no strip on PATH'})`)
  }
  const postject = path.join(root, 'node_modules', '.bin', process.platform === 'win32' ? 'postject.cmd' : 'postject')
  if (!fs.existsSync(postject)) throw new StepError(`${postject} missing: run npm install`)
  const args = [exe, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', SENTINEL_FUSE]
  if (process.platform === 'darwin') args.push('--macho-segment-name', 'NODE_SEA')
  run(postject, args, 'postject', true)
})

console.log(`${exe} ${fs.statSync(exe).size} bytes (${mib(fs.statSync(exe).size)})`)

function findOnPath(name) {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const p = path.join(dir, name)
    try {
      fs.accessSync(p, fs.constants.X_OK)
      return p
    } catch {
      // not here
    }
  }
  return null
}
