/**
 * NBD metadata context `qemu:dirty-bitmap:<reference-point-id>`: block status where flag bit 0 = changed since that
 * reference point (the flag value qemu's dirty-bitmap context uses; clients such as nbdinfo --map and
 * virtnbdbackup read it). Implements the MetaContextProvider shape of src/nbd/providers.ts structurally, so this
 * module does not import nbd/ (imports point one way: engine/ wires the two together).
 *
 * Cost per query: the OR of frozen segments since the point is computed once per reference point layout (one O(w)
 * pass per segment) and cached; each query then walks the runs of that union and of the live bitmap inside the
 * requested range only (O(words in range + runs)).
 */
import type { DenseBitmap } from './bitmap.js'
import type { TrackingStore } from './store.js'

export const DIRTY_BITMAP_CONTEXT_PREFIX = 'qemu:dirty-bitmap:'
/** Flag of a changed extent. */
export const NBD_STATE_DIRTY = 1

export interface BlockStatusExtent {
  length: number
  flags: number
}

export class DirtyBitmapContext {
  readonly name: string
  private cache: { bitmap: DenseBitmap; layoutVersion: number } | null = null

  constructor(private readonly store: TrackingStore, readonly refPointId: string) {
    this.name = DIRTY_BITMAP_CONTEXT_PREFIX + refPointId
  }

  /** Extents covering [offset, offset+length) exactly, alternating clean (0) and dirty (1). */
  async blockStatus(offset: number, length: number): Promise<BlockStatusExtent[]> {
    if (length <= 0) return []
    this.store.assertTrusted()
    if (!this.cache || this.cache.layoutVersion !== this.store.layoutVersion) {
      this.cache = await this.store.frozenChangesSince(this.refPointId)
    }
    const g = this.store.granularityBytes
    const g0 = Math.floor(offset / g)
    const g1 = Math.ceil((offset + length) / g)
    const runs = mergeRunLists(this.cache.bitmap.runs(g0, g1), this.store.liveBitmap.runs(g0, g1))
    const out: BlockStatusExtent[] = []
    const end = offset + length
    let pos = offset
    const push = (to: number, flags: number): void => {
      const len = Math.min(to, end) - pos
      if (len <= 0) return
      const last = out[out.length - 1]
      if (last && last.flags === flags) last.length += len
      else out.push({ length: len, flags })
      pos += len
    }
    for (const [s, c] of runs) {
      push(s * g, 0)
      push((s + c) * g, NBD_STATE_DIRTY)
    }
    push(end, 0)
    return out
  }
}

/** Union of two sorted lists of [start, count] runs, as sorted, merged runs. */
export function mergeRunLists(a: Array<[number, number]>, b: Array<[number, number]>): Array<[number, number]> {
  const out: Array<[number, number]> = []
  let i = 0
  let j = 0
  while (i < a.length || j < b.length) {
    const next = j >= b.length || (i < a.length && a[i]![0] <= b[j]![0]) ? a[i++]! : b[j++]!
    const last = out[out.length - 1]
    if (last && next[0] <= last[0] + last[1]) last[1] = Math.max(last[1], next[0] + next[1] - last[0])
    else out.push([next[0], next[1]])
  }
  return out
}
