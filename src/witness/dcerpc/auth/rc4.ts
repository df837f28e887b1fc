/**
 * RC4 as NTLMSSP uses it (MS-NLMP 3.4: a stateful "handle" per direction, and one-shot key exchange). Node's
 * OpenSSL 3 only offers RC4 through the legacy provider, so it is implemented here.
 */
export class Rc4 {
  private readonly s = new Uint8Array(256)
  private i = 0
  private j = 0

  constructor(key: Uint8Array) {
    if (key.length === 0) throw new RangeError('RC4 key is empty')
    const s = this.s
    for (let k = 0; k < 256; k++) s[k] = k
    let j = 0
    for (let k = 0; k < 256; k++) {
      j = (j + s[k]! + key[k % key.length]!) & 0xff
      const t = s[k]!
      s[k] = s[j]!
      s[j] = t
    }
  }

  /** XOR the keystream into `data` in place (the state advances); returns `data`. */
  apply(data: Uint8Array): Uint8Array {
    const s = this.s
    let { i, j } = this
    for (let k = 0; k < data.length; k++) {
      i = (i + 1) & 0xff
      j = (j + s[i]!) & 0xff
      const t = s[i]!
      s[i] = s[j]!
      s[j] = t
      data[k]! ^= s[(s[i]! + s[j]!) & 0xff]!
    }
    this.i = i
    this.j = j
    return data
  }
}

/** One-shot RC4 of a copy of `data`. */
export function rc4(key: Uint8Array, data: Uint8Array): Buffer {
  return Buffer.from(new Rc4(key).apply(Uint8Array.from(data)))
}
