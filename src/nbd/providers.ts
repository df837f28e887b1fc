/**
 * Extension points of the NBD export: metadata contexts (NBD_CMD_BLOCK_STATUS) and a write observer.
 *
 * The server knows only these interfaces and VirtualDisk. base:allocation is implemented here from
 * VirtualDisk.extents(); the tracking store plugs in `qemu:dirty-bitmap:<reference point>` contexts (flag bit 0 =
 * dirty, as QEMU defines it) through a MetaContextLister, because reference points come and go while the export
 * runs, and observes every write through a WriteObserver so its journal is marked before a write is acknowledged.
 */
import type { ExtentState, VirtualDisk } from '../formats/virtual-disk.js'
import { NBD_STATE_HOLE, NBD_STATE_ZERO } from './protocol.js'

/** One run of a block status answer: `length` bytes (nonzero) with context-defined `flags`. */
export interface BlockStatusDescriptor {
  length: number
  flags: number
}

/** A metadata context the client can select with NBD_OPT_SET_META_CONTEXT. */
export interface MetaContextProvider {
  /** Full context name, namespace:leaf, e.g. 'base:allocation' or 'qemu:dirty-bitmap:rp-3'. */
  readonly name: string
  /**
   * Status of [offset, offset+length) as consecutive descriptors starting at `offset`. The server guarantees the
   * range is inside the export and sector-aligned. The answer may cover less than `length` (the client asks again
   * from where it ends) but must cover at least one byte; it may cover more, the server clips it. Throwing makes
   * the request fail with an error chunk carrying the message (e.g. "tracking lost: ...") instead of a partial map.
   */
  blockStatus(offset: number, length: number): Promise<BlockStatusDescriptor[]>
}

/**
 * A family of contexts whose members change while the export runs (dirty bitmaps per reference point). The server
 * asks it during NBD_OPT_LIST_META_CONTEXT / NBD_OPT_SET_META_CONTEXT for every query under `prefix`.
 */
export interface MetaContextLister {
  /** Namespace prefix it answers for, ending in ':' — e.g. 'qemu:dirty-bitmap:'. */
  readonly prefix: string
  /** Every context of the family as of now (names start with `prefix`). */
  list(): Promise<MetaContextProvider[]>
}

/** Told of every change before the change is acknowledged to the client. */
export interface WriteObserver {
  /**
   * Called, and awaited, before the disk is modified and therefore before the reply; a rejection fails the request
   * with EIO and the disk is not touched. `kind`: 'write' (NBD_CMD_WRITE), 'trim', 'zero' (NBD_CMD_WRITE_ZEROES).
   */
  beforeWrite(offset: number, length: number, kind: 'write' | 'trim' | 'zero'): Promise<void>
}

/** Name of the one context the NBD specification defines. */
export const BASE_ALLOCATION = 'base:allocation'

/** base:allocation flags for a VirtualDisk extent state. */
export function allocationFlags(state: ExtentState): number {
  switch (state) {
    case 'data':
      return 0 // allocated, contents unknown
    case 'zero':
    case 'unallocated':
      return NBD_STATE_HOLE | NBD_STATE_ZERO // not allocated here and reads as zeros
    case 'parent':
      return 0 // allocated in a parent layer: not a hole of the resolved disk
  }
}

/** base:allocation over VirtualDisk.extents(), adjacent runs with equal flags merged. */
export function baseAllocationProvider(disk: Pick<VirtualDisk, 'extents'>): MetaContextProvider {
  return {
    name: BASE_ALLOCATION,
    async blockStatus(offset, length) {
      const out: BlockStatusDescriptor[] = []
      let at = offset
      for (const e of await disk.extents(offset, length)) {
        const start = Math.max(e.offset, at)
        const end = Math.min(e.offset + e.length, offset + length)
        if (end <= start) continue
        if (start !== at) break // a gap in the answer: report what is contiguous
        const flags = allocationFlags(e.state)
        const last = out[out.length - 1]
        if (last && last.flags === flags) last.length += end - start
        else out.push({ length: end - start, flags })
        at = end
      }
      return out
    },
  }
}
