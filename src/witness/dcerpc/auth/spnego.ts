/**
 * SPNEGO (RFC 4178, MS-SPNG) acceptor wrapping NTLMSSP, the only mechanism offered (Kerberos is out of scope):
 *
 *   client: [APPLICATION 0] { SPNEGO OID, [0] NegTokenInit { [0] mechTypes, [2] mechToken = NTLM NEGOTIATE } }
 *   server: [1] NegTokenResp { [0] accept-incomplete, [1] NTLMSSP OID, [2] CHALLENGE }
 *   client: [1] NegTokenResp { [2] AUTHENTICATE, [3] mechListMIC }
 *   server: [1] NegTokenResp { [0] accept-completed, [3] mechListMIC }
 *
 * The mechListMIC is the NTLMSSP signature of the client's DER MechTypeList; after both MICs the NTLMSSP RC4
 * handles restart while sequence numbers continue, as Samba's clients expect. When the client's first mechanism is not NTLMSSP its
 * optimistic token is ignored and negState request-mic asks for an NTLMSSP exchange.
 */
import { ProtocolError } from '../../../engine/errors.js'
import { AuthFailure } from '../security.js'
import { OidNtlmssp, OidSpnego, children, readTlv, tlv } from './der.js'
import type { NtlmServer } from './ntlmssp.js'

const NegState = { acceptCompleted: 0, acceptIncomplete: 1, reject: 2, requestMic: 3 } as const

function negTokenResp(state: number | null, mech: boolean, token: Uint8Array | null, mic: Uint8Array | null): Buffer {
  const parts: Buffer[] = []
  if (state !== null) parts.push(tlv(0xa0, tlv(0x0a, Buffer.from([state]))))
  if (mech) parts.push(tlv(0xa1, OidNtlmssp))
  if (token) parts.push(tlv(0xa2, tlv(0x04, token)))
  if (mic) parts.push(tlv(0xa3, tlv(0x04, mic)))
  return tlv(0xa1, tlv(0x30, ...parts))
}

/** Fields of a NegTokenInit or NegTokenResp, by context tag number. */
function fields(seq: Uint8Array): Map<number, Uint8Array> {
  const m = new Map<number, Uint8Array>()
  for (const c of children(seq)) m.set(c.tag & 0x1f, c.value)
  return m
}

export class SpnegoServer {
  private mechTypes: Uint8Array | null = null
  complete = false

  constructor(readonly ntlm: NtlmServer) {}

  step(token: Uint8Array): Buffer {
    if (this.complete) throw new ProtocolError('SPNEGO', 'token after completion')
    const [outer] = readTlv(token)
    if (outer.tag === 0x60) return this.onInit(outer.value)
    if (outer.tag === 0xa1) return this.onResp(outer.value)
    throw new ProtocolError('SPNEGO', `unexpected token tag 0x${outer.tag.toString(16)}`)
  }

  private onInit(value: Uint8Array): Buffer {
    const [oid, at] = readTlv(value)
    if (!Buffer.from(oid.raw).equals(OidSpnego)) throw new ProtocolError('SPNEGO', 'not an SPNEGO token')
    const [init] = readTlv(value, at)
    if (init.tag !== 0xa0) throw new ProtocolError('SPNEGO', 'expected NegTokenInit')
    const [seq] = readTlv(init.value)
    const f = fields(seq.value)
    const mechList = f.get(0)
    if (!mechList) throw new ProtocolError('SPNEGO', 'NegTokenInit without mechTypes')
    const [list] = readTlv(mechList)
    this.mechTypes = Uint8Array.from(list.raw)
    const mechs = children(list.value).map(m => Buffer.from(m.raw))
    const ntlmAt = mechs.findIndex(m => m.equals(OidNtlmssp))
    if (ntlmAt < 0) throw new AuthFailure('SPNEGO: the client offers no NTLMSSP (Kerberos is not supported)')
    const mechToken = f.get(2)
    if (ntlmAt === 0 && mechToken) {
      const [octets] = readTlv(mechToken)
      return negTokenResp(NegState.acceptIncomplete, true, this.ntlm.step(octets.value), null)
    }
    return negTokenResp(NegState.requestMic, true, null, null)
  }

  private onResp(value: Uint8Array): Buffer {
    const [seq] = readTlv(value)
    const f = fields(seq.value)
    const tok = f.get(2)
    if (!tok) throw new ProtocolError('SPNEGO', 'NegTokenResp without a responseToken')
    const [octets] = readTlv(tok)
    const out = this.ntlm.step(octets.value)
    if (out) return negTokenResp(NegState.acceptIncomplete, false, out, null)
    const session = this.ntlm.session!
    const micField = f.get(3)
    let mic: Buffer | null = null
    if (micField) {
      const [m] = readTlv(micField)
      if (!session.verify(this.mechTypes!, m.value)) throw new AuthFailure('SPNEGO: bad mechListMIC')
      mic = session.sign(this.mechTypes!)
      session.reset(true)
    }
    this.complete = true
    return negTokenResp(NegState.acceptCompleted, false, null, mic)
  }
}
