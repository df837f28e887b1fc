/**
 * The Block Allocation Table held in memory, with the payload / sector-bitmap interleave and dirty tracking.
 *
 * The whole BAT is read once at open into a byte buffer (bounded by the file size, since the BAT region must lie
 * inside the file); a Uint32Array view gives each u64 entry as two halves (lo: state + low 12 bits of
 * FileOffsetMB, hi: the rest), so a lookup is two array reads and no allocation. Updates change the buffer and
 * remember which 4 KiB sectors of the BAT changed; the writer then logs exactly those sectors.
 * (The Uint32Array view assumes a little-endian host, as every platform Node supports is.)
 */
import {
  type BatGeometry, LOG_SECTOR_SIZE, MiB, PAYLOAD_BLOCK_FULLY_PRESENT, PAYLOAD_BLOCK_NOT_PRESENT, PAYLOAD_BLOCK_PARTIALLY_PRESENT,
  PAYLOAD_BLOCK_UNDEFINED, PAYLOAD_BLOCK_UNMAPPED, PAYLOAD_BLOCK_UNMAPPED_V095, PAYLOAD_BLOCK_ZERO, SB_BLOCK_NOT_PRESENT,
  SB_BLOCK_PRESENT, batEncode, batFileOffsetMB, batReserved, batState, bitmapBatIndex, payloadBatIndex,
} from './vhdx-layout.js'

export interface BatEntryProblem {
  index: number
  message: string
}

export class Bat {
  /** Raw BAT bytes, padded to whole 4 KiB sectors. */
  readonly bytes: Uint8Array
  private readonly words: Uint32Array
  private readonly dirty = new Set<number>()

  constructor(bytes: Uint8Array, readonly fileOffset: number, readonly geometry: BatGeometry, readonly hasParent: boolean) {
    const padded = Math.ceil(Math.max(bytes.length, 8) / LOG_SECTOR_SIZE) * LOG_SECTOR_SIZE
    this.bytes = new Uint8Array(padded)
    this.bytes.set(bytes)
    this.words = new Uint32Array(this.bytes.buffer, this.bytes.byteOffset, padded / 4)
  }

  static byteLength(g: BatGeometry): number {
    return Math.ceil((g.totalBatEntries * 8) / LOG_SECTOR_SIZE) * LOG_SECTOR_SIZE
  }

  payloadIndex(block: number): number {
    return payloadBatIndex(block, this.geometry.chunkRatio)
  }

  bitmapIndex(chunk: number): number {
    return bitmapBatIndex(chunk, this.geometry.chunkRatio)
  }

  state(index: number): number {
    return batState(this.words[index * 2]!)
  }

  /** File offset in bytes of the block an entry points to (0 when FileOffsetMB is 0). */
  offset(index: number): number {
    return batFileOffsetMB(this.words[index * 2]!, this.words[index * 2 + 1]!) * MiB
  }

  set(index: number, state: number, fileOffset: number): void {
    const [lo, hi] = batEncode(state, fileOffset / MiB)
    this.words[index * 2] = lo
    this.words[index * 2 + 1] = hi
    this.dirty.add(Math.floor((index * 8) / LOG_SECTOR_SIZE))
  }

  /** Changed sectors as file offset -> copy of the 4 KiB sector; clears the dirty set. */
  takeDirty(): Map<number, Uint8Array> {
    const out = new Map<number, Uint8Array>()
    for (const s of [...this.dirty].sort((a, b) => a - b)) {
      out.set(this.fileOffset + s * LOG_SECTOR_SIZE, this.bytes.slice(s * LOG_SECTOR_SIZE, (s + 1) * LOG_SECTOR_SIZE))
    }
    this.dirty.clear()
    return out
  }

  /** Highest end (bytes) of any block the BAT points to. */
  maxBlockEnd(blockSize: number): number {
    let end = 0
    for (let i = 0; i < this.geometry.totalBatEntries; i++) {
      const off = this.offset(i)
      if (off === 0) continue
      const len = this.isBitmapIndex(i) ? MiB : blockSize
      if (off + len > end) end = off + len
    }
    return end
  }

  isBitmapIndex(index: number): boolean {
    return index % (this.geometry.chunkRatio + 1) === this.geometry.chunkRatio
  }

  /**
   * Problems with individual entries: reserved bits, states not allowed for this kind of file, blocks that end
   * past `fileSize`, blocks inside the first `minOffset` bytes (header section, log, regions), and two entries
   * pointing at overlapping space. `limit` caps the list so a hostile BAT cannot produce millions of messages.
   */
  validate(blockSize: number, fileSize: number, reserved: Array<[number, number]>, limit = 100): BatEntryProblem[] {
    const out: BatEntryProblem[] = []
    const add = (index: number, message: string) => {
      if (out.length < limit) out.push({ index, message })
    }
    const spans: Array<[number, number, number]> = []
    const { chunkRatio, payloadBlocks, totalBatEntries } = this.geometry
    for (let i = 0; i < totalBatEntries; i++) {
      const lo = this.words[i * 2]!
      const state = batState(lo)
      const off = this.offset(i)
      const reservedBits = batReserved(lo)
      if (reservedBits) add(i, `reserved bits 3-19 are set (0x${reservedBits.toString(16)})`)
      const bitmap = this.isBitmapIndex(i)
      const len = bitmap ? MiB : blockSize
      if (bitmap) {
        if (!this.hasParent && (state !== SB_BLOCK_NOT_PRESENT || off !== 0)) add(i, `sector bitmap entry (state ${state}) in a file without a parent`)
        else if (state !== SB_BLOCK_NOT_PRESENT && state !== SB_BLOCK_PRESENT) add(i, `invalid sector bitmap state ${state}`)
        else if (state === SB_BLOCK_PRESENT && off === 0) add(i, 'SB_BLOCK_PRESENT with FileOffsetMB 0')
      } else {
        const block = i - Math.floor(i / (chunkRatio + 1))
        if (block >= payloadBlocks && (state !== PAYLOAD_BLOCK_NOT_PRESENT || off !== 0)) add(i, `entry for block ${block}, beyond the last payload block, is not empty`)
        switch (state) {
          case PAYLOAD_BLOCK_NOT_PRESENT:
          case PAYLOAD_BLOCK_UNDEFINED:
          case PAYLOAD_BLOCK_ZERO:
          case PAYLOAD_BLOCK_UNMAPPED:
          case PAYLOAD_BLOCK_UNMAPPED_V095:
            break
          case PAYLOAD_BLOCK_FULLY_PRESENT:
            if (off === 0) add(i, 'PAYLOAD_BLOCK_FULLY_PRESENT with FileOffsetMB 0')
            break
          case PAYLOAD_BLOCK_PARTIALLY_PRESENT:
            if (!this.hasParent) add(i, 'PAYLOAD_BLOCK_PARTIALLY_PRESENT in a file without a parent')
            else if (off === 0) add(i, 'PAYLOAD_BLOCK_PARTIALLY_PRESENT with FileOffsetMB 0')
            else if (this.state(this.bitmapIndex(Math.floor(block / chunkRatio))) !== SB_BLOCK_PRESENT) add(i, 'PAYLOAD_BLOCK_PARTIALLY_PRESENT but the sector bitmap block of its chunk is not present')
            break
          default:
            add(i, `invalid payload block state ${state}`)
        }
      }
      if (off === 0) continue
      if (off + len > fileSize) add(i, `block at ${off}+${len} ends past the end of the file (${fileSize} bytes)`)
      for (const [s, l] of reserved) if (off < s + l && s < off + len) add(i, `block at ${off} overlaps file structures at ${s}+${l}`)
      spans.push([off, len, i])
    }
    spans.sort((a, b) => a[0] - b[0])
    for (let k = 1; k < spans.length; k++) {
      const [pOff, pLen, pI] = spans[k - 1]!
      const [off, , i] = spans[k]!
      if (off < pOff + pLen) add(i, off === pOff ? `FileOffsetMB ${off / MiB} duplicates entry ${pI}` : `block at ${off} overlaps the block of entry ${pI} at ${pOff}`)
    }
    return out
  }
}
