import t from 'tap'
import { readFileSync } from 'node:fs'
import { version } from '../../src/engine/version.js'

t.test('engine version matches package.json', async t => {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'))
  t.equal(version, pkg.version)
})
