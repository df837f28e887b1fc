// Builds the optional native addon (native/) during `npm install`.
// The engine runs without it (no thin files, slower extent scans), so a failed
// build is reported and the install still succeeds.
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import path from 'node:path'

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const gyp = path.join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js')
const env = { ...process.env }
// Node's headers ship with Debian's nodejs in /usr; node-gyp must not try to download them.
if (!env.npm_config_nodedir) env.npm_config_nodedir = '/usr'
const r = spawnSync(process.execPath, [gyp, 'rebuild', '--directory', path.join(root, 'native')], {
  stdio: ['ignore', 'inherit', 'inherit'],
  env,
})
if (r.status !== 0) {
  console.warn('hvcbt: the native addon did not build; the engine will run without sparse-file support')
}
