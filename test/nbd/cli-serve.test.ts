/**
 * The NBD export through the real engine process: `hvcbt serve nbd` (a CLI service that stays up until SIGINT) and
 * nbd.serve / nbd.list / nbd.stop over JSON-RPC (`hvcbt rpc`). Needs dist/ (npm run build:ts; test/run-all.sh
 * builds it first).
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { engineCommand, RpcProcess } from '../helpers/engine.js'
import { MiB, missing, run, sparseFile, tempDir } from './helpers.js'

function portOpen(port: number): Promise<boolean> {
  return new Promise(resolve => {
    const c = net.connect({ port, host: '127.0.0.1' }, () => {
      c.destroy()
      resolve(true)
    })
    c.on('error', () => resolve(false))
  })
}

t.test('hvcbt serve nbd serves until SIGINT, then stops cleanly', { skip: missing('qemu-io', 'nbdinfo') }, async t => {
  const dir = tempDir(t)
  const file = sparseFile(dir, 'disk.raw', 16 * MiB)
  const [cmd, ...pre] = engineCommand()
  const child = spawn(cmd!, [...pre, 'serve', 'nbd', file, '--listen', '127.0.0.1:0', '--name', 'cli', '--json'], {
    env: { ...process.env, NODE_OPTIONS: '' },
  })
  let stdout = ''
  let stderr = ''
  child.stderr.on('data', d => (stderr += d))
  const exited = new Promise<number | null>(resolve => child.on('exit', code => resolve(code)))
  const info = await new Promise<{ uri: string; listen: string; name: string; sizeBytes: number; readOnly: boolean }>((resolve, reject) => {
    child.stdout.on('data', d => {
      stdout += d
      try {
        resolve(JSON.parse(stdout))
      } catch {
        // not complete yet
      }
    })
    void exited.then(code => reject(new Error(`engine exited (${code}): ${stderr}`)))
  })
  t.match(info, { name: 'cli', sizeBytes: 16 * MiB, readOnly: false })
  t.match(info.uri, /^nbd:\/\/127\.0\.0\.1:\d+\/cli$/)
  await run('qemu-io', ['-f', 'raw', info.uri, '-c', 'write -P 0x3c 1M 64k', '-c', 'flush'])
  const json = JSON.parse(await run('nbdinfo', ['--json', info.uri])) as { exports: { 'export-size': number }[] }
  t.equal(json.exports[0]!['export-size'], 16 * MiB)
  child.kill('SIGINT')
  t.equal(await exited, 0, 'exits 0 after SIGINT')
  const port = Number(info.listen.split(':').pop())
  t.notOk(await portOpen(port), 'no longer listening')
  t.ok(fs.readFileSync(file).subarray(MiB, MiB + 65536).every(b => b === 0x3c), 'the write is in the file')
})

t.test('nbd.serve, nbd.list and nbd.stop over JSON-RPC', { skip: missing('qemu-img') }, async t => {
  const dir = tempDir(t)
  const file = path.join(dir, 'd.vhdx')
  await run('qemu-img', ['create', '-f', 'vhdx', file, String(32 * MiB)])
  const rpc = new RpcProcess()
  t.teardown(() => rpc.close())
  const served = await rpc.call('nbd.serve', { disk: file, listen: '127.0.0.1:0', readOnly: true })
  const r = served.result as { id: string; uri: string; listen: string; readOnly: boolean; sizeBytes: number }
  t.match(r, { readOnly: true, sizeBytes: 32 * MiB })
  const out = path.join(dir, 'out.raw')
  await run('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', r.uri, out])
  t.equal(fs.statSync(out).size, 32 * MiB, 'qemu-img read the export')
  const list = (await rpc.call('nbd.list')).result as { id: string }[]
  t.same(list.map(x => x.id), [r.id], 'nbd.list shows it')
  const remote = await rpc.call('nbd.serve', { disk: file, listen: '0.0.0.0:0' })
  t.match(remote.error, { message: /--allow-remote/ }, 'non-loopback refused')
  const stopped = await rpc.call('nbd.stop', { id: r.id })
  t.same(stopped.result, { id: r.id, stopped: true })
  t.notOk(await portOpen(Number(r.listen.split(':').pop())), 'no longer listening')
  t.same((await rpc.call('nbd.list')).result, [])
  const again = await rpc.call('nbd.stop', { id: r.id })
  t.match(again.error, { message: /no NBD export/ })
  t.equal(await rpc.close(), 0)
})
