/**
 * NTLMSSP messages and NTLMv2 authentication (MS-NLMP 2.2.1, 3.1.5, 3.2.5, 3.3.2): a server (acceptor) that
 * checks NTProofStr against the NT hash of a stored user, and a client (initiator) for HvCbt's own witness client.
 *
 *   NEGOTIATE    "NTLMSSP\0" | 1 | flags | domain fields | workstation fields | [version]
 *   CHALLENGE    "NTLMSSP\0" | 2 | target name fields | flags | server challenge (8) | reserved (8) |
 *                target info fields | version (8) | payload
 *   AUTHENTICATE "NTLMSSP\0" | 3 | LM, NT, domain, user, workstation, encrypted session key fields (8 each) |
 *                flags | version (8) | MIC (16) | payload
 *
 * A "fields" triple is u16 length | u16 max length | u32 offset from the message start. Only NTLMv2 responses with
 * extended session security are accepted (NTLMv1 and LM are refused). The MIC is checked when the client's
 * MsvAvFlags says it is present.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto'
import { ProtocolError } from '../../../engine/errors.js'
import { Reader, Writer } from '../bytes.js'
import { AuthFailure } from '../security.js'
import { NtlmFlag, NtlmSession, hmacMd5 } from './ntlm-session.js'
import { rc4 } from './rc4.js'

const Signature = Buffer.from('NTLMSSP\0', 'latin1')
/** AV pair ids (MS-NLMP 2.2.2.1). */
export const AvId = { eol: 0, nbComputerName: 1, nbDomainName: 2, dnsComputerName: 3, dnsDomainName: 4, flags: 6, timestamp: 7 } as const
/** Version structure we send: 10.0 build 20348, NTLM revision 15. */
const OurVersion = Buffer.from([10, 0, 0x7c, 0x4f, 0, 0, 0, 15])

export interface AvPair {
  id: number
  value: Uint8Array
}

export function encodeAvPairs(pairs: AvPair[]): Buffer {
  const w = new Writer()
  for (const p of pairs) w.u16(p.id).u16(p.value.length).bytes(p.value)
  return w.u16(AvId.eol).u16(0).finish()
}

export function decodeAvPairs(b: Uint8Array): AvPair[] {
  const r = new Reader(b, 'NTLMSSP')
  const out: AvPair[] = []
  while (r.remaining >= 4) {
    const id = r.u16('AvId')
    const len = r.u16('AvLen')
    if (id === AvId.eol) break
    out.push({ id, value: r.bytes(len, 'AV pair value') })
    if (out.length > 64) throw new ProtocolError('NTLMSSP', 'too many AV pairs')
  }
  return out
}

function field(r: Reader, msg: Uint8Array, what: string): Uint8Array {
  const len = r.u16(`${what} length`)
  r.u16(`${what} max length`)
  const off = r.u32(`${what} offset`)
  if (len === 0) return new Uint8Array()
  if (off + len > msg.length) throw new ProtocolError('NTLMSSP', `${what}: ${len} bytes at ${off} outside the ${msg.length}-byte message`)
  return msg.subarray(off, off + len)
}

function header(msg: Uint8Array, type: number): Reader {
  const r = new Reader(msg, 'NTLMSSP')
  if (!Buffer.from(r.bytes(8, 'signature')).equals(Signature)) throw new ProtocolError('NTLMSSP', 'bad signature')
  const t = r.u32('MessageType')
  if (t !== type) throw new ProtocolError('NTLMSSP', `expected message type ${type}, got ${t}`)
  return r
}

/** Build a message: fixed part then payload fields, filling in the (length, max, offset) triples. */
function build(type: number, fixed: (w: Writer, fieldAt: (i: number) => void) => void, payload: Uint8Array[], fixedLen: number): Buffer {
  const w = new Writer(fixedLen + payload.reduce((n, p) => n + p.length, 0))
  w.bytes(Signature).u32(type)
  const offsets: number[] = []
  let off = fixedLen
  for (const p of payload) {
    offsets.push(off)
    off += p.length
  }
  fixed(w, i => void w.u16(payload[i]!.length).u16(payload[i]!.length).u32(offsets[i]!))
  if (w.length !== fixedLen) throw new Error(`NTLMSSP fixed part is ${w.length}, expected ${fixedLen}`)
  for (const p of payload) w.bytes(p)
  return w.finish()
}

const utf16 = (s: string) => Buffer.from(s, 'utf16le')

export function ntowfv2(ntHash: Uint8Array, user: string, domain: string): Buffer {
  return hmacMd5(ntHash, utf16(user.toUpperCase() + domain))
}

/** Looks up the NT hash of a user (case-insensitive name); null when unknown. */
export type NtHashLookup = (user: string, domain: string) => Uint8Array | null

export interface NtlmServerOptions {
  lookup: NtHashLookup
  /** NetBIOS and DNS names announced in the CHALLENGE target info. */
  computerName: string
  domainName: string
}

/** Server side: NEGOTIATE -> CHALLENGE, AUTHENTICATE -> session (or AuthFailure). */
export class NtlmServer {
  private negotiate: Uint8Array | null = null
  private challengeMsg: Buffer | null = null
  private serverChallenge = randomBytes(8)
  private flags = 0
  session: NtlmSession | null = null
  user: string | null = null
  domain: string | null = null

  constructor(private readonly opts: NtlmServerOptions) {}

  get complete(): boolean {
    return this.session !== null
  }

  /** Process one client token; returns the CHALLENGE for a NEGOTIATE, null after a good AUTHENTICATE. */
  step(token: Uint8Array): Buffer | null {
    if (!this.negotiate) return this.onNegotiate(token)
    if (!this.session) {
      this.onAuthenticate(token)
      return null
    }
    throw new ProtocolError('NTLMSSP', 'token after the exchange completed')
  }

  private onNegotiate(msg: Uint8Array): Buffer {
    const r = header(msg, 1)
    const client = r.u32('NegotiateFlags')
    if (!(client & NtlmFlag.unicode)) throw new AuthFailure('NTLMSSP client does not offer Unicode')
    this.negotiate = Uint8Array.from(msg)
    const want = NtlmFlag.unicode | NtlmFlag.requestTarget | NtlmFlag.sign | NtlmFlag.seal | NtlmFlag.ntlm |
      NtlmFlag.alwaysSign | NtlmFlag.extendedSessionSecurity | NtlmFlag.version | NtlmFlag.key128 | NtlmFlag.keyExch |
      NtlmFlag.key56
    this.flags = (client & want) | NtlmFlag.unicode | NtlmFlag.ntlm | NtlmFlag.targetTypeServer | NtlmFlag.targetInfo |
      NtlmFlag.extendedSessionSecurity | NtlmFlag.version
    const o = this.opts
    const ft = Buffer.alloc(8)
    ft.writeBigUInt64LE(BigInt(Date.now()) * 10000n + 116444736000000000n)
    const targetName = utf16(o.computerName.toUpperCase())
    const targetInfo = encodeAvPairs([
      { id: AvId.nbDomainName, value: utf16(o.domainName.toUpperCase()) },
      { id: AvId.nbComputerName, value: utf16(o.computerName.toUpperCase()) },
      { id: AvId.dnsDomainName, value: utf16(o.domainName.toLowerCase()) },
      { id: AvId.dnsComputerName, value: utf16(o.computerName.toLowerCase()) },
      { id: AvId.timestamp, value: ft },
    ])
    this.challengeMsg = build(2, (w, f) => {
      f(0)
      w.u32(this.flags).bytes(this.serverChallenge).bytes(new Uint8Array(8))
      f(1)
      w.bytes(OurVersion)
    }, [targetName, targetInfo], 56)
    return this.challengeMsg
  }

  private onAuthenticate(msg: Uint8Array): void {
    const r = header(msg, 3)
    field(r, msg, 'LmChallengeResponse')
    const nt = field(r, msg, 'NtChallengeResponse')
    const domain = Buffer.from(field(r, msg, 'DomainName')).toString('utf16le')
    const user = Buffer.from(field(r, msg, 'UserName')).toString('utf16le')
    field(r, msg, 'Workstation')
    const encKey = field(r, msg, 'EncryptedRandomSessionKey')
    const flags = r.u32('NegotiateFlags')
    if (user === '' || nt.length === 0) throw new AuthFailure('anonymous NTLMSSP logon refused')
    if (nt.length <= 24) throw new AuthFailure(`NTLMv1 response from ${domain}\\${user} refused (NTLMv2 only)`)
    const ntHash = this.opts.lookup(user, domain)
    if (!ntHash) throw new AuthFailure(`unknown user ${domain}\\${user}`)
    const proof = nt.subarray(0, 16)
    const temp = nt.subarray(16)
    let key: Buffer | null = null
    for (const d of [...new Set([domain, domain.toUpperCase(), ''])]) {
      const k = ntowfv2(ntHash, user, d)
      if (timingSafeEqual(hmacMd5(k, this.serverChallenge, temp).subarray(0, 16), proof)) {
        key = k
        break
      }
    }
    if (!key) throw new AuthFailure(`wrong password for ${domain}\\${user}`)
    const sessionBaseKey = hmacMd5(key, proof)
    const negotiated = this.flags & (flags | NtlmFlag.unicode | NtlmFlag.ntlm | NtlmFlag.extendedSessionSecurity)
    let exported: Buffer = sessionBaseKey
    if (negotiated & NtlmFlag.keyExch) {
      if (encKey.length !== 16) throw new AuthFailure('KEY_EXCH negotiated without a 16-byte session key')
      exported = rc4(sessionBaseKey, encKey)
    }
    // MIC: present when the client's MsvAvFlags has 0x2; HMAC over the three messages with the MIC zeroed.
    const av = temp.length > 28 ? decodeAvPairs(temp.subarray(28)) : []
    const avFlags = av.find(p => p.id === AvId.flags)
    if (avFlags && avFlags.value.length >= 4 && Buffer.from(avFlags.value).readUInt32LE(0) & 0x2) {
      if (msg.length < 88) throw new AuthFailure('MIC announced but missing')
      const zeroed = Buffer.from(msg)
      const mic = Buffer.from(zeroed.subarray(72, 88))
      zeroed.fill(0, 72, 88)
      const expect = hmacMd5(exported, this.negotiate!, this.challengeMsg!, zeroed)
      if (!timingSafeEqual(expect, mic)) throw new AuthFailure(`bad MIC from ${domain}\\${user}`)
    }
    this.user = user
    this.domain = domain
    this.session = new NtlmSession(exported, negotiated, true)
  }
}

export interface NtlmClientOptions {
  user: string
  domain: string
  ntHash: Uint8Array
  workstation?: string
}

/** Client side, for HvCbt's own witness client and tests: NEGOTIATE, then AUTHENTICATE for a CHALLENGE. */
export class NtlmClient {
  private negotiateMsg: Buffer | null = null
  session: NtlmSession | null = null

  constructor(private readonly opts: NtlmClientOptions) {}

  negotiate(): Buffer {
    const flags = NtlmFlag.unicode | NtlmFlag.requestTarget | NtlmFlag.sign | NtlmFlag.seal | NtlmFlag.ntlm |
      NtlmFlag.alwaysSign | NtlmFlag.extendedSessionSecurity | NtlmFlag.version | NtlmFlag.key128 |
      NtlmFlag.keyExch | NtlmFlag.key56
    this.negotiateMsg = build(1, (w, f) => {
      w.u32(flags)
      f(0)
      f(1)
      w.bytes(OurVersion)
    }, [new Uint8Array(), new Uint8Array()], 40)
    return this.negotiateMsg
  }

  authenticate(challenge: Uint8Array): Buffer {
    const r = header(challenge, 2)
    field(r, challenge, 'TargetName')
    const flags = r.u32('NegotiateFlags')
    const serverChallenge = r.bytes(8, 'ServerChallenge')
    r.bytes(8, 'Reserved')
    const targetInfo = field(r, challenge, 'TargetInfo')
    const av = decodeAvPairs(targetInfo).filter(p => p.id !== AvId.flags)
    const ts = av.find(p => p.id === AvId.timestamp)?.value
    const timestamp = ts ? Buffer.from(ts) : Buffer.alloc(8)
    if (!ts) timestamp.writeBigUInt64LE(BigInt(Date.now()) * 10000n + 116444736000000000n)
    const flagsValue = Buffer.alloc(4)
    flagsValue.writeUInt32LE(0x2)
    const clientAv = encodeAvPairs([...av, { id: AvId.flags, value: flagsValue }])
    const temp = Buffer.concat([Buffer.from([1, 1, 0, 0, 0, 0, 0, 0]), timestamp, randomBytes(8), Buffer.alloc(4), clientAv, Buffer.alloc(4)])
    const key = ntowfv2(this.opts.ntHash, this.opts.user, this.opts.domain)
    const proof = hmacMd5(key, serverChallenge, temp).subarray(0, 16)
    const sessionBaseKey = hmacMd5(key, proof)
    let exported: Buffer = sessionBaseKey
    let encKey: Uint8Array = new Uint8Array()
    if (flags & NtlmFlag.keyExch) {
      exported = randomBytes(16)
      encKey = rc4(sessionBaseKey, exported)
    }
    const payload = [
      Buffer.alloc(24), Buffer.concat([proof, temp]), utf16(this.opts.domain), utf16(this.opts.user),
      utf16(this.opts.workstation ?? 'HVCBT'), encKey,
    ]
    const msg = build(3, (w, f) => {
      for (let i = 0; i < 6; i++) f(i)
      w.u32(flags).bytes(OurVersion).bytes(new Uint8Array(16))
    }, payload, 88)
    hmacMd5(exported, this.negotiateMsg!, challenge, msg).copy(msg, 72)
    this.session = new NtlmSession(exported, flags, false)
    return msg
  }
}
