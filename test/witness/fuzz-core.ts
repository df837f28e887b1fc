/**
 * Fuzzing of the witness decoders, shared by the in-suite run (fuzz.test.ts) and the long run
 * (bench/witness-fuzz.mjs): PDUs, NDR stubs of every witness and endpoint-mapper operation, notification blobs,
 * NTLMSSP and SPNEGO tokens, each mutated from real captures or random. Decoders may only throw ProtocolError or
 * AuthFailure; anything else, or an input that takes more than `slowMs`, is reported.
 */
import { readFileSync } from 'node:fs'
import { ProtocolError } from '../../src/engine/errors.js'
import { decodePdu, encodePdu } from '../../src/witness/dcerpc/pdu.js'
import { EptLookup, EptMap, decodeTower } from '../../src/witness/dcerpc/epm.js'
import { AuthFailure } from '../../src/witness/dcerpc/security.js'
import { NtlmClient, NtlmServer } from '../../src/witness/dcerpc/auth/ntlmssp.js'
import { SpnegoServer } from '../../src/witness/dcerpc/auth/spnego.js'
import { ntHash } from '../../src/witness/dcerpc/auth/md4.js'
import * as swn from '../../src/witness/swn/swn-idl.js'
import { decodeNotification } from '../../src/witness/swn/swn-messages.js'

export interface FuzzReport {
  iterations: number
  rejected: number
  accepted: number
  unexpected: string[]
  slowest: number
}

export function rng(seed: number): () => number {
  let s = seed >>> 0 || 1
  return () => {
    s ^= s << 13
    s ^= s >>> 17
    s ^= s << 5
    return (s >>> 0) / 2 ** 32
  }
}

function mutate(b: Uint8Array, r: () => number): Buffer {
  const out = Buffer.from(b)
  const kind = r()
  if (kind < 0.5) {
    const n = 1 + Math.floor(r() * 6)
    for (let i = 0; i < n && out.length; i++) out[Math.floor(r() * out.length)] = Math.floor(r() * 256)
  } else if (kind < 0.7 && out.length >= 4) {
    // plant a large or boundary 32-bit value (counts, lengths)
    const v = [0xffffffff, 0x7fffffff, 0x10000, 0x100, 0, 1, out.length][Math.floor(r() * 7)]!
    out.writeUInt32LE(v >>> 0, Math.floor(r() * (out.length - 3)))
  } else if (kind < 0.85) {
    return out.subarray(0, Math.floor(r() * out.length))
  } else {
    const extra = Buffer.alloc(Math.floor(r() * 64))
    for (let i = 0; i < extra.length; i++) extra[i] = Math.floor(r() * 256)
    return Buffer.concat([out, extra])
  }
  return out
}

export function seeds(fixtureFile: string): Record<string, Buffer[]> {
  const pdus = Object.values(JSON.parse(readFileSync(fixtureFile, 'utf8')) as Record<string, string>).map(h => Buffer.from(h, 'hex'))
  const register = swn.Register.encodeIn({ version: swn.WitnessVersion.v1, netName: 'SOFS', ipAddress: '10.0.0.1', clientComputerName: 'HV1' })
  const registerEx = swn.RegisterEx.encodeIn({
    version: swn.WitnessVersion.v2, netName: 'SOFS', shareName: 'vms', ipAddress: '10.0.0.1', clientComputerName: 'HV1', flags: 1, keepAliveTimeout: 30,
  })
  const info = { interfaceGroupName: 'FS1', version: swn.WitnessVersion.v2, state: 1, ipv4: '10.0.0.1', ipv6: 'fe80::1', flags: 5 }
  const list = swn.GetInterfaceList.encodeOut({ interfaceList: { numberOfInterfaces: 2, interfaces: [info, info] }, status: 0 })
  const notify = Buffer.from('000002000100000012000000010000000400020012000000' + '12000000ff000000' + Buffer.from('SOFS\0', 'utf16le').toString('hex') + '000000000000', 'hex')
  const ntlmClient = new NtlmClient({ user: 'u', domain: 'd', ntHash: ntHash('p') })
  const negotiate = ntlmClient.negotiate()
  const challenge = new NtlmServer({ lookup: () => ntHash('p'), computerName: 'A', domainName: 'B' }).step(negotiate)!
  const authenticate = ntlmClient.authenticate(challenge)
  const epmIn = pdus.find(p => p[2] === 0 && p.length === 140)!.subarray(24)
  return { pdus, register: [register], registerEx: [registerEx], list: [list], notify: [notify], ntlm: [negotiate, challenge, authenticate], epm: [epmIn] }
}

type Target = (b: Buffer) => void

export function targets(s: Record<string, Buffer[]>): [string, Buffer[], Target][] {
  const allStubs = [...s.register!, ...s.registerEx!, ...s.list!, ...s.notify!, ...s.epm!]
  return [
    ['pdu', s.pdus!, b => void encodePdu(decodePdu(b))],
    ['Register in', s.register!, b => void swn.Register.decodeIn(b)],
    ['RegisterEx in', s.registerEx!, b => void swn.RegisterEx.decodeIn(b)],
    ['handle ops in', allStubs, b => {
      swn.UnRegister.decodeIn(b)
      swn.AsyncNotify.decodeIn(b)
    }],
    ['GetInterfaceList out', s.list!, b => void swn.GetInterfaceList.decodeOut(b)],
    ['AsyncNotify out', s.notify!, b => {
      const o = swn.AsyncNotify.decodeOut(b)
      if (o.response?.messageBuffer) decodeNotification(o.response.messageType, o.response.numberOfMessages, o.response.messageBuffer)
    }],
    ['notification blob', s.notify!.map(n => n.subarray(24, 42)), b => {
      decodeNotification(1, 1, b)
      decodeNotification(2, 1, b)
    }],
    ['ept_map / ept_lookup in', s.epm!, b => {
      const m = EptMap.decodeIn(b)
      if (m.mapTower) decodeTower(m.mapTower.towerOctets)
      EptLookup.decodeIn(b)
    }],
    ['NTLMSSP', s.ntlm!, b => {
      const srv = new NtlmServer({ lookup: () => ntHash('p'), computerName: 'A', domainName: 'B' })
      srv.step(b)
      srv.step(s.ntlm![2]!)
    }],
    ['NTLMSSP authenticate', s.ntlm!.slice(2), b => {
      const srv = new NtlmServer({ lookup: () => ntHash('p'), computerName: 'A', domainName: 'B' })
      srv.step(s.ntlm![0]!)
      srv.step(b)
    }],
    ['SPNEGO', s.pdus!.filter(p => p[22] === 9 || p.includes(0x60)).map(p => p.subarray(16)), b => {
      new SpnegoServer(new NtlmServer({ lookup: () => null, computerName: 'A', domainName: 'B' })).step(b)
    }],
  ]
}

export function fuzz(fixtureFile: string, iterations: number, seed: number, slowMs = 200): FuzzReport {
  const r = rng(seed)
  const ts = targets(seeds(fixtureFile))
  const report: FuzzReport = { iterations, rejected: 0, accepted: 0, unexpected: [], slowest: 0 }
  for (let i = 0; i < iterations; i++) {
    const [name, pool, fn] = ts[i % ts.length]!
    const base = pool.length ? pool[Math.floor(r() * pool.length)]! : Buffer.alloc(0)
    const input = r() < 0.05 ? Buffer.from(Array.from({ length: Math.floor(r() * 256) }, () => Math.floor(r() * 256))) : mutate(base, r)
    const t0 = performance.now()
    try {
      fn(input)
      report.accepted++
    } catch (e) {
      if (e instanceof ProtocolError || e instanceof AuthFailure) report.rejected++
      else if (report.unexpected.length < 20) report.unexpected.push(`${name}: ${(e as Error).stack?.split('\n').slice(0, 3).join(' | ')} input=${input.toString('hex').slice(0, 200)}`)
    }
    const ms = performance.now() - t0
    report.slowest = Math.max(report.slowest, ms)
    if (ms > slowMs && report.unexpected.length < 20) report.unexpected.push(`${name}: ${ms.toFixed(0)} ms for ${input.length} bytes`)
  }
  return report
}

/**
 * Live fuzzing: connections to a running server receive a valid bind followed by mutated PDUs (or random bytes);
 * each must end with answers or a closed connection, and a fresh client must still be served afterwards.
 */
export async function fuzzServer(
  fixtureFile: string, port: number, connections: number, seed: number,
  probe: () => Promise<boolean>,
): Promise<{ connections: number; answered: number; closed: number; probeFailures: number }> {
  const { connect } = await import('node:net')
  const r = rng(seed)
  const pdus = seeds(fixtureFile).pdus!
  const bind = pdus.find(p => p[2] === 11 && p.length === 72)!
  const witnessBind = pdus.find(p => p[2] === 11 && p.includes(0x74) && p.length === 72 && p !== bind) ?? bind
  const stats = { connections, answered: 0, closed: 0, probeFailures: 0 }
  for (let i = 0; i < connections; i++) {
    await new Promise<void>(resolve => {
      const s = connect(port, '127.0.0.1')
      let got = 0
      const done = () => {
        clearTimeout(timer)
        s.destroy()
        resolve()
      }
      const timer = setTimeout(done, 100)
      s.on('data', d => {
        got += d.length
        stats.answered++
      })
      s.on('close', () => {
        stats.closed++
        done()
      })
      s.on('error', () => {})
      s.on('connect', () => {
        if (r() < 0.8) s.write(r() < 0.5 ? witnessBind : bind)
        const n = 1 + Math.floor(r() * 4)
        for (let k = 0; k < n; k++) s.write(mutate(pdus[Math.floor(r() * pdus.length)]!, r))
        void got
      })
    })
    if (i % 50 === 49 && !(await probe())) stats.probeFailures++
  }
  if (!(await probe())) stats.probeFailures++
  return stats
}
