/**
 * The little DER that SPNEGO (RFC 4178) needs: read and write tag-length-value with single-byte tags, and the two
 * object identifiers in play. Lengths are bounded by the enclosing buffer; nesting is shallow and fixed.
 */
import { ProtocolError } from '../../../engine/errors.js'

export interface Tlv {
  tag: number
  /** The value bytes. */
  value: Uint8Array
  /** The whole encoding (tag, length and value). */
  raw: Uint8Array
}

/** Read one TLV at `at`; returns it and the offset after it. */
export function readTlv(b: Uint8Array, at = 0): [Tlv, number] {
  if (at + 2 > b.length) throw new ProtocolError('SPNEGO', `truncated DER at ${at}`)
  const tag = b[at]!
  let len = b[at + 1]!
  let p = at + 2
  if (len & 0x80) {
    const n = len & 0x7f
    if (n === 0 || n > 3 || p + n > b.length) throw new ProtocolError('SPNEGO', `bad DER length at ${at}`)
    len = 0
    for (let i = 0; i < n; i++) len = len * 256 + b[p++]!
  }
  if (p + len > b.length) throw new ProtocolError('SPNEGO', `DER value of ${len} bytes at ${at} overruns ${b.length}`)
  return [{ tag, value: b.subarray(p, p + len), raw: b.subarray(at, p + len) }, p + len]
}

/** All TLVs inside a constructed value. */
export function children(value: Uint8Array): Tlv[] {
  const out: Tlv[] = []
  let at = 0
  while (at < value.length) {
    const [t, next] = readTlv(value, at)
    out.push(t)
    at = next
    if (out.length > 64) throw new ProtocolError('SPNEGO', 'too many DER elements')
  }
  return out
}

export function tlv(tag: number, ...parts: Uint8Array[]): Buffer {
  const value = Buffer.concat(parts)
  const n = value.length
  const len = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : n < 0x10000 ? [0x82, n >> 8, n & 0xff] : [0x83, n >> 16, (n >> 8) & 0xff, n & 0xff]
  return Buffer.concat([Buffer.from([tag, ...len]), value])
}

/** DER of OID 1.3.6.1.4.1.311.2.2.10 (NTLMSSP). */
export const OidNtlmssp = Buffer.from('060a2b0601040182370202 0a'.replace(/\s/g, ''), 'hex')
/** DER of OID 1.3.6.1.5.5.2 (SPNEGO). */
export const OidSpnego = Buffer.from('06062b0601050502', 'hex')
