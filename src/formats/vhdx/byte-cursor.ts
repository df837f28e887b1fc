/**
 * Little-endian field access for VHDX structures. Every legal u64 offset or length in a VHDX (a file of at most
 * 64 TiB plus metadata) fits in 2^53, so `readU64` returns a JS number and maps anything larger to NaN: every
 * range check compares with `<=`/`<`, and comparisons with NaN are false, so hostile values fail closed.
 * Sequence numbers, which may use all 64 bits, are read as bigint.
 */

export function readU16(b: Uint8Array, off: number): number {
  return b[off]! | (b[off + 1]! << 8)
}

export function readU32(b: Uint8Array, off: number): number {
  return (b[off]! | (b[off + 1]! << 8) | (b[off + 2]! << 16) | (b[off + 3]! << 24)) >>> 0
}

/** u64 as a number; NaN when it exceeds 2^53 - 1 (every comparison with NaN is false, so checks fail closed). */
export function readU64(b: Uint8Array, off: number): number {
  const hi = readU32(b, off + 4)
  if (hi >= 0x200000) return NaN
  return hi * 0x1_0000_0000 + readU32(b, off)
}

/** u64 as a bigint (sequence numbers may legitimately use all 64 bits). */
export function readU64Big(b: Uint8Array, off: number): bigint {
  return (BigInt(readU32(b, off + 4)) << 32n) | BigInt(readU32(b, off))
}

export function writeU16(b: Uint8Array, off: number, v: number): void {
  b[off] = v & 0xff
  b[off + 1] = (v >>> 8) & 0xff
}

export function writeU32(b: Uint8Array, off: number, v: number): void {
  b[off] = v & 0xff
  b[off + 1] = (v >>> 8) & 0xff
  b[off + 2] = (v >>> 16) & 0xff
  b[off + 3] = (v >>> 24) & 0xff
}

export function writeU64(b: Uint8Array, off: number, v: number): void {
  writeU32(b, off, v % 0x1_0000_0000)
  writeU32(b, off + 4, Math.floor(v / 0x1_0000_0000))
}

export function writeU64Big(b: Uint8Array, off: number, v: bigint): void {
  writeU32(b, off, Number(v & 0xffffffffn))
  writeU32(b, off + 4, Number((v >> 32n) & 0xffffffffn))
}

/** True when the bytes at `off` equal the ASCII signature `sig`. */
export function hasSignature(b: Uint8Array, off: number, sig: string): boolean {
  for (let i = 0; i < sig.length; i++) if (b[off + i] !== sig.charCodeAt(i)) return false
  return true
}

export function writeAscii(b: Uint8Array, off: number, s: string): void {
  for (let i = 0; i < s.length; i++) b[off + i] = s.charCodeAt(i)
}

/** Printable rendering of a would-be signature for error messages. */
export function showBytes(b: Uint8Array, off: number, n: number): string {
  let s = ''
  for (let i = 0; i < n; i++) {
    const c = b[off + i] ?? 0
    s += c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, '0')}`
  }
  return JSON.stringify(s)
}

export function isAllZero(b: Uint8Array, off = 0, end = b.length): boolean {
  for (let i = off; i < end; i++) if (b[i] !== 0) return false
  return true
}
