import t from 'tap'
import { readFileSync } from 'node:fs'
import { ProtocolError } from '../../src/engine/errors.js'
import { PduFramer } from '../../src/witness/dcerpc/framing.js'
import { ContextResult, PType, Pfc, decodePdu, encodePdu, type BindAckPdu, type BindPdu, type RequestPdu } from '../../src/witness/dcerpc/pdu.js'

// PDUs captured from real peers (rpcclient and python3-samba 4.17) talking to this server, and its answers.
const fixtures = JSON.parse(readFileSync(new URL('./fixtures/pdus.json', import.meta.url), 'utf8')) as Record<string, string>
const pdu = (name: string) => Buffer.from(fixtures[name]!, 'hex')

t.test('every captured PDU decodes and re-encodes byte-identically', async t => {
  for (const [name, hex] of Object.entries(fixtures)) {
    const raw = Buffer.from(hex, 'hex')
    t.equal(encodePdu(decodePdu(raw)).toString('hex'), hex, name)
  }
})

t.test('decoded fields of real binds', async t => {
  const epm = decodePdu(pdu('rpcclient-epm-bind')) as BindPdu
  t.equal(epm.ptype, PType.bind)
  t.equal(epm.maxXmitFrag, 4280)
  t.equal(epm.contexts[0]!.abstractSyntax.uuid, 'e1af8308-5d1f-11c9-91a4-08002b14a0fa')
  t.equal(epm.contexts[0]!.abstractSyntax.major, 3)
  const ntlm = decodePdu(pdu('rpcclient-ntlmssp-bind')) as BindPdu
  t.equal(ntlm.auth?.authType, 10, 'NTLMSSP')
  t.equal(Buffer.from(ntlm.auth!.value.subarray(0, 8)).toString('latin1'), 'NTLMSSP\0')
  t.ok(ntlm.flags & Pfc.pendingCancelOrHeaderSign, 'rpcclient asks for header signing')
  const btfn = decodePdu(pdu('python-samba-bind-btfn')) as BindPdu
  t.equal(btfn.contexts.length, 2)
  t.equal(btfn.contexts[1]!.transferSyntaxes[0]!.uuid, '6cb71c2c-9812-4540-0300-000000000000')
  const ack = decodePdu(pdu('bind-ack-btfn')) as BindAckPdu
  t.same(ack.results.map(r => r.result), [ContextResult.acceptance, ContextResult.negotiateAck])
  t.equal(ack.results[1]!.reason, 0x2, 'keep-connection-on-orphan acknowledged, security context multiplexing not')
  const sealed = decodePdu(pdu('rpcclient-sealed-request')) as RequestPdu
  t.equal(sealed.auth?.authLevel, 6)
  t.equal((sealed.stub.length + sealed.auth!.padLength) % 16, 0, 'stub + pad is a multiple of 16')
  const first = decodePdu(pdu('getinterfacelist-response-first'))
  const last = decodePdu(pdu('getinterfacelist-response-last'))
  t.equal(first.flags & (Pfc.first | Pfc.last), Pfc.first)
  t.equal(last.flags & (Pfc.first | Pfc.last), Pfc.last)
  t.ok(pdu('getinterfacelist-response-first').length <= 4280, 'fragment within the negotiated 4280')
})

t.test('framing: a stream split at every byte offset gives the same PDUs', async t => {
  const all = Object.values(fixtures).map(h => Buffer.from(h, 'hex'))
  const stream = Buffer.concat(all)
  for (let cut = 0; cut <= stream.length; cut++) {
    const f = new PduFramer(65535)
    const got = [...f.push(stream.subarray(0, cut)), ...f.push(stream.subarray(cut))]
    if (got.length !== all.length || got.some((g, i) => !g.equals(all[i]!))) {
      t.fail(`split at ${cut}`)
      return
    }
  }
  const f = new PduFramer(65535)
  const bytewise: Buffer[] = []
  for (let i = 0; i < stream.length; i++) bytewise.push(...f.push(stream.subarray(i, i + 1)))
  t.equal(bytewise.length, all.length, 'byte by byte')
  t.equal(f.pending, 0)
})

t.test('framing rejects oversized and malformed headers', async t => {
  const big = Buffer.from(pdu('rpcclient-epm-bind'))
  big.writeUInt16LE(6000, 8)
  t.throws(() => new PduFramer(5840).push(big), /exceeds the limit/)
  const short = Buffer.from(big)
  short.writeUInt16LE(10, 8)
  t.throws(() => new PduFramer(5840).push(short), /frag_length 10/)
  const v4 = Buffer.from(pdu('rpcclient-epm-bind'))
  v4[0] = 4
  t.throws(() => new PduFramer(5840).push(v4), /version/)
  const be = Buffer.from(pdu('rpcclient-epm-bind'))
  be[4] = 0x00
  t.throws(() => new PduFramer(5840).push(be), /data representation/)
})

t.test('hostile PDUs raise ProtocolError only', async t => {
  const bind = pdu('rpcclient-epm-bind')
  const lying = Buffer.from(bind)
  lying[24] = 200 // n_context_elem far beyond the body
  t.throws(() => decodePdu(lying), ProtocolError)
  const authTooLong = Buffer.from(pdu('rpcclient-signed-request'))
  authTooLong.writeUInt16LE(0xfff0, 10)
  t.throws(() => decodePdu(authTooLong), ProtocolError)
  const padTooLong = Buffer.from(pdu('rpcclient-signed-request'))
  padTooLong[padTooLong.length - 16 - 6] = 0xff // auth_pad_length
  t.throws(() => decodePdu(padTooLong), ProtocolError)
  const unknown = Buffer.from(bind)
  unknown[2] = 0x55
  t.throws(() => decodePdu(unknown), /unsupported PDU type/)
  // Random mutations: only ProtocolError, never another exception.
  let seed = 12345
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32)
  const samples = Object.values(fixtures).map(h => Buffer.from(h, 'hex'))
  let other = 0
  for (let i = 0; i < 3000; i++) {
    const b = Buffer.from(samples[i % samples.length]!)
    const n = 1 + Math.floor(rnd() * 4)
    for (let k = 0; k < n; k++) b[Math.floor(rnd() * b.length)] = Math.floor(rnd() * 256)
    const cut = rnd() < 0.3 ? b.subarray(0, Math.floor(rnd() * b.length)) : b
    try {
      const p = decodePdu(cut)
      encodePdu(p)
    } catch (e) {
      if (!(e instanceof ProtocolError)) other++
    }
  }
  t.equal(other, 0, 'no non-protocol exceptions from 3000 mutated PDUs')
})
