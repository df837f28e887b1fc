#!/usr/bin/env node
// Long fuzz run of the witness decoders and a live server:
//   node bench/witness-fuzz.mjs [iterations=500000] [seed] [connections=2000]
// Decoders (PDU, NDR of every witness/endpoint-mapper operation, notification blobs, NTLMSSP, SPNEGO) may only
// throw ProtocolError/AuthFailure and must answer each input within 1 s; the live server must keep serving a
// fresh client between and after hostile connections. Exits 1 on any finding. Sources are bundled with esbuild.
import { build } from 'esbuild'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const iterations = Number(process.argv[2] ?? 500000)
const seed = Number(process.argv[3] ?? Date.now() % 2 ** 31)
const connections = Number(process.argv[4] ?? 2000)
const fixtures = join(root, 'test/witness/fixtures/pdus.json')
const dir = mkdtempSync(join(tmpdir(), 'hvcbt-witness-fuzz-'))
let failed = false
try {
  const outfile = join(dir, 'fuzz.mjs')
  await build({
    stdin: {
      contents: [
        `export { fuzz, fuzzServer } from ${JSON.stringify(join(root, 'test/witness/fuzz-core.ts'))}`,
        `export { startWitnessHost } from ${JSON.stringify(join(root, 'src/witness/swn/witness-host.ts'))}`,
        `export { StaticMembership } from ${JSON.stringify(join(root, 'src/witness/membership/static.ts'))}`,
        `export { RpcClient } from ${JSON.stringify(join(root, 'src/witness/dcerpc/client.ts'))}`,
        `export * as swn from ${JSON.stringify(join(root, 'src/witness/swn/swn-idl.ts'))}`,
      ].join('\n'),
      resolveDir: root,
      loader: 'ts',
    },
    bundle: true, platform: 'node', format: 'esm', target: 'node20', outfile, logLevel: 'error',
  })
  const { fuzz, fuzzServer, startWitnessHost, StaticMembership, RpcClient, swn } = await import(pathToFileURL(outfile).href)
  const t0 = Date.now()
  const heap0 = process.memoryUsage().heapUsed
  const r = fuzz(fixtures, iterations, seed, 1000)
  const heapGrowth = process.memoryUsage().heapUsed - heap0
  console.log(`decoders: ${r.iterations} inputs (seed ${seed}) in ${((Date.now() - t0) / 1000).toFixed(1)} s: ` +
    `${r.rejected} rejected, ${r.accepted} accepted, slowest ${r.slowest.toFixed(1)} ms, heap +${(heapGrowth / 2 ** 20).toFixed(1)} MiB`)
  for (const u of r.unexpected) console.log(`  FINDING ${u}`)
  if (r.unexpected.length) failed = true

  const host = await startWitnessHost({
    nodeName: 'FS1', netNames: ['SOFS'], listen: ['127.0.0.1'], port: 0, epmPort: 0,
    membership: StaticMembership.parse(['FS1=127.0.0.1', 'FS2=127.0.0.2']), allowAnonymous: true,
  })
  const probe = async () => {
    const c = await RpcClient.connect({ host: '127.0.0.1', port: host.port, syntax: swn.WitnessSyntax })
    try {
      return swn.GetInterfaceList.decodeOut(await c.call(0, new Uint8Array())).interfaceList?.numberOfInterfaces === 2
    } finally {
      c.close()
    }
  }
  const t1 = Date.now()
  const s = await fuzzServer(fixtures, host.port, connections, seed, probe)
  console.log(`server: ${s.connections} hostile connections in ${((Date.now() - t1) / 1000).toFixed(1)} s: ` +
    `${s.answered} answers, ${s.probeFailures} probe failures, ${host.rpc.connectionCount} connections left, ` +
    `RSS ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB`)
  if (s.probeFailures) failed = true
  await host.close()
} finally {
  rmSync(dir, { recursive: true, force: true })
}
process.exit(failed ? 1 : 0)
