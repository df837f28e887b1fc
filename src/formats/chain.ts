/**
 * Differencing chains: find a child's parent from what the child records, check it is the right parent, and
 * resolve allocation maps through the chain.
 *
 * Where a parent is looked for (first existing file whose identity matches wins):
 *   VHDX: parent locator keys in the specification's order relative_path, volume_path, absolute_win32_path;
 *   VHD:  W2ru (relative), W2ku (absolute), the deprecated Wi2r/Wi2k/MacX codes, then the parent name field.
 * Each recorded path is mapped for this host: backslashes become slashes; a relative path is taken from the
 * child's folder; a POSIX absolute path is used as is; a Windows path "C:\dir\f" is tried as "/dir/f" and as
 * WSL's "/mnt/c/dir/f"; a volume path "\\?\Volume{...}\dir\f" as "/dir/f". Last resort: the recorded file name
 * next to the child, which is reported through `onNote` since it is a guess.
 *
 * Identity: a VHDX child's parent_linkage (or parent_linkage2) must equal the parent's current DataWriteGuid; a
 * VHD child's parent unique id must equal the parent footer's unique id. A candidate that exists but fails the
 * check is skipped (the error is reported if nothing else matches). A VHDX child needs a VHDX parent, a VHD child
 * a VHD parent.
 *
 * This module only answers "which file is the parent"; open.ts opens the chain (parents always read-only), with
 * loops and chains deeper than MAX_CHAIN_DEPTH rejected there.
 */
import { open, stat } from 'node:fs/promises'
import path from 'node:path'
import { AppErrorCode, EngineError, FormatError } from '../engine/errors.js'
import type { DiskFormat } from './disk-info.js'
import { probeFormat } from './inspect.js'
import type { Extent, VirtualDisk } from './virtual-disk.js'
import { uuidText, VhdDiskType } from './vhd/vhd-layout.js'
import { loadVhdMetadata } from './vhd/vhd-metadata.js'
import { VhdxIo } from './vhdx/vhdx-io.js'
import { readParentLocator } from './vhdx/index.js'
import { readHeaders, strictReporter } from './vhdx/vhdx-structure.js'

/** Longest chain (child plus ancestors) we follow; Hyper-V's checkpoint trees stay far below this. */
export const MAX_CHAIN_DEPTH = 64

/** A parent path as the child records it, with the key or locator code it came from. */
export interface RecordedParent {
  key: string
  path: string
}

/** What a differencing child says about its parent. */
export interface ParentSpec {
  format: 'vhd' | 'vhdx'
  recorded: RecordedParent[]
  /** VHDX: parent_linkage and parent_linkage2 (normalized lower-case GUIDs). VHD: the parent's unique id text. */
  identities: string[]
}

export interface ResolvedParent {
  path: string
  /** The key or locator the path came from, or 'file name next to the child'. */
  foundBy: string
  /** Set when the parent was found by a guess that the user should know about. */
  note?: string
}

/** The parent spec of a differencing disk, or null when `file` has no parent. */
export async function readParentSpec(file: string, format: DiskFormat): Promise<ParentSpec | null> {
  if (format === 'raw') return null
  const fh = await open(file, 'r')
  try {
    if (format === 'vhd') {
      const m = await loadVhdMetadata(fh, file)
      if (m.footer.diskType !== VhdDiskType.Differencing) return null
      return { format, recorded: m.parentRefs.map(r => ({ key: r.kind, path: r.path })), identities: [uuidText(m.dynamicHeader!.parentUniqueId)] }
    }
  } finally {
    await fh.close()
  }
  const loc = await readParentLocator(file)
  if (!loc) return null
  const recorded: RecordedParent[] = []
  for (const [key, v] of [['relative_path', loc.relativePath], ['volume_path', loc.volumePath], ['absolute_win32_path', loc.absoluteWin32Path]] as const) {
    if (v) recorded.push({ key, path: v })
  }
  const identities = [loc.parentLinkage, loc.parentLinkage2].filter((g): g is string => g !== null)
  if (identities.length === 0) throw new FormatError(file, 'VHDX parent locator', null, 'parent_linkage is missing or not a GUID')
  return { format, recorded, identities }
}

/** Host paths to try for one recorded path, most likely first. */
export function mapRecordedPath(recorded: string, childDir: string): string[] {
  let p = recorded.trim()
  if (p.startsWith('file://')) p = decodeURIComponent(p.slice('file://'.length))
  if (p.startsWith('/')) return [path.normalize(p)]
  p = p.replace(/^\\\\\?\\(?!Volume\{)/i, '') // \\?\C:\... -> C:\...
  const slashes = p.replace(/\\/g, '/')
  const volume = /^\/\/\?\/Volume\{[^}]*\}(\/.*)$/i.exec(slashes)
  if (volume) return [path.normalize(volume[1]!)]
  const drive = /^([A-Za-z]):(\/.*)$/.exec(slashes)
  if (drive) return [path.normalize(drive[2]!), path.join('/mnt', drive[1]!.toLowerCase(), drive[2]!)]
  if (slashes.startsWith('//')) return [] // a UNC share has no meaning on this host; the file-name fallback may still apply
  return [path.resolve(childDir, slashes)]
}

/** Last path component of a recorded path written with either kind of separator. */
function recordedBaseName(recorded: string): string {
  const parts = recorded.split(/[\\/]/).filter(s => s.length > 0)
  return parts[parts.length - 1] ?? ''
}

/**
 * Find the parent of `child`: the first recorded location that exists and has the identity the child expects.
 * Throws ObjectNotFound naming every path tried, or the identity mismatch of the closest candidate.
 */
export async function resolveParent(child: string, spec: ParentSpec): Promise<ResolvedParent> {
  const childDir = path.dirname(path.resolve(child))
  const tried: string[] = []
  const seen = new Set<string>()
  let mismatch: EngineError | null = null
  const attempt = async (candidate: string, foundBy: string): Promise<boolean> => {
    if (seen.has(candidate)) return false
    seen.add(candidate)
    tried.push(candidate)
    const st = await stat(candidate).catch(() => null)
    if (!st || !st.isFile()) return false
    const problem = await identityProblem(candidate, spec)
    if (problem) {
      mismatch ??= new FormatError(child, 'parent linkage', null, problem)
      return false
    }
    return true
  }
  for (const r of spec.recorded) {
    for (const candidate of mapRecordedPath(r.path, childDir)) {
      if (await attempt(candidate, r.key)) return { path: candidate, foundBy: r.key }
    }
  }
  for (const r of spec.recorded) {
    const name = recordedBaseName(r.path)
    if (!name) continue
    const candidate = path.join(childDir, name)
    if (await attempt(candidate, 'file name next to the child')) {
      const note = `${child}: parent found by its file name next to the child: ${candidate} (recorded ${r.key} ${JSON.stringify(r.path)} does not exist here)`
      return { path: candidate, foundBy: 'file name next to the child', note }
    }
  }
  if (mismatch) throw mismatch
  const recordedText = spec.recorded.map(r => `${r.key}=${JSON.stringify(r.path)}`).join(', ') || 'no parent path'
  throw new EngineError(`${child}: parent disk not found (recorded: ${recordedText}; tried: ${tried.join(', ') || 'nothing'})`, 'ObjectNotFound', AppErrorCode.NotFound, { path: child, tried })
}

/** Why `candidate` is not the parent `spec` describes, or null when it is. */
async function identityProblem(candidate: string, spec: ParentSpec): Promise<string | null> {
  let format: DiskFormat
  try {
    format = await probeFormat(candidate)
  } catch (err) {
    return `${candidate}: ${(err as Error).message}`
  }
  if (format !== spec.format) return `${candidate} is ${format === 'raw' ? 'not a VHD or VHDX' : `a ${format.toUpperCase()}`}; the child needs a ${spec.format.toUpperCase()} parent`
  const fh = await open(candidate, 'r')
  try {
    if (format === 'vhd') {
      const m = await loadVhdMetadata(fh, candidate)
      const id = uuidText(m.footer.uniqueId)
      return spec.identities.includes(id) ? null : `${candidate} has unique id ${id}, the child expects ${spec.identities[0]}`
    }
    const io = new VhdxIo(fh, candidate, (await fh.stat()).size)
    const hdr = await readHeaders(io, strictReporter(candidate))
    const dwg = hdr.header.dataWriteGuid.toLowerCase()
    return spec.identities.includes(dwg) ? null : `${candidate} has DataWriteGuid {${dwg}}, the child's parent_linkage is {${spec.identities.join('} or {')}} (the parent changed after the child was made)`
  } catch (err) {
    return `${candidate}: ${(err as Error).message}`
  } finally {
    await fh.close()
  }
}

/** The parent a disk reads through, if it has one (VhdDisk and VhdxDisk expose it). */
export function parentOf(disk: VirtualDisk): VirtualDisk | null {
  return (disk as { parent?: VirtualDisk | null }).parent ?? null
}

/**
 * Allocation map with 'parent' ranges resolved through the chain: what each range reads as, from whichever layer
 * holds it ('data', 'zero' or 'unallocated'; a range past a shorter parent's end is 'unallocated').
 */
export async function resolvedExtents(disk: VirtualDisk, offset: number, length: number): Promise<Extent[]> {
  const out: Extent[] = []
  const push = (e: Extent): void => {
    const last = out[out.length - 1]
    if (last && last.state === e.state && last.offset + last.length === e.offset) last.length += e.length
    else if (e.length > 0) out.push({ ...e })
  }
  for (const e of await disk.extents(offset, length)) {
    if (e.state !== 'parent') {
      push(e)
      continue
    }
    const parent = parentOf(disk)
    const inside = parent ? Math.max(0, Math.min(e.length, parent.size - e.offset)) : 0
    if (parent && inside > 0) for (const p of await resolvedExtents(parent, e.offset, inside)) push(p)
    if (inside < e.length) push({ offset: e.offset + inside, length: e.length - inside, state: 'unallocated' })
  }
  return out
}
