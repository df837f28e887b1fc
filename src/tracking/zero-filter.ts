/**
 * Zero detection for changed ranges: drop the granules that read as all zeros (a trimmed or zeroed region is a
 * change, but a backup need not copy it: "oversized incrementals" is a top complaint about other tools).
 *
 * The disk's extents() answers first: ranges it reports as 'zero' or 'unallocated' are dropped without reading.
 * The rest is read in pieces of at most READ_CHUNK bytes and tested a granule at a time (a 64-bit word loop).
 * A granule with any non-zero byte is kept whole. Callers that need the zeroed ranges (to write zeros on restore)
 * get them in `zero`.
 */
import type { VirtualDisk } from '../formats/virtual-disk.js'
import { mergeRanges, subtractRanges, type ByteRange } from './ranges.js'

const READ_CHUNK = 4 * 1024 * 1024

function isAllZero(buf: Uint8Array): boolean {
  const words = buf.byteOffset % 8 === 0 && buf.length % 8 === 0
    ? new BigUint64Array(buf.buffer, buf.byteOffset, buf.length / 8) : null
  if (words) {
    for (let i = 0; i < words.length; i++) if (words[i] !== 0n) return false
    return true
  }
  for (let i = 0; i < buf.length; i++) if (buf[i] !== 0) return false
  return true
}

export interface ZeroFilterResult {
  /** Ranges holding non-zero data. */
  data: ByteRange[]
  /** Ranges that read as zeros. */
  zero: ByteRange[]
}

export async function filterZeroGranules(disk: Pick<VirtualDisk, 'size' | 'read' | 'extents'>, ranges: ByteRange[],
  granularityBytes: number, signal?: AbortSignal): Promise<ZeroFilterResult> {
  const data: ByteRange[] = []
  const chunkBytes = Math.max(granularityBytes, Math.floor(READ_CHUNK / granularityBytes) * granularityBytes)
  const buf = new Uint8Array(chunkBytes)
  for (const r of ranges) {
    for (const e of await disk.extents(r.offset, r.length)) {
      const from = Math.max(e.offset, r.offset)
      const to = Math.min(e.offset + e.length, r.offset + r.length)
      if (to <= from) continue
      if (e.state === 'zero' || e.state === 'unallocated') {
        continue // reads as zeros: nothing to copy
      }
      for (let pos = from; pos < to; pos += chunkBytes) {
        signal?.throwIfAborted()
        const len = Math.min(chunkBytes, to - pos)
        const piece = buf.subarray(0, len)
        await disk.read(pos, piece)
        for (let off = 0; off < len; off += granularityBytes) {
          const n = Math.min(granularityBytes, len - off)
          if (!isAllZero(piece.subarray(off, off + n))) data.push({ offset: pos + off, length: n })
        }
      }
    }
  }
  // A granule with any non-zero byte is kept whole (answers stay rounded to the granularity, like every query);
  // the zero ranges are what remains.
  const rounded = mergeRanges(data.map(d => {
    const start = Math.floor(d.offset / granularityBytes) * granularityBytes
    const end = Math.ceil((d.offset + d.length) / granularityBytes) * granularityBytes
    return { offset: start, length: end - start }
  }))
  const kept = subtractRanges(mergeRanges(ranges), subtractRanges(mergeRanges(ranges), rounded))
  return { data: kept, zero: subtractRanges(mergeRanges(ranges), kept) }
}
