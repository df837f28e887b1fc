/**
 * Composition of a running witness node: the DCE/RPC runtime listening on each --listen address, the witness
 * service, and (unless disabled) the endpoint mapper on port 135 of the same addresses, with the witness endpoint
 * registered in it. Used by the `witness.serve` method and by tests.
 */
import { EndpointMapper } from '../dcerpc/epm.js'
import { CredentialStore } from '../dcerpc/auth/credentials.js'
import { ntlmSecurity } from '../dcerpc/auth/rpc-security.js'
import type { SecurityProviderFactory } from '../dcerpc/security.js'
import { RpcServer, type RpcServerOptions } from '../dcerpc/server.js'
import type { MembershipSource } from '../membership/membership.js'
import { WitnessService } from './server.js'
import { WitnessSyntax } from './swn-idl.js'

export interface WitnessHostOptions {
  nodeName: string
  netNames: string[]
  listen: string[]
  /** Witness port; 0 = a free port (then clients need the endpoint mapper). */
  port: number
  /** Endpoint mapper port; 0 = no endpoint mapper. */
  epmPort: number
  membership: MembershipSource
  /** Credential store file (users + NT hashes) for NTLMSSP / SPNEGO; ignored when `security` is given. */
  credentials?: string
  security?: SecurityProviderFactory
  allowAnonymous?: boolean
  shares?: string[]
  idleExpiryMs?: number
  unavailableUnregisterMs?: number
  limits?: Pick<RpcServerOptions, 'maxFragment' | 'maxStubBytes' | 'maxCallsPerConnection' | 'maxConnections'>
  log?: RpcServerOptions['log']
}

export interface WitnessHost {
  service: WitnessService
  rpc: RpcServer
  epm: RpcServer | null
  /** The witness port actually bound (the same on every listen address). */
  port: number
  close(): Promise<void>
}

export async function startWitnessHost(o: WitnessHostOptions): Promise<WitnessHost> {
  if (o.listen.length === 0) throw new RangeError('at least one listen address is needed')
  const service = new WitnessService({
    nodeName: o.nodeName, netNames: o.netNames, membership: o.membership,
    ...(o.shares ? { shares: o.shares } : {}),
    ...(o.idleExpiryMs !== undefined ? { idleExpiryMs: o.idleExpiryMs } : {}),
    ...(o.unavailableUnregisterMs !== undefined ? { unavailableUnregisterMs: o.unavailableUnregisterMs } : {}),
  })
  let security = o.security
  if (!security && o.credentials) {
    const store = new CredentialStore(o.credentials)
    security = ntlmSecurity({ lookup: u => store.lookup(u), computerName: o.nodeName, domainName: o.nodeName })
  }
  const rpc = new RpcServer({
    interfaces: [service.rpcInterface()], allowAnonymous: o.allowAnonymous ?? false,
    ...(security ? { security } : {}), ...(o.log ? { log: o.log } : {}), ...o.limits,
  })
  let epm: RpcServer | null = null
  try {
    let port = await rpc.listen(o.listen[0]!, o.port)
    for (const ip of o.listen.slice(1)) await rpc.listen(ip, port)
    if (o.epmPort !== 0) {
      const mapper = new EndpointMapper()
      mapper.add({ syntax: WitnessSyntax, port, addresses: o.listen, annotation: 'HvCbt SMB Witness' })
      epm = new RpcServer({ interfaces: [mapper.rpcInterface()], ...(o.log ? { log: o.log } : {}) })
      for (const ip of o.listen) await epm.listen(ip, o.epmPort)
    }
    return {
      service, rpc, epm, port,
      async close() {
        service.close()
        await Promise.all([rpc.close(), epm?.close()])
      },
    }
  } catch (e) {
    service.close()
    await Promise.all([rpc.close(), epm?.close()])
    throw e
  }
}
