// A capture of real clients (rpcclient anonymous/sign/seal, python3-samba with bind-time feature negotiation,
// HvCbt's client) against the server, decoded by tshark's DCE/RPC witness dissector: no malformed packets.
import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { addUser } from '../../src/witness/dcerpc/auth/credentials.js'
import { StaticMembership } from '../../src/witness/membership/static.js'
import { WitnessClient } from '../../src/witness/swn/client.js'
import { startWitnessHost } from '../../src/witness/swn/witness-host.js'
import { RpcclientSession, haveRpcclient } from './rpcclient-session.js'

const IP = '127.0.0.27'
const haveTshark = spawnSync('tshark', ['--version']).status === 0
const skip = !haveTshark ? 'tshark not installed' : !haveRpcclient ? 'rpcclient not installed' : process.getuid?.() !== 0 ? 'capturing needs root' : false

t.test('tshark decodes a witness session with no malformed packets', { skip }, async t => {
  const dir = mkdtempSync(join(tmpdir(), 'hvcbt-witness-tshark-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const pcap = join(dir, 'witness.pcapng')
  const creds = join(dir, 'users.json')
  addUser(creds, 'alice', 'Secret123!')
  // 10 nodes: the GetInterfaceList answer (5.5 KB) is fragmented.
  const membership = StaticMembership.parse(Array.from({ length: 10 }, (_, i) => `FS${i + 1}=127.0.0.${27 + i}`))
  const host = await startWitnessHost({
    nodeName: 'FS1', netNames: ['SOFS'], listen: [IP], port: 0, epmPort: 135, membership, credentials: creds, allowAnonymous: true,
    unavailableUnregisterMs: 60_000,
  })
  t.teardown(() => host.close())

  const cap = spawn('tshark', ['-i', 'lo', '-f', `host ${IP}`, '-w', pcap], { stdio: ['ignore', 'ignore', 'pipe'] })
  let capErr = ''
  cap.stderr.on('data', d => (capErr += d))
  const started = Date.now()
  while (!/Capturing on/.test(capErr) && Date.now() - started < 15000) await new Promise(r => setTimeout(r, 100))
  t.match(capErr, /Capturing on/, 'capture started')

  for (const [binding, args] of [[`ncacn_ip_tcp:${IP}`, ['-U%', '-N']], [`ncacn_ip_tcp:${IP}[sign]`, ['-U', 'alice%Secret123!']], [`ncacn_ip_tcp:${IP}[seal]`, ['-U', 'alice%Secret123!']]] as const) {
    const rc = new RpcclientSession(binding, [...args])
    await rc.cmd('GetInterfaceList')
    const h = /0:[0-9a-f-]{36}/.exec(await rc.cmd(`Register -n SOFS -i 127.0.0.28 -c CAP1`))![0]
    const h2 = /0:[0-9a-f-]{36}/.exec(await rc.cmd(`RegisterEx -n SOFS -i 127.0.0.29 -s vms -c CAP2 -t 5`))![0]
    const pending = rc.start(`AsyncNotify ${h}`)
    await new Promise(r => setTimeout(r, 200))
    membership.setNodeState('FS2', 'down')
    await pending.result()
    membership.setNodeState('FS2', 'up')
    const p2 = rc.start(`AsyncNotify ${h2}`)
    await new Promise(r => setTimeout(r, 200))
    host.service.moveClient('CAP2', 'FS4')
    await p2.result()
    await rc.cmd(`UnRegister ${h}`)
    rc.close()
  }
  spawnSync('/usr/bin/python3', ['-c', [
    'from samba.dcerpc import witness', 'from samba import credentials, param', 'lp = param.LoadParm()',
    'c = credentials.Credentials(); c.guess(lp); c.set_anonymous()',
    `w = witness.witness("ncacn_ip_tcp:${IP}[${host.port}]", lp, c)`, 'w.GetInterfaceList()',
  ].join('\n')], { timeout: 15000 })
  const client = new WitnessClient({ netName: 'SOFS', fileServerAddress: '127.0.0.30', witnessServers: [IP], clientName: 'HVCBT', auth: { user: 'alice', password: 'Secret123!', level: 6 } })
  client.on('error', () => {})
  const registered = new Promise(r => client.once('registered', r))
  client.start()
  await registered
  await client.stop()

  await new Promise(r => setTimeout(r, 500))
  cap.kill('SIGINT')
  await new Promise(r => cap.once('exit', r))
  const decode = (filter: string) => spawnSync('tshark', ['-r', pcap, '-d', `tcp.port==${host.port},dcerpc`, '-Y', filter], { encoding: 'utf8' }).stdout.trim()
  const malformed = decode('_ws.malformed || _ws.expert.severity >= "error"')
  t.equal(malformed, '', 'no malformed packets')
  const all = decode('dcerpc').split('\n')
  const witness = all.filter(l => / WITNESS /.test(l))
  t.ok(witness.length >= 20, `${witness.length} witness packets decoded`)
  t.ok(all.some(l => /AsyncNotify response/.test(l)), 'AsyncNotify responses dissected')
  t.ok(all.some(l => /Bind_ack.*NTLMSSP_CHALLENGE/.test(l)), 'NTLMSSP challenge in bind_ack')
  t.ok(all.some(l => /EPM .*Map response/.test(l)), 'endpoint mapper dissected')
  t.ok(all.some(l => /Fragment: 1st/.test(l)), 'fragmented response seen')
})
