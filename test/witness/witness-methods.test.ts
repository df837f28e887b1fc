// witness.serve in-process: settings from a config file, refusals of unsafe or unusable combinations, stop.
import t from 'tap'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { witnessMethods } from '../../src/engine/methods/witness.js'
import { stopService } from '../../src/engine/services.js'
import { adminCall } from '../../src/witness/swn/admin-channel.js'

const serve = witnessMethods.find(m => m.name === 'witness.serve')!
const ctx = { progress() {}, log() {}, signal: new AbortController().signal, interactive: false }

t.test('witness.serve takes a config file and refuses unusable settings', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'hvcbt-witness-methods-'))
  process.env.HVCBT_RUN_DIR = join(dir, 'run')
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const base = { node: 'FS1', netname: ['SOFS'], listen: ['127.0.0.51'] }
  await t.rejects(serve.handler({ ...base, epmPort: 0 }, ctx), /--credentials FILE .* or --allow-anonymous/)
  await t.rejects(serve.handler({ ...base, allowAnonymous: true, epmPort: 0 }, ctx), /endpoint mapper is needed/)
  await t.rejects(serve.handler({ ...base, allowAnonymous: true, port: 0, epmPort: 0, staticNode: ['FS2=127.0.0.52'] }, ctx), /does not list this node/)
  await t.rejects(serve.handler({ ...base, allowAnonymous: true, port: 0, epmPort: 0, staticNode: ['FS1=nope'] }, ctx), /not an IP address/)
  const cfg = join(dir, 'witness.json')
  writeFileSync(cfg, JSON.stringify({ ...base, allowAnonymous: true, port: 0, epmPort: 0, staticNode: ['FS1=127.0.0.51', 'FS2=127.0.0.52'] }))
  const r = await serve.handler({ config: cfg, netname: ['SOFS', 'SOFS2'] }, ctx)
  t.teardown(() => stopService(r.id))
  t.same(r.netNames, ['SOFS', 'SOFS2'], 'command-line values win over the file')
  t.equal(r.node, 'FS1')
  t.ok(r.port > 0)
  t.same(await adminCall(r.adminSockets[0], 'clients', {}), [])
  t.same(await adminCall(r.adminSockets[0], 'node-state', { node: 'FS2', state: 'down' }), { node: 'FS2', state: 'down' })
  await t.rejects(adminCall(r.adminSockets[0], 'node-state', { node: 'FS2', state: 'sideways' }), /up or down/)
  await t.rejects(adminCall(r.adminSockets[0], 'nope', {}), /unknown method/)
  await t.rejects(adminCall(r.adminSockets[0], 'node-state', { node: 'FS9', state: 'down' }), /no node named FS9/)
  await t.rejects(adminCall(r.adminSockets[0], 'move-client', { client: 'X', to: 'FS9' }), /no node named FS9/)
  await t.rejects(serve.handler({ config: cfg }, ctx), /in use|EADDRINUSE|already running/, 'a second service on the same address is refused')
  t.ok(await stopService(r.id))
  await t.rejects(adminCall(r.adminSockets[0], 'clients', {}), /no witness service is running/)
})
