/**
 * Format-neutral open: `openDisk(path, {readOnly})` probes the format (see inspect.ts) and returns a VirtualDisk
 * for a raw image, a VHD or a VHDX. A differencing disk comes back with its whole chain opened beneath it:
 * parents found by chain.ts, checked against the child's linkage, always opened read-only (a write to a parent
 * would change its identity and break every child), owned by the child (closing the top closes the chain).
 *
 * A loop in the chain (a file that is its own ancestor, compared by real path) and chains deeper than
 * MAX_CHAIN_DEPTH are rejected with a FormatError naming the chain.
 */
import { realpath } from 'node:fs/promises'
import { FormatError } from '../engine/errors.js'
import type { DiskFormat } from './disk-info.js'
import { MAX_CHAIN_DEPTH, readParentSpec, resolveParent, type ResolvedParent } from './chain.js'
import { probeFormat } from './inspect.js'
import { openRaw } from './raw/raw-disk.js'
import { openVhd } from './vhd/vhd-disk.js'
import { VhdxDisk, openVhdx } from './vhdx/index.js'
import type { OpenOptions, VirtualDisk } from './virtual-disk.js'

export interface OpenDiskOptions extends OpenOptions {
  /** Told about guesses made while resolving the chain (e.g. a parent found by file name only). */
  onNote?(message: string): void
}

/** One member of an opened chain, child first. */
export interface ChainMember {
  path: string
  format: DiskFormat
  /** How this member was found from its child (absent for the disk that was asked for). */
  foundBy?: string
}

/** Open any supported disk file, resolving differencing parents through any depth. */
export async function openDisk(path: string, options: OpenDiskOptions = {}): Promise<VirtualDisk> {
  return openInChain(path, options.readOnly ?? false, [], options.onNote)
}

/** The chain of `path` (child first, then each parent) without opening the disks for I/O. */
export async function describeChain(path: string, onNote?: (message: string) => void): Promise<ChainMember[]> {
  const members: ChainMember[] = []
  const real: string[] = []
  let current = path
  let foundBy: string | undefined
  for (;;) {
    const r = await realpath(current)
    checkChain(current, r, real, members.map(m => m.path))
    real.push(r)
    const format = await probeFormat(current)
    members.push(foundBy ? { path: current, format, foundBy } : { path: current, format })
    const spec = await readParentSpec(current, format)
    if (!spec) return members
    const parent = await resolveParent(current, spec)
    if (parent.note) onNote?.(parent.note)
    current = parent.path
    foundBy = parent.foundBy
  }
}

async function openInChain(path: string, readOnly: boolean, ancestors: string[], onNote?: (m: string) => void, names: string[] = []): Promise<VirtualDisk> {
  const real = await realpath(path)
  checkChain(path, real, ancestors, names)
  const format = await probeFormat(path)
  if (format === 'raw') return openRaw(path, { readOnly })
  const spec = await readParentSpec(path, format)
  let parent: VirtualDisk | null = null
  let found: ResolvedParent | null = null
  if (spec) {
    found = await resolveParent(path, spec)
    if (found.note) onNote?.(found.note)
  }
  if (format === 'vhdx') {
    // openVhdx checks parent_linkage against the DataWriteGuid the resolver reports, and owns the parent.
    return openVhdx(path, { readOnly }, async () => {
      const disk = await openInChain(found!.path, true, [...ancestors, real], onNote, [...names, path])
      return { disk, dataWriteGuid: disk instanceof VhdxDisk ? disk.dataWriteGuid : null }
    })
  }
  if (found) parent = await openInChain(found.path, true, [...ancestors, real], onNote, [...names, path])
  try {
    return await openVhd(path, { readOnly }, parent)
  } catch (err) {
    await parent?.close().catch(() => undefined)
    throw err
  }
}

function checkChain(path: string, real: string, ancestors: string[], names: string[]): void {
  if (ancestors.includes(real)) {
    throw new FormatError(path, 'parent chain', null, `loop: the file is its own ancestor (${[...names, path].join(' -> ')})`)
  }
  if (ancestors.length >= MAX_CHAIN_DEPTH) {
    throw new FormatError(names[0] ?? path, 'parent chain', null, `chain is deeper than ${MAX_CHAIN_DEPTH} disks (reached ${path})`)
  }
}

export { parentOf, resolvedExtents } from './chain.js'
export type { DiskFormat }
