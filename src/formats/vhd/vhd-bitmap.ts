/**
 * The VHD sector bitmap in front of every block: one bit per 512-byte sector, MOST significant bit first
 * (sector 0 of the block is bit 7 of byte 0), the opposite of VHDX. In a differencing disk a set bit means "this
 * sector is in this file", a clear bit "read the parent"; dynamic disks set every bit of an allocated block.
 * Cost: bit tests and run scans are O(sectors) with a byte-at-a-time fast path for all-0 and all-1 bytes.
 */

export function bitIsSet(bitmap: Uint8Array, sector: number): boolean {
  return (bitmap[sector >>> 3]! & (0x80 >>> (sector & 7))) !== 0
}

/** Set bits [first, first+count); returns true when any bit changed. */
export function setBits(bitmap: Uint8Array, first: number, count: number): boolean {
  let changed = false
  let s = first
  const end = first + count
  while (s < end) {
    if ((s & 7) === 0 && end - s >= 8) {
      if (bitmap[s >>> 3] !== 0xff) {
        bitmap[s >>> 3] = 0xff
        changed = true
      }
      s += 8
      continue
    }
    const mask = 0x80 >>> (s & 7)
    if ((bitmap[s >>> 3]! & mask) === 0) {
      bitmap[s >>> 3]! |= mask
      changed = true
    }
    s++
  }
  return changed
}

/** True when every bit of [first, first+count) is set. */
export function allSet(bitmap: Uint8Array, first: number, count: number): boolean {
  return runLength(bitmap, first, first + count, true) === count
}

/** Number of consecutive sectors from `first` (before `end`) whose bit equals `value`. */
export function runLength(bitmap: Uint8Array, first: number, end: number, value: boolean): number {
  const full = value ? 0xff : 0x00
  let s = first
  while (s < end) {
    if ((s & 7) === 0 && end - s >= 8 && bitmap[s >>> 3] === full) {
      s += 8
      continue
    }
    if (bitIsSet(bitmap, s) !== value) break
    s++
  }
  return s - first
}
