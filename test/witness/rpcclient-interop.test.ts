import t from 'tap'
import { StaticMembership } from '../../src/witness/membership/static.js'
import { startWitnessHost } from '../../src/witness/swn/witness-host.js'
import { RpcclientSession, haveRpcclient } from './rpcclient-session.js'

// rpcclient always asks the endpoint mapper on port 135 first: this file owns 127.0.0.21/22.
const IP = '127.0.0.21'
const OTHER = '127.0.0.22'

t.test('rpcclient through the endpoint mapper, anonymous allowed', { skip: haveRpcclient ? false : 'rpcclient not installed' }, async t => {
  const membership = StaticMembership.parse([`FS1=${IP}`, `FS2=${OTHER},fd00::22`])
  const host = await startWitnessHost({
    nodeName: 'FS1', netNames: ['SOFS'], listen: [IP], port: 0, epmPort: 135, membership, allowAnonymous: true,
    unavailableUnregisterMs: 60_000,
  })
  t.teardown(() => host.close())
  const rc = new RpcclientSession(`ncacn_ip_tcp:${IP}`)
  t.teardown(() => rc.close())

  const lookup = await rc.cmd('epmlookup')
  t.match(lookup, new RegExp(`ncacn_ip_tcp:${IP.replace(/\./g, '\\.')}\\[${host.port},abstract_syntax=ccd8c074-d0e5-4a40-92b4-d074faa6ba28`), 'ept_lookup lists the witness endpoint')
  t.match(lookup, /no more entries/, 'and ends the iteration')
  const list = await rc.cmd('GetInterfaceList')
  t.match(list, new RegExp(`FS1 ${IP.replace(/\./g, '\\.')}`), 'local node listed')
  t.match(list, /\*\+ FS2 127\.0\.0\.22/, 'other node listed as a witness interface')
  t.notMatch(list, /\*\+ FS1/, 'local node not offered as witness')
  t.match(list, /FS2 fd00/, 'IPv6 interface listed')

  const reg = await rc.cmd(`Register -n SOFS -i ${IP} -c HOSTA`)
  const h1 = /0:[0-9a-f-]{36}/.exec(reg)?.[0]
  t.ok(h1, `Register returned a handle: ${reg}`)
  const regEx = await rc.cmd(`RegisterEx -n SOFS -i ${OTHER} -s vms -c HOSTB -t 30`)
  const h2 = /0:[0-9a-f-]{36}/.exec(regEx)?.[0]
  t.ok(h2, `RegisterEx returned a handle: ${regEx}`)
  t.equal(host.service.registrations().length, 2)
  t.same(host.service.registrations().map(r => r.clientName).sort(), ['HOSTA', 'HOSTB'])

  t.match(await rc.cmd(`Register -2 -n SOFS -i ${IP}`), /WERR_REVISION_MISMATCH/)
  t.match(await rc.cmd(`RegisterEx -1 -n SOFS -i ${IP}`), /WERR_REVISION_MISMATCH/)
  t.match(await rc.cmd(`Register -n NOTME -i ${IP}`), /WERR_INVALID_PARAMETER/)
  t.match(await rc.cmd(`Register -i ${IP}`), /WERR_INVALID_PARAMETER/)
  t.match(await rc.cmd('Register -n SOFS -i 10.9.9.9'), /WERR_INVALID_STATE/)

  // Node down -> RESOURCE_CHANGE to the held AsyncNotify.
  const pending = rc.start(`AsyncNotify ${h1}`)
  await new Promise(r => setTimeout(r, 300))
  membership.setNodeState('FS1', 'down')
  const rcOut = await pending.result()
  t.match(rcOut, /Resource change/i)
  t.match(rcOut, /SOFS -> Unavailable/)

  // Admin move -> CLIENT_MOVE.
  const pending2 = rc.start(`AsyncNotify ${h2}`)
  await new Promise(r => setTimeout(r, 300))
  t.equal(host.service.moveClient('HOSTB', 'FS2'), 1)
  const mv = await pending2.result()
  t.match(mv, /Client move/i)
  t.match(mv, /127\.0\.0\.22/)

  t.match(await rc.cmd(`UnRegister ${h1}`), /^(?!.*failed)/s)
  t.equal(host.service.registrations().length, 1)
  t.match(await rc.cmd(`UnRegister ${h1}`), /WERR_INVALID_PARAMETER|WERR_NOT_FOUND/)
})

t.test('anonymous calls are refused unless allowed', { skip: haveRpcclient ? false : 'rpcclient not installed' }, async t => {
  const membership = StaticMembership.parse([`FS1=${IP}`])
  const host = await startWitnessHost({ nodeName: 'FS1', netNames: ['SOFS'], listen: [IP], port: 0, epmPort: 135, membership })
  t.teardown(() => host.close())
  const rc = new RpcclientSession(`ncacn_ip_tcp:${IP}`)
  t.teardown(() => rc.close())
  t.match(await rc.cmd('GetInterfaceList'), /ACCESS_DENIED/)
  t.match(await rc.cmd(`Register -n SOFS -i ${IP}`), /ACCESS_DENIED/)
  t.equal(host.service.registrations().length, 0)
})

t.test('rpcclient with NTLMSSP sign and seal against the credential store', { skip: haveRpcclient ? false : 'rpcclient not installed' }, async t => {
  const { mkdtempSync, rmSync, statSync } = await import('node:fs')
  const { tmpdir } = await import('node:os')
  const { join } = await import('node:path')
  const { addUser } = await import('../../src/witness/dcerpc/auth/credentials.js')
  const dir = mkdtempSync(join(tmpdir(), 'hvcbt-witness-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const creds = join(dir, 'users.json')
  addUser(creds, 'alice', 'Secret123!')
  t.equal(statSync(creds).mode & 0o777, 0o600, 'credential file is 0600')
  const membership = StaticMembership.parse([`FS1=${IP}`, `FS2=${OTHER}`])
  const host = await startWitnessHost({
    nodeName: 'FS1', netNames: ['SOFS'], listen: [IP], port: 0, epmPort: 135, membership, credentials: creds,
  })
  t.teardown(() => host.close())
  for (const opt of ['sign', 'seal', 'ntlm,sign', 'spnego,seal']) {
    const rc = new RpcclientSession(`ncacn_ip_tcp:${IP}[${opt}]`, ['-U', 'alice%Secret123!'])
    t.teardown(() => rc.close())
    t.match(await rc.cmd('GetInterfaceList'), /\*\+ FS2 127\.0\.0\.22/, `[${opt}] GetInterfaceList`)
    const reg = await rc.cmd(`RegisterEx -n SOFS -i ${IP} -s vms -c HOST-${opt.replace(',', '-')}`)
    const h = /0:[0-9a-f-]{36}/.exec(reg)?.[0]
    t.ok(h, `[${opt}] RegisterEx: ${reg}`)
    t.equal(host.service.registrations().find(r => r.clientName === `HOST-${opt.replace(',', '-')}`)?.principal, 'WORKGROUP\\alice')
    const pending = rc.start(`AsyncNotify ${h}`)
    await new Promise(r => setTimeout(r, 200))
    host.service.moveClient(`HOST-${opt.replace(',', '-')}`, 'FS2')
    t.match(await pending.result(), /Client move/i, `[${opt}] AsyncNotify over a protected binding`)
    t.notMatch(await rc.cmd(`UnRegister ${h}`), /failed/, `[${opt}] UnRegister`)
  }
  for (const [user, opt] of [['alice%wrong', 'sign'], ['mallory%Secret123!', 'seal']] as const) {
    const rc = new RpcclientSession(`ncacn_ip_tcp:${IP}[${opt}]`, ['-U', user])
    t.teardown(() => rc.close())
    t.match(await rc.cmd('GetInterfaceList'), /ACCESS_DENIED|failed|NT_STATUS/i, `${user} refused`)
  }
  const anon = new RpcclientSession(`ncacn_ip_tcp:${IP}`)
  t.teardown(() => anon.close())
  t.match(await anon.cmd('GetInterfaceList'), /ACCESS_DENIED/, 'anonymous refused')
})
