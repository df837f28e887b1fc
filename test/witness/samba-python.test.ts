import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { addUser } from '../../src/witness/dcerpc/auth/credentials.js'
import { StaticMembership } from '../../src/witness/membership/static.js'
import { startWitnessHost } from '../../src/witness/swn/witness-host.js'

const PY = '/usr/bin/python3'
const haveSamba = spawnSync(PY, ['-c', 'import samba.dcerpc.witness']).status === 0
const IP = '127.0.0.23'
const OTHER = '127.0.0.24'
const script = new URL('./py-witness-client.py', import.meta.url).pathname

interface Step { step: string; [k: string]: unknown }

/** Run the python client; `onWaiting` is called each time it is about to block in AsyncNotify. */
async function runPython(binding: string, user: string, onWaiting: (n: number) => void): Promise<Step[]> {
  const p = spawn(PY, [script, binding, user, user ? 'Secret123!' : '', IP, OTHER], { stdio: ['pipe', 'pipe', 'inherit'] })
  const steps: Step[] = []
  let waits = 0
  for await (const line of createInterface({ input: p.stdout })) {
    const s = JSON.parse(line) as Step
    steps.push(s)
    if (s.step === 'waiting') {
      onWaiting(waits++)
      setTimeout(() => p.stdin.write('go\n'), 10)
    }
  }
  return steps
}

t.test('python3-samba samba.dcerpc.witness with ntlm,sign and seal', { skip: haveSamba ? false : 'python3-samba not installed' }, async t => {
  const dir = mkdtempSync(join(tmpdir(), 'hvcbt-witness-py-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const creds = join(dir, 'users.json')
  addUser(creds, 'alice', 'Secret123!')
  const membership = StaticMembership.parse([`FS1=${IP}`, `FS2=${OTHER}`, 'FS3=127.0.0.25'])
  const host = await startWitnessHost({
    nodeName: 'FS1', netNames: ['SOFS'], listen: [IP], port: 0, epmPort: 0, membership, credentials: creds,
    unavailableUnregisterMs: 60_000,
  })
  t.teardown(() => host.close())

  for (const opt of ['ntlm,sign', 'seal', 'spnego,seal']) {
    membership.setNodeState('FS1', 'up')
    const steps = await runPython(`ncacn_ip_tcp:${IP}[${host.port},${opt}]`, 'alice', n => {
      // The first wait: mark the node down (RESOURCE_CHANGE); the second: move PYHOST2 (CLIENT_MOVE).
      setTimeout(() => (n === 0 ? membership.setNodeState('FS1', 'down') : host.service.moveClient('PYHOST2', 'FS3')), 200)
    })
    const by = (s: string) => steps.filter(x => x.step === s)
    t.notOk(by('error')[0], `[${opt}] no error: ${JSON.stringify(by('error')[0])}`)
    const list = by('list')[0]?.interfaces as { name: string; ipv4: string; flags: number }[]
    t.same(list?.map(i => [i.name, i.ipv4, i.flags & 4]), [['FS1', IP, 0], ['FS2', OTHER, 4], ['FS3', '127.0.0.25', 4]], `[${opt}] list`)
    t.match(by('register')[0]?.handle, /[0-9a-f-]{36}/)
    t.match(by('registerex')[0]?.handle, /[0-9a-f-]{36}/)
    t.equal(by('badversion')[0]?.error, 0x51a, 'Register with V2 -> ERROR_REVISION_MISMATCH')
    const [rc, mv] = by('notify')
    t.equal(rc?.type, 1, 'RESOURCE_CHANGE')
    t.same(rc?.messages, [{ name: 'SOFS', change: 0xff }])
    t.equal(mv?.type, 2, 'CLIENT_MOVE')
    t.same(mv?.addrs, [{ ipv4: '127.0.0.25', flags: 1 }])
    t.ok(by('unregister')[0]?.ok)
    t.ok([0x57, 0x490].includes(by('unregister-again')[0]?.error as number), 'second UnRegister refused')
  }
  const anon = await runPython(`ncacn_ip_tcp:${IP}[${host.port}]`, '', () => {})
  t.equal(anon[0]?.step, 'error', 'anonymous refused')
  t.equal(anon[0]?.ntstatus, 0xc0000022, 'NT_STATUS_ACCESS_DENIED')
})
