/**
 * Merging a differencing VHDX into its VHDX parent (what Merge-VHD does for one level).
 *
 * Writing into the parent changes its DataWriteGuid, which breaks the child's parent_linkage; a crash in the
 * middle would leave a child that no longer opens while its data is only partly in the parent. So the order is:
 *   1. open the chain read-only (verifies the linkage) and take the child's allocation map;
 *   2. choose the parent's next DataWriteGuid G and record it in the child as parent_linkage2 (logged metadata
 *      update; the child's data is untouched);
 *   3. open the parent read-write with G preset, copy every `data` extent of the child and zero every `zero`
 *      extent, flush, close (LogGuid = 0).
 * If the process dies during step 3, the child still opens (its parent_linkage2 matches G) and the merge can simply
 * be run again: it rewrites the same bytes. Afterwards the child is redundant; deleting it is the caller's choice,
 * as is what happens to other children of the parent (they no longer match, exactly as with Hyper-V).
 */
import { EngineError } from '../../engine/errors.js'
import { VhdxDisk } from './vhdx-disk.js'
import { newGuid } from './vhdx-layout.js'
import { type ParentResolver, locatorInfo, openVhdx } from './vhdx-open.js'

export interface MergeResult {
  parentPath: string
  bytesCopied: number
  bytesZeroed: number
}

const COPY_CHUNK = 8 * 1024 * 1024

export async function mergeVhdx(childPath: string, resolveParent: ParentResolver, onProgress?: (done: number, total: number) => void): Promise<MergeResult> {
  // 1. The chain, read-only: linkage verified, map taken.
  const chain = await openVhdx(childPath, { readOnly: true }, resolveParent)
  let parentPath: string
  let extents
  try {
    if (!chain.hasParent) throw new EngineError(`${childPath}: not a differencing disk; nothing to merge`, 'InvalidOperation')
    if (!(chain.parent instanceof VhdxDisk)) throw new EngineError(`${childPath}: the parent is not a VHDX file; merge it with the generic copy`, 'NotImplemented')
    parentPath = chain.parent.path
    extents = (await chain.extents(0, chain.size)).filter(e => e.state === 'data' || e.state === 'zero')
  } finally {
    await chain.close()
  }
  // 2. Announce the parent's next DataWriteGuid to the child.
  const next = newGuid()
  const child = await openVhdx(childPath, { withoutParent: true })
  try {
    const loc = locatorInfo(child.structure)!
    const entries = Object.entries(loc.entries).filter(([k]) => k !== 'parent_linkage2')
    entries.push(['parent_linkage2', `{${next}}`])
    await child.rewriteParentLocator(entries)
  } finally {
    await child.close()
  }
  // 3. Copy into the parent. Only sectors present in the child are read, so the child needs no parent here.
  const src = await openVhdx(childPath, { readOnly: true, withoutParent: true })
  const dst = await openVhdx(parentPath, { withoutParent: true })
  const total = extents.reduce((n, e) => n + e.length, 0)
  let bytesCopied = 0
  let bytesZeroed = 0
  try {
    dst.presetDataWriteGuid(next)
    const buf = new Uint8Array(Math.min(COPY_CHUNK, Math.max(total, src.logicalSectorSize)))
    for (const e of extents) {
      if (e.state === 'zero') {
        await dst.writeZeroes(e.offset, e.length)
        bytesZeroed += e.length
      } else {
        for (let off = e.offset; off < e.offset + e.length; off += buf.length) {
          const part = buf.subarray(0, Math.min(buf.length, e.offset + e.length - off))
          await src.read(off, part)
          await dst.write(off, part)
          bytesCopied += part.length
        }
      }
      onProgress?.(bytesCopied + bytesZeroed, total)
    }
    await dst.flush()
  } finally {
    await src.close()
    await dst.close()
  }
  return { parentPath, bytesCopied, bytesZeroed }
}
