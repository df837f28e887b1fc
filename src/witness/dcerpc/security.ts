/**
 * The contract between the DCE/RPC runtime and a security provider (NTLMSSP, SPNEGO): token exchange during
 * bind / alter_context / auth3, then per-PDU integrity and privacy (MS-RPCE 3.3.1.5.2).
 *
 * Providers see raw PDUs: `[bodyStart, trailerStart)` is the stub plus auth padding (what privacy encrypts) and the
 * signature covers the whole PDU from byte 0 through the sec_trailer (what NTLMSSP always signs).
 */

export class AuthFailure extends Error {
  override readonly name = 'AuthFailure'
}

export interface AcceptResult {
  /** Token for the client (bind_ack / alter_context_resp auth_value); null when there is nothing to send. */
  token: Uint8Array | null
  /** The security context is established. */
  complete: boolean
}

export interface SecurityContext {
  readonly authType: number
  /** Feed the client's next token. Throws AuthFailure when the credentials are wrong. */
  accept(token: Uint8Array): AcceptResult
  readonly complete: boolean
  /** Authenticated principal ('DOMAIN\\user'), null while incomplete or for anonymous. */
  readonly principal: string | null
  /** Bytes of auth_value in a protected request or response (16 for NTLMSSP). */
  readonly signatureBytes: number
  /** Verify an incoming PDU in place (decrypting the body first at privacy level); false when the check fails. */
  unwrap(pdu: Buffer, bodyStart: number, trailerStart: number, level: number): boolean
  /** Protect an outgoing PDU whose last `signatureBytes` are a placeholder: seal the body at privacy, sign. */
  wrap(pdu: Buffer, bodyStart: number, trailerStart: number, level: number): void
}

/** Creates a fresh server-side context for an auth_type (one per bind that carries a verifier). */
export type SecurityProviderFactory = (authType: number) => SecurityContext | null
