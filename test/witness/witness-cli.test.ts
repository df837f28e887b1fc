// The witness methods through the real engine process: user add (password from stdin), serve as a service,
// admin commands over the root-only socket, a client-side registration, node-state and move-client.
// (Refusals are checked in-process by witness-methods.test.ts; each engine start here costs 1-2 s.)
import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { engineCommand, runHvcbt } from '../helpers/engine.js'

const IP1 = '127.0.0.41'
const IP2 = '127.0.0.42'

function startProcess(args: string[], env: NodeJS.ProcessEnv, input?: string) {
  const [cmd, ...pre] = engineCommand()
  const child = spawn(cmd!, [...pre, ...args], { env: { ...process.env, NODE_OPTIONS: '', ...env } })
  let out = ''
  child.stdout.on('data', d => (out += d))
  child.stderr.on('data', d => (out += d))
  if (input !== undefined) child.stdin.end(input)
  const waitFor = async (re: RegExp, ms = 15000) => {
    const end = Date.now() + ms
    while (!re.test(out)) {
      if (Date.now() > end || child.exitCode !== null) throw new Error(`waiting for ${re}: ${out}`)
      await new Promise(r => setTimeout(r, 50))
    }
  }
  return { child, waitFor, output: () => out }
}

t.test('hvcbt witness: serve, user add, clients, node-state, move-client, client register', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'hvcbt-witness-cli-'))
  const env = { HVCBT_RUN_DIR: join(dir, 'run') }
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const creds = join(dir, 'users.json')

  const add = runHvcbt(['witness', 'user', 'add', 'bob', '--credentials', creds, '--password-stdin', '--json'], { input: 'Pw0rd!x\n', env })
  t.equal(add.status, 0, add.stderr)
  t.equal(JSON.parse(add.stdout).replaced, false)
  t.equal(statSync(creds).mode & 0o777, 0o600)
  t.notMatch(readFileSync(creds, 'utf8'), /Pw0rd/, 'no password in the store')
  t.equal(runHvcbt(['witness', 'user', 'add', 'bob', '--credentials', creds], { input: '', env }).status === 0, false, 'no password source: refused')
  const onCmdline = runHvcbt(['witness', 'user', 'add', 'eve', '--credentials', creds, '--password', 'x'], { env })
  t.not(onCmdline.status, 0, 'a password on the command line is refused')
  t.match(onCmdline.stderr, /Unknown argument: password/, 'the CLI does not even offer --password')

  const serve = startProcess(['witness', 'serve', '--node', 'FS1', '--netname', 'SOFS', '--listen', IP1, '--credentials', creds,
    '--static-node', `FS1=${IP1}`, '--static-node', `FS2=${IP2}`, '--verbose'], env)
  t.teardown(() => serve.child.kill('SIGTERM'))
  await serve.waitFor(/Admin sockets/)
  const sock = join(dir, 'run', `witness-${IP1}.sock`)
  t.equal(statSync(sock).mode & 0o777, 0o600, 'admin socket is 0600')

  const list = runHvcbt(['witness', 'interfaces', '--server', IP1, '--user', 'bob', '--password-stdin', '--json'], { input: 'Pw0rd!x\n', env })
  t.equal(list.status, 0, list.stderr)
  t.same(JSON.parse(list.stdout).map((i: { name: string; witness: boolean }) => [i.name, i.witness]), [['FS1', false], ['FS2', true]])

  const client = startProcess(['witness', 'client', 'register', '--net-name', 'SOFS', '--file-server', IP2, '--witness', IP1,
    '--client-name', 'HV7', '--user', 'bob', '--password-stdin', '--seal', '--verbose'], env, 'Pw0rd!x\n')
  t.teardown(() => client.child.kill('SIGTERM'))
  await client.waitFor(/Witness node\s*: FS1/)

  const regs = JSON.parse(runHvcbt(['witness', 'clients', '--server', IP1, '--json'], { env }).stdout)
  t.equal(regs.length, 1)
  t.match(regs[0], { clientName: 'HV7', fileServerNodeName: 'FS2', networkName: 'SOFS', state: 'Waiting', principal: '\\bob' })

  const ns = runHvcbt(['witness', 'node-state', '--node', 'FS2', '--state', 'down', '--server', IP1, '--json'], { env })
  t.equal(ns.status, 0, ns.stderr)
  await client.waitFor(/resource-change: SOFS unavailable/)
  const mv = runHvcbt(['witness', 'move-client', '--client', 'HV7', '--to', 'FS1', '--server', IP1, '--json'], { env })
  t.equal(JSON.parse(mv.stdout).notified, 1)
  await client.waitFor(/client-move: 127\.0\.0\.41/)
})
