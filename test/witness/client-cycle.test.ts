import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { addUser } from '../../src/witness/dcerpc/auth/credentials.js'
import { StaticMembership } from '../../src/witness/membership/static.js'
import { WitnessClient } from '../../src/witness/swn/client.js'
import { startWitnessHost, type WitnessHost } from '../../src/witness/swn/witness-host.js'

// This file owns 127.0.0.31-33 (endpoint mapper on port 135 of each).
const ips = { FS1: '127.0.0.31', FS2: '127.0.0.32', FS3: '127.0.0.33' } as const

function waitFor<T>(c: WitnessClient, event: string, pred: (v: T) => boolean = () => true, ms = 8000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${event}; status ${JSON.stringify(c.status())}`)), ms)
    const on = (v: T) => {
      if (!pred(v)) return
      clearTimeout(timer)
      c.off(event, on)
      resolve(v)
    }
    c.on(event, on)
  })
}

t.test('HvCbt client against HvCbt servers: failure and move cycle over NTLMSSP', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'hvcbt-witness-cycle-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const creds = join(dir, 'users.json')
  addUser(creds, 'hyperv1', 'Pa55word!')
  const membership = StaticMembership.parse(Object.entries(ips).map(([n, ip]) => `${n}=${ip}`))
  const hosts = new Map<string, WitnessHost>()
  for (const [node, ip] of Object.entries(ips)) {
    hosts.set(node, await startWitnessHost({
      nodeName: node, netNames: ['SOFS'], listen: [ip], port: 0, epmPort: 135, membership, credentials: creds,
      unavailableUnregisterMs: 300,
    }))
  }
  t.teardown(async () => {
    for (const h of hosts.values()) await h.close()
  })
  const client = new WitnessClient({
    netName: 'SOFS', shareName: 'vms', fileServerAddress: ips.FS1, clientName: 'HV01', retryDelayMs: 100,
    auth: { user: 'hyperv1', domain: 'LAB', password: 'Pa55word!', level: 6 }, keepAliveSeconds: 2,
  })
  const events: string[] = []
  client.on('notification', n => events.push(`notification:${n.type}`))
  client.on('registered', s => events.push(`registered:${s.witnessNode}`))
  client.on('error', () => {})
  t.teardown(() => client.stop())
  client.start()

  const first = await waitFor<{ witnessNode: string }>(client, 'registered')
  t.not(first.witnessNode, 'FS1', 'witness is not the file-server node')
  t.equal(client.status().fileServerNode, 'FS1')
  const holder = hosts.get(first.witnessNode)!
  t.equal(holder.service.registrations().length, 1)
  t.equal(holder.service.registrations()[0]!.principal, 'LAB\\hyperv1')
  t.equal(holder.service.registrations()[0]!.shareName, 'vms')

  // 1. The file-server node fails: RESOURCE_CHANGE, then the server drops the registration and the client
  //    registers again.
  const rc = waitFor<{ type: number; changes: { changeType: number }[] }>(client, 'resource-change')
  const t0 = performance.now()
  membership.setNodeState('FS1', 'down')
  const n = await rc
  t.ok(performance.now() - t0 < 1000, 'notified promptly')
  t.equal(n.changes[0]!.changeType, 0xff, 'unavailable')
  await waitFor(client, 'registered')
  t.ok(client.status().reconnects >= 1, 're-registered after the forced unregister')
  membership.setNodeState('FS1', 'up')

  // 2. An administrator moves the client to FS3: CLIENT_MOVE, the client follows and re-registers elsewhere.
  const witnessNow = client.status().witnessNode!
  const moved = waitFor<{ lists: { ipv4: string }[][] }>(client, 'client-move')
  const again = waitFor<{ witnessNode: string; fileServerAddress: string }>(client, 'registered')
  t.equal(hosts.get(witnessNow)!.service.moveClient('HV01', 'FS3'), 1)
  t.equal((await moved).lists[0]![0]!.ipv4, ips.FS3)
  const afterMove = await again
  t.equal(afterMove.fileServerAddress, ips.FS3)
  t.not(afterMove.witnessNode, 'FS3', 'witness is not the new file-server node')

  // 3. The witness node itself dies: the client registers with another node.
  const dead = afterMove.witnessNode
  const recovered = waitFor<{ witnessNode: string }>(client, 'registered')
  await hosts.get(dead)!.close()
  hosts.delete(dead)
  membership.setNodeState(dead, 'down')
  const r3 = await recovered
  t.not(r3.witnessNode, dead)
  t.not(r3.witnessNode, 'FS3')

  // 4. Keep-alive: with a 2 s keep-alive the AsyncNotify returns ERROR_TIMEOUT and the client simply asks again.
  await new Promise(r => setTimeout(r, 2500))
  t.equal(client.status().state, 'registered')
  t.equal(hosts.get(r3.witnessNode)!.service.registrations()[0]?.state, 'Waiting')
  t.ok(events.length >= 5, `events: ${events.join(' ')}`)
  await client.stop()
  t.equal(client.status().state, 'stopped')
})
