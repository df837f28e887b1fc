// etcd3 in the single executable: its .proto files are served from SEA assets or $HVCBT_ETCD_PROTO_DIR while it
// loads (etcd-protos.ts), and `witness serve --etcd` through build/out/hvcbt joins a real etcd.
// This file owns 127.0.0.66-67.
import t from 'tap'
import { spawn } from 'node:child_process'
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { etcdProtoAsset, etcdProtoName, protoSource } from '../../src/witness/membership/etcd-protos.js'
import { repoRoot, which } from '../helpers/engine.js'
import { EtcdServer } from '../helpers/etcd.js'

t.test('which paths are etcd3 proto files', async t => {
  t.equal(etcdProtoName('/usr/local/bin/../proto/rpc.proto'), 'rpc.proto')
  t.equal(etcdProtoName('/x/proto/kv.proto'), 'kv.proto')
  t.equal(etcdProtoName('C:\\hvcbt\\proto\\auth.proto'), 'auth.proto')
  t.equal(etcdProtoName('/x/proto/other.proto'), null)
  t.equal(etcdProtoName('/x/rpc.proto'), null)
  t.equal(etcdProtoName(Buffer.from('/x/proto/rpc.proto')), null, 'only string paths')
})

t.test('proto sources: none outside the executable, SEA assets inside, the folder variable first', async t => {
  t.equal(protoSource({}, null), null, 'plain node: etcd3 reads its own files')
  const assets: Record<string, string> = { [etcdProtoAsset('rpc.proto')]: 'syntax = "proto3";' }
  const sea = {
    isSea: () => true,
    getAsset: (name: string) => {
      if (!(name in assets)) throw new Error('no asset')
      return assets[name]!
    },
  }
  t.equal(protoSource({}, sea)!('rpc.proto'), 'syntax = "proto3";')
  t.throws(() => protoSource({}, sea)!('kv.proto'), /carries no etcd3-proto\/kv\.proto asset.*HVCBT_ETCD_PROTO_DIR/)
  const dir = mkdtempSync(path.join(tmpdir(), 'hvcbt-protos-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  cpSync(path.join(repoRoot, 'node_modules/etcd3/proto'), dir, { recursive: true })
  t.match(protoSource({ HVCBT_ETCD_PROTO_DIR: dir }, sea)!('kv.proto'), /package mvccpb/, 'the folder wins over the assets')
})

const exe = path.join(repoRoot, 'build/out/hvcbt')
const hooked = existsSync(exe) && readFileSync(exe).includes('HVCBT_ETCD_PROTO_DIR')
const skip = !which('etcd') ? 'etcd not installed' : !existsSync(exe) ? 'build/out/hvcbt not built'
  : !hooked ? 'build/out/hvcbt predates the etcd proto hook (rebuild with npm run build)' : false

t.test('witness serve --etcd through the single executable', { skip }, async t => {
  const etcd = await EtcdServer.start()
  t.teardown(() => etcd.stop())
  const dir = mkdtempSync(path.join(tmpdir(), 'hvcbt-witness-sea-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  cpSync(path.join(repoRoot, 'node_modules/etcd3/proto'), path.join(dir, 'proto'), { recursive: true })
  const serve = (address: string, env: NodeJS.ProcessEnv) => new Promise<string>(resolve => {
    const child = spawn(exe, ['witness', 'serve', '--node', `N${address.split('.').pop()}`, '--netname', 'SOFS', '--listen', address,
      '--port', '0', '--epm-port', '0', '--allow-anonymous', '--etcd', etcd.url, '--verbose'], {
      env: { ...process.env, NODE_OPTIONS: '', HVCBT_RUN_DIR: path.join(dir, 'run'), ...env },
    })
    let out = ''
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
    const check = (d: Buffer) => {
      out += d
      if (/Admin sockets/.test(out)) child.kill('SIGTERM')
    }
    child.stdout.on('data', check)
    child.stderr.on('data', check)
    child.on('exit', () => (clearTimeout(timer), resolve(out)))
  })
  const viaDir = await serve('127.0.0.66', { HVCBT_ETCD_PROTO_DIR: path.join(dir, 'proto') })
  t.match(viaDir, /cluster 'default' through etcd/, `joined with the protos from HVCBT_ETCD_PROTO_DIR: ${viaDir}`)
  const plain = await serve('127.0.0.67', {})
  t.notMatch(plain, /ENOENT[^\n]*proto\/rpc\.proto/, 'no longer looks for build/proto/rpc.proto')
  t.match(plain, /cluster 'default' through etcd|carries no etcd3-proto\/rpc\.proto asset/,
    'joins (assets embedded) or names the missing asset')
})
