/**
 * Merge a differencing child into its parent (what Merge-VHD does for one level): afterwards the parent alone
 * reads exactly as the chain did through the child.
 *
 * Order (crash-safe at every step):
 *   1. Open the child read-only, as its own layer (its parent is not attached: only the child's own extents are
 *      read), and the parent read-write: the one place in HvCbt where a parent is written, explicitly.
 *   2. Data first: every range the child holds ('data') is copied into the parent; ranges the child records as
 *      zeros ('zero', or 'unallocated' in a layer that hides its parent) are written as zeros in the parent.
 *      Ranges the child leaves to its parent ('parent') are untouched.
 *   3. Flush the parent and close it cleanly (for VHDX: log applied, LogGuid = 0). Writing changed the parent's
 *      DataWriteGuid (VHDX), so the child's parent_linkage no longer matches: the child can no longer be opened
 *      through this parent, which is what keeps a half-done merge from being mistaken for a good chain.
 *   4. Only then is the child removed (unless keepChild): it is no longer a valid disk. A crash before this step
 *      leaves a stale child next to a complete parent.
 * VHDX into VHDX goes through mergeVhdx instead, which adds the spec's linkage step: before the parent is written,
 * the child records the parent's next DataWriteGuid as parent_linkage2, so a crash mid-merge leaves a child that
 * still opens and a re-run finishes the job (with the generic order above such a child would no longer open).
 * A child with children of its own cannot be merged safely by this tool (nothing records a file's children);
 * merge from the leaf upwards, as Hyper-V does for checkpoints.
 */
import { unlink } from 'node:fs/promises'
import { AppErrorCode, EngineError } from '../engine/errors.js'
import { readParentSpec, resolveParent } from './chain.js'
import { probeFormat } from './inspect.js'
import { openDisk } from './open.js'
import { openVhd } from './vhd/vhd-disk.js'
import type { VirtualDisk } from './virtual-disk.js'
import { mergeVhdx, openVhdx, VhdxDisk } from './vhdx/index.js'

const CHUNK_BYTES = 4 * 1024 * 1024

export interface MergeOptions {
  /** Keep the child file after the merge (it is stale: its linkage no longer matches a VHDX parent). */
  keepChild?: boolean
  progress?(done: number, total: number): void
  signal?: AbortSignal
  onNote?(message: string): void
}

export interface MergeResult {
  child: string
  parent: string
  /** Bytes of child data copied into the parent. */
  bytesMerged: number
  /** Bytes the child recorded as zeros, written as zeros in the parent. */
  bytesZeroed: number
  childRemoved: boolean
  seconds: number
}

export async function mergeDisk(childPath: string, o: MergeOptions = {}): Promise<MergeResult> {
  const started = performance.now()
  const format = await probeFormat(childPath)
  const spec = await readParentSpec(childPath, format)
  if (!spec) throw new EngineError(`${childPath} is not a differencing disk: nothing to merge`, 'InvalidOperation', AppErrorCode.Generic, { path: childPath })
  const found = await resolveParent(childPath, spec)
  if (found.note) o.onNote?.(found.note)
  if (format === 'vhdx' && (await probeFormat(found.path)) === 'vhdx') {
    const r = await mergeVhdx(
      childPath,
      async () => {
        const disk = await openDisk(found.path, { readOnly: true, onNote: o.onNote })
        return { disk, dataWriteGuid: disk instanceof VhdxDisk ? disk.dataWriteGuid : null }
      },
      o.progress,
    )
    if (!o.keepChild) await unlink(childPath)
    return {
      child: childPath,
      parent: r.parentPath,
      bytesMerged: r.bytesCopied,
      bytesZeroed: r.bytesZeroed,
      childRemoved: !o.keepChild,
      seconds: (performance.now() - started) / 1000,
    }
  }

  // The child as its own layer: no parent attached, so reading never leaves the child's file.
  const child: VirtualDisk = format === 'vhd'
    ? await openVhd(childPath, { readOnly: true }, null)
    : await openVhdx(childPath, { readOnly: true, withoutParent: true })
  let parent: VirtualDisk | null = null
  let bytesMerged = 0
  let bytesZeroed = 0
  try {
    parent = await openDisk(found.path, { readOnly: false, onNote: o.onNote })
    if (parent.size < child.size) throw new EngineError(`parent ${found.path} (${parent.size} bytes) is smaller than the child (${child.size} bytes)`, 'InvalidData')
    if (parent.logicalSectorSize !== child.logicalSectorSize) {
      throw new EngineError(`parent has ${parent.logicalSectorSize}-byte sectors, the child ${child.logicalSectorSize}`, 'InvalidData')
    }
    const extents = await child.extents(0, child.size)
    const total = extents.reduce((s, e) => s + (e.state === 'parent' ? 0 : e.length), 0)
    let done = 0
    for (const e of extents) {
      if (e.state === 'parent') continue
      if (e.state === 'data') {
        for (let at = e.offset; at < e.offset + e.length; at += CHUNK_BYTES) {
          if (o.signal?.aborted) throw new EngineError('merge cancelled; the parent holds part of the child data and the child is intact', 'OperationStopped', AppErrorCode.Cancelled)
          const buf = new Uint8Array(Math.min(CHUNK_BYTES, e.offset + e.length - at))
          await child.read(at, buf)
          await parent.write(at, buf)
          bytesMerged += buf.length
          done += buf.length
          o.progress?.(done, total)
        }
      } else {
        await parent.writeZeroes(e.offset, e.length)
        bytesZeroed += e.length
        done += e.length
        o.progress?.(done, total)
      }
    }
    await parent.flush()
    const p = parent
    parent = null
    await p.close()
  } finally {
    if (parent) await parent.close().catch(() => undefined)
    await child.close()
  }
  let childRemoved = false
  if (!o.keepChild) {
    await unlink(childPath)
    childRemoved = true
  }
  return { child: childPath, parent: found.path, bytesMerged, bytesZeroed, childRemoved, seconds: (performance.now() - started) / 1000 }
}
