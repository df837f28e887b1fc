/**
 * DCE/RPC security contexts (security.ts) for NTLMSSP (auth_type 10) and SPNEGO-wrapped NTLMSSP (auth_type 9),
 * applying MS-RPCE 3.3.1.5.2 protection with the NTLMSSP session: integrity signs the whole PDU up to the
 * signature; privacy first encrypts the stub and auth padding, then signs the plaintext PDU.
 */
import { AuthType } from '../pdu.js'
import type { AcceptResult, SecurityContext, SecurityProviderFactory } from '../security.js'
import { NtlmServer, type NtlmServerOptions } from './ntlmssp.js'
import { SpnegoServer } from './spnego.js'

const SignatureBytes = 16

class NtlmRpcContext implements SecurityContext {
  readonly signatureBytes = SignatureBytes
  private readonly ntlm: NtlmServer
  private readonly spnego: SpnegoServer | null

  constructor(readonly authType: number, opts: NtlmServerOptions) {
    this.ntlm = new NtlmServer(opts)
    this.spnego = authType === AuthType.spnego ? new SpnegoServer(this.ntlm) : null
  }

  get complete(): boolean {
    return this.spnego ? this.spnego.complete : this.ntlm.complete
  }

  get principal(): string | null {
    return this.complete ? `${this.ntlm.domain}\\${this.ntlm.user}` : null
  }

  accept(token: Uint8Array): AcceptResult {
    const out = this.spnego ? this.spnego.step(token) : this.ntlm.step(token)
    return { token: out, complete: this.complete }
  }

  unwrap(pdu: Buffer, bodyStart: number, trailerStart: number, level: number): boolean {
    const s = this.ntlm.session
    if (!s) return false
    const sigAt = pdu.length - SignatureBytes
    if (level >= 6) s.unsealIn(pdu.subarray(bodyStart, trailerStart))
    return s.verify(pdu.subarray(0, sigAt), pdu.subarray(sigAt))
  }

  wrap(pdu: Buffer, bodyStart: number, trailerStart: number, level: number): void {
    const s = this.ntlm.session!
    const sigAt = pdu.length - SignatureBytes
    const plain = Buffer.from(pdu.subarray(0, sigAt))
    if (level >= 6) s.sealOut(pdu.subarray(bodyStart, trailerStart))
    s.sign(plain).copy(pdu, sigAt)
  }
}

/** Provider factory for the RPC server: NTLMSSP and SPNEGO(NTLMSSP) against a user lookup. */
export function ntlmSecurity(opts: NtlmServerOptions): SecurityProviderFactory {
  return authType =>
    authType === AuthType.ntlmssp || authType === AuthType.spnego ? new NtlmRpcContext(authType, opts) : null
}
