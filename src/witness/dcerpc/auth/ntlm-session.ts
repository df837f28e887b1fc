/**
 * NTLMSSP session security with extended session security (MS-NLMP 3.4.3-3.4.5): key derivation from the
 * exported session key, and per-direction signing/sealing with a sequence number and an RC4 handle.
 *
 *   signature (16 B) = u32 version 1 | checksum: HMAC_MD5(SignKey, seq || message)[0..8], RC4'd if KEY_EXCH | u32 seq
 *
 * Sealing RC4-encrypts the message with the same handle before the checksum is encrypted, so the order of calls
 * matters and both peers must process messages in the same order.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto'
import { Rc4 } from './rc4.js'

export const NtlmFlag = {
  unicode: 0x00000001,
  oem: 0x00000002,
  requestTarget: 0x00000004,
  sign: 0x00000010,
  seal: 0x00000020,
  lmKey: 0x00000080,
  ntlm: 0x00000200,
  anonymous: 0x00000800,
  alwaysSign: 0x00008000,
  targetTypeDomain: 0x00010000,
  targetTypeServer: 0x00020000,
  extendedSessionSecurity: 0x00080000,
  targetInfo: 0x00800000,
  version: 0x02000000,
  key128: 0x20000000,
  keyExch: 0x40000000,
  key56: 0x80000000,
} as const

const md5 = (...parts: Uint8Array[]) => {
  const h = createHash('md5')
  for (const p of parts) h.update(p)
  return h.digest()
}
export const hmacMd5 = (key: Uint8Array, ...parts: Uint8Array[]) => {
  const h = createHmac('md5', key)
  for (const p of parts) h.update(p)
  return h.digest()
}

const magic = (s: string) => Buffer.from(`session key to ${s} key magic constant\0`, 'latin1')

interface Direction {
  signKey: Buffer
  seal: Rc4
  sealKey: Buffer
  seq: number
}

export class NtlmSession {
  private out!: Direction
  private in!: Direction

  /** `isServer`: which direction's keys we send with. */
  constructor(readonly exportedSessionKey: Buffer, readonly flags: number, private readonly isServer: boolean) {
    this.reset()
  }

  /**
   * (Re-)initialise keys and RC4 handles. After an SPNEGO mechListMIC exchange the RC4 handles restart while the
   * sequence numbers keep counting (`keepSequence`), which is what Samba's clients expect (checked by interop).
   */
  reset(keepSequence = false): void {
    const keepSeq = this.out && keepSequence ? [this.out.seq, this.in.seq] : null
    const k = this.exportedSessionKey
    const sealBase = this.flags & NtlmFlag.key128 ? k : this.flags & NtlmFlag.key56 ? k.subarray(0, 7) : k.subarray(0, 5)
    const dir = (from: 'client-to-server' | 'server-to-client'): Direction => {
      const sealKey = md5(sealBase, magic(`${from} sealing`))
      return { signKey: md5(k, magic(`${from} signing`)), sealKey, seal: new Rc4(sealKey), seq: 0 }
    }
    const c2s = dir('client-to-server')
    const s2c = dir('server-to-client')
    this.out = this.isServer ? s2c : c2s
    this.in = this.isServer ? c2s : s2c
    if (keepSeq) {
      this.out.seq = keepSeq[0]!
      this.in.seq = keepSeq[1]!
    }
  }

  private mac(d: Direction, message: Uint8Array): Buffer {
    const seq = Buffer.alloc(4)
    seq.writeUInt32LE(d.seq)
    let checksum = hmacMd5(d.signKey, seq, message).subarray(0, 8)
    if (this.flags & NtlmFlag.keyExch) checksum = Buffer.from(d.seal.apply(Uint8Array.from(checksum)))
    const sig = Buffer.alloc(16)
    sig.writeUInt32LE(1, 0)
    checksum.copy(sig, 4)
    sig.writeUInt32LE(d.seq, 12)
    d.seq = (d.seq + 1) >>> 0
    return sig
  }

  /** Signature over `message` for sending. */
  sign(message: Uint8Array): Buffer {
    return this.mac(this.out, message)
  }

  /** Check a received signature over `message`. */
  verify(message: Uint8Array, signature: Uint8Array): boolean {
    if (signature.length !== 16) return false
    const expect = this.mac(this.in, message)
    return timingSafeEqual(expect, signature)
  }

  /** Encrypt `region` in place for sending (call before sign() of the plaintext). */
  sealOut(region: Uint8Array): void {
    this.out.seal.apply(region)
  }

  /** Decrypt a received `region` in place (call before verify() of the plaintext). */
  unsealIn(region: Uint8Array): void {
    this.in.seal.apply(region)
  }
}
