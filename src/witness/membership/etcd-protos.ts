/**
 * Loading the etcd3 client inside the single executable.
 *
 * etcd3 reads its gRPC definitions when its connection-pool module is evaluated, from `${__dirname}/../proto/`
 * (rpc.proto, which imports kv.proto and auth.proto), through protobufjs and the `fs` module. In the single
 * executable `__dirname` is the executable's folder and no such files exist, so joining a cluster failed with
 * ENOENT. importEtcd3() evaluates etcd3 with `fs.readFileSync` answering those three paths, and only while they do
 * not exist on disk, from:
 *   1. the SEA assets `etcd3-proto/rpc.proto`, `etcd3-proto/kv.proto`, `etcd3-proto/auth.proto` (the build embeds
 *      node_modules/etcd3/proto/*.proto under these names), or
 *   2. the folder named by $HVCBT_ETCD_PROTO_DIR (for an executable built without the assets).
 * The hook is installed for the duration of the import only and touches no other path. Outside the single
 * executable, with no $HVCBT_ETCD_PROTO_DIR, etcd3 is imported as is.
 */
import fs from 'node:fs'
import path from 'node:path'
import { seaModule } from '../../platform/sea-asset.js'

export const EtcdProtoFiles = ['rpc.proto', 'kv.proto', 'auth.proto'] as const
/** SEA asset name of each proto file. */
export const etcdProtoAsset = (file: string): string => `etcd3-proto/${file}`

/** Where the proto texts come from when etcd3's own folder is missing, or null to leave etcd3 alone. */
export function protoSource(env = process.env, sea = seaModule()): ((file: string) => string) | null {
  const dir = env.HVCBT_ETCD_PROTO_DIR
  if (dir) return file => fs.readFileSync(path.join(dir, file), 'utf8')
  if (!sea) return null
  return file => {
    try {
      return sea.getAsset(etcdProtoAsset(file), 'utf8')
    } catch {
      throw new Error(`this executable carries no ${etcdProtoAsset(file)} asset (the build must embed ` +
        `node_modules/etcd3/proto/${file}); set HVCBT_ETCD_PROTO_DIR to a folder holding ${EtcdProtoFiles.join(', ')}`)
    }
  }
}

/** The proto file a path names, when it is one of etcd3's (`.../proto/rpc.proto` etc.). */
export function etcdProtoName(file: unknown): string | null {
  if (typeof file !== 'string') return null
  const m = /[\\/]proto[\\/](rpc|kv|auth)\.proto$/.exec(file)
  return m ? `${m[1]}.proto` : null
}

/** import('etcd3'), with its proto files served from the single executable's assets when they are not on disk. */
export async function importEtcd3(): Promise<typeof import('etcd3')> {
  const source = protoSource()
  if (!source) return import('etcd3')
  const target = fs as unknown as { readFileSync: (...args: unknown[]) => unknown }
  const original = target.readFileSync
  target.readFileSync = function readFileSync(this: unknown, ...args: unknown[]) {
    const name = etcdProtoName(args[0])
    if (name && !fs.existsSync(args[0] as string)) {
      const text = source(name)
      const encoding = typeof args[1] === 'string' ? args[1] : (args[1] as { encoding?: string } | undefined)?.encoding
      return encoding ? text : Buffer.from(text, 'utf8')
    }
    return original.apply(this, args)
  }
  try {
    return await import('etcd3')
  } finally {
    target.readFileSync = original
  }
}
