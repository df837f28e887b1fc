import t from 'tap'
import { md4, ntHash } from '../../src/witness/dcerpc/auth/md4.js'
import { rc4 } from '../../src/witness/dcerpc/auth/rc4.js'
import { NtlmClient, NtlmServer, encodeAvPairs, ntowfv2 } from '../../src/witness/dcerpc/auth/ntlmssp.js'
import { NtlmFlag, NtlmSession, hmacMd5 } from '../../src/witness/dcerpc/auth/ntlm-session.js'
import { AuthFailure } from '../../src/witness/dcerpc/security.js'
import { SpnegoServer } from '../../src/witness/dcerpc/auth/spnego.js'
import { OidNtlmssp, OidSpnego, readTlv, tlv } from '../../src/witness/dcerpc/auth/der.js'

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const u16 = (s: string) => Buffer.from(s, 'utf16le')

t.test('MD4: RFC 1320 test suite', async t => {
  const cases: [string, string][] = [
    ['', '31d6cfe0d16ae931b73c59d7e0c089c0'],
    ['a', 'bde52cb31de33e46245e05fbdbd6fb24'],
    ['abc', 'a448017aaf21d8525fc10ae87aa6729d'],
    ['message digest', 'd9130a8164549fe818874806e1c7014b'],
    ['abcdefghijklmnopqrstuvwxyz', 'd79e1c308aa5bbcdeea8ed63df412da9'],
    ['ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789', '043f8582f241db351ce627e153e7f0e4'],
    ['1234567890'.repeat(8), 'e33b4ddc9c38f2199c3e7b164fcc0536'],
  ]
  for (const [m, d] of cases) t.equal(hex(md4(Buffer.from(m))), d, JSON.stringify(m))
  // MS-NLMP 4.2.1: NTOWFv1("Password")
  t.equal(hex(ntHash('Password')), 'a4f49c406510bdcab6824ee7c30fd852')
})

t.test('RC4 known answers', async t => {
  t.equal(hex(rc4(Buffer.from('Key'), Buffer.from('Plaintext'))), 'bbf316e8d940af0ad3')
  t.equal(hex(rc4(Buffer.from('Wiki'), Buffer.from('pedia'))), '1021bf0420')
  t.equal(hex(rc4(Buffer.from('Secret'), Buffer.from('Attack at dawn'))), '45a01f645fc35b383552544b9bf5')
})

t.test('NTLMv2: MS-NLMP 4.2.4 example values', async t => {
  const nt = ntHash('Password')
  const key = ntowfv2(nt, 'User', 'Domain')
  t.equal(hex(key), '0c868a403bfd7a93a3001ef22ef02e3f', 'NTOWFv2')
  const serverChallenge = Buffer.from('0123456789abcdef', 'hex')
  const av = encodeAvPairs([{ id: 2, value: u16('Domain') }, { id: 1, value: u16('Server') }])
  const temp = Buffer.concat([Buffer.from('0101000000000000', 'hex'), Buffer.alloc(8), Buffer.alloc(8, 0xaa), Buffer.alloc(4), av, Buffer.alloc(4)])
  const proof = hmacMd5(key, serverChallenge, temp)
  t.equal(hex(proof), '68cd0ab851e51c96aabc927bebef6a1c', 'NTProofStr')
  const base = hmacMd5(key, proof)
  t.equal(hex(base), '8de40ccadbc14a82f15cb0ad0de95ca3', 'SessionBaseKey')
  t.equal(hex(rc4(base, Buffer.alloc(16, 0x55))), 'c5dad2544fc9799094ce1ce90bc9d03e', 'EncryptedRandomSessionKey')
  // Sealing "Plaintext" (4.2.4.4) with flags e28a8233 and the random session key 0x55 * 16.
  const client = new NtlmSession(Buffer.alloc(16, 0x55), 0xe28a8233, false)
  const data = Buffer.from(u16('Plaintext'))
  const plain = Buffer.from(data)
  client.sealOut(data)
  t.equal(hex(data), '54e50165bf1936dc996020c1811b0f06fb5f', 'sealed data')
  t.equal(hex(client.sign(plain)), '010000007fb38ec5c55d497600000000', 'signature')
})

t.test('NTLMSSP server against the client: keys agree, wrong password and MIC tampering fail', async t => {
  const lookup = (u: string) => (u.toUpperCase() === 'ALICE' ? ntHash('pw1') : null)
  const server = new NtlmServer({ lookup, computerName: 'FS1', domainName: 'FS1' })
  const client = new NtlmClient({ user: 'alice', domain: 'LAB', ntHash: ntHash('pw1') })
  const challenge = server.step(client.negotiate())!
  t.equal(server.step(client.authenticate(challenge)), null)
  t.ok(server.complete)
  t.equal(server.user, 'alice')
  const msg = Buffer.from('hello witness')
  t.ok(server.session!.verify(msg, client.session!.sign(msg)), 'client -> server signature')
  t.ok(client.session!.verify(msg, server.session!.sign(msg)), 'server -> client signature')
  t.notOk(server.session!.verify(msg, client.session!.sign(Buffer.from('tampered'))), 'tampered message refused')
  t.ok(server.session!.flags & NtlmFlag.keyExch)

  const s2 = new NtlmServer({ lookup, computerName: 'FS1', domainName: 'FS1' })
  const bad = new NtlmClient({ user: 'alice', domain: 'LAB', ntHash: ntHash('nope') })
  const c2 = s2.step(bad.negotiate())!
  t.throws(() => s2.step(bad.authenticate(c2)), AuthFailure, 'wrong password')

  const s3 = new NtlmServer({ lookup, computerName: 'FS1', domainName: 'FS1' })
  const good = new NtlmClient({ user: 'alice', domain: 'LAB', ntHash: ntHash('pw1') })
  const c3 = s3.step(good.negotiate())!
  const auth = good.authenticate(c3)
  auth[80] = auth[80]! ^ 1 // inside the MIC
  t.throws(() => s3.step(auth), /MIC/, 'MIC tampering detected')

  const s4 = new NtlmServer({ lookup, computerName: 'FS1', domainName: 'FS1' })
  const nobody = new NtlmClient({ user: 'mallory', domain: '', ntHash: ntHash('pw1') })
  const c4 = s4.step(nobody.negotiate())!
  t.throws(() => s4.step(nobody.authenticate(c4)), /unknown user/)
})

t.test('SPNEGO wraps NTLMSSP and exchanges mechListMICs', async t => {
  const lookup = () => ntHash('pw')
  const ntlm = new NtlmServer({ lookup, computerName: 'FS1', domainName: 'FS1' })
  const spnego = new SpnegoServer(ntlm)
  const client = new NtlmClient({ user: 'u', domain: 'D', ntHash: ntHash('pw') })
  const mechTypes = tlv(0x30, OidNtlmssp)
  const init = tlv(0x60, OidSpnego, tlv(0xa0, tlv(0x30, tlv(0xa0, mechTypes), tlv(0xa2, tlv(0x04, client.negotiate())))))
  const resp1 = spnego.step(init)
  const [outer] = readTlv(resp1)
  t.equal(outer.tag, 0xa1)
  // Pull the responseToken ([2]) out of the NegTokenResp.
  const seq = readTlv(outer.value)[0].value
  let at = 0
  let token: Uint8Array | null = null
  while (at < seq.length) {
    const [f, next] = readTlv(seq, at)
    if (f.tag === 0xa2) token = readTlv(f.value)[0].value
    at = next
  }
  t.ok(token, 'challenge inside NegTokenResp')
  const auth = client.authenticate(token!)
  const mic = client.session!.sign(mechTypes)
  const resp2 = spnego.step(tlv(0xa1, tlv(0x30, tlv(0xa2, tlv(0x04, auth)), tlv(0xa3, tlv(0x04, mic)))))
  t.ok(spnego.complete)
  t.match(hex(resp2), /a0030a0100/, 'accept-completed')
  // A NegTokenInit without NTLMSSP is refused.
  const krbOnly = tlv(0x60, OidSpnego, tlv(0xa0, tlv(0x30, tlv(0xa0, tlv(0x30, Buffer.from('06092a864886f712010202', 'hex'))))))
  t.throws(() => new SpnegoServer(new NtlmServer({ lookup, computerName: 'a', domainName: 'b' })).step(krbOnly), /Kerberos/)
})
