/**
 * CRC-32C (Castagnoli), the checksum of every VHDX header, region table, log entry and (optionally) metadata.
 *
 * Polynomial 0x1EDC6F41, reflected form 0x82F63B78, initial value and final XOR 0xFFFFFFFF (RFC 3720 B.4).
 * Node has no built-in CRC-32C, so this is the classic table-driven "slicing-by-8": eight 256-entry tables let
 * the loop consume 8 bytes per iteration with independent lookups, about 1 GB/s in V8, which matters only for
 * log entries (up to megabytes) since headers are 4 KiB and region tables 64 KiB.
 */

const tables: Uint32Array[] = buildTables()

function buildTables(): Uint32Array[] {
  const t0 = new Uint32Array(256)
  for (let i = 0; i < 256; i++) {
    let c = i
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1
    t0[i] = c >>> 0
  }
  const out = [t0]
  for (let s = 1; s < 8; s++) {
    const prev = out[s - 1]!
    const t = new Uint32Array(256)
    for (let i = 0; i < 256; i++) t[i] = (prev[i]! >>> 8) ^ t0[prev[i]! & 0xff]!
    out.push(t)
  }
  return out
}

/** Continue a CRC-32C over `data`; pass the previous result as `crc` to checksum data in pieces. */
export function crc32c(data: Uint8Array, crc = 0): number {
  const [t0, t1, t2, t3, t4, t5, t6, t7] = tables as [
    Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array,
  ]
  let c = ~crc >>> 0
  let i = 0
  const n = data.length
  const end8 = n - (n % 8)
  while (i < end8) {
    const a = (c ^ (data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24))) >>> 0
    c =
      t7[a & 0xff]! ^
      t6[(a >>> 8) & 0xff]! ^
      t5[(a >>> 16) & 0xff]! ^
      t4[a >>> 24]! ^
      t3[data[i + 4]!]! ^
      t2[data[i + 5]!]! ^
      t1[data[i + 6]!]! ^
      t0[data[i + 7]!]!
    i += 8
  }
  while (i < n) c = (c >>> 8) ^ t0[(c ^ data[i++]!) & 0xff]!
  return ~c >>> 0
}

/**
 * CRC-32C of `data` computed as if the 4 bytes at `fieldOffset` were zero (how VHDX checksums its structures,
 * whose checksum field lies inside the checksummed range). `data` is not modified.
 */
export function crc32cWithZeroedField(data: Uint8Array, fieldOffset: number): number {
  let c = crc32c(data.subarray(0, fieldOffset))
  c = crc32c(ZERO4, c)
  return crc32c(data.subarray(fieldOffset + 4), c)
}

const ZERO4 = new Uint8Array(4)
