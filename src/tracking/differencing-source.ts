/**
 * Change source: a differencing disk. The sectors present in an AVHDX (or differencing VHD) relative to its parent
 * are exactly the changes made since the checkpoint that created it, with no driver and no tracking store: Hyper-V
 * itself keeps this record. We read it from the child's own VirtualDisk.extents(): 'data' (present here) and 'zero'
 * (here, reading as zeros: VHDX ZERO/UNMAPPED blocks hide the parent's content, so they are changes too) count;
 * 'parent' does not. 'unallocated' in a child means nothing anywhere, which cannot hide parent data: not a change.
 *
 * Cost: one extents() walk over the disk in EXTENT_STEP pieces (the formats answer from their BAT and sector
 * bitmaps without reading payload), O(extents) memory.
 */
import type { VirtualDisk } from '../formats/virtual-disk.js'
import { mergeRanges, type ByteRange } from './ranges.js'

/** extents() is asked for this many bytes at a time, so progress can be reported and cancellation honoured. */
const EXTENT_STEP = 1024 ** 3

export interface DifferencingOptions {
  /** Round ranges out to this granularity (bytes, power of two); default: no rounding. */
  granularityBytes?: number
  signal?: AbortSignal
  progress?(doneBytes: number, totalBytes: number): void
}

/** Changed ranges of the child `disk` relative to its parent (disk must be the child layer, not a resolved chain). */
export async function differencingChanges(disk: Pick<VirtualDisk, 'size' | 'extents'>, options: DifferencingOptions = {}): Promise<ByteRange[]> {
  const out: ByteRange[] = []
  const g = options.granularityBytes ?? 1
  for (let pos = 0; pos < disk.size; pos += EXTENT_STEP) {
    options.signal?.throwIfAborted()
    const len = Math.min(EXTENT_STEP, disk.size - pos)
    for (const e of await disk.extents(pos, len)) {
      if (e.state !== 'data' && e.state !== 'zero') continue
      const start = Math.floor(e.offset / g) * g
      const end = Math.min(disk.size, Math.ceil((e.offset + e.length) / g) * g)
      const last = out[out.length - 1]
      if (last && start <= last.offset + last.length) last.length = Math.max(last.length, end - last.offset)
      else out.push({ offset: start, length: end - start })
    }
    options.progress?.(pos + len, disk.size)
  }
  return mergeRanges(out)
}
