/**
 * Opening a VHDX: headers, log replay (in place for read-write, in memory for read-only), regions, metadata,
 * the BAT (validated entry by entry), and for a differencing file the parent, whose DataWriteGuid must match the
 * child's parent_linkage (or parent_linkage2) and whose logical sector size must match.
 *
 * Locating the parent is policy and belongs to the caller (the dispatcher maps Windows paths and opens any format):
 * it passes `resolveParent`, which gets the locator and returns the opened parent, read-only. The child owns the
 * parent from then on and closes it.
 */
import { open } from 'node:fs/promises'
import { EngineError, FormatError } from '../../engine/errors.js'
import type { OpenOptions, VirtualDisk } from '../virtual-disk.js'
import { Bat } from './vhdx-bat.js'
import { VhdxDisk } from './vhdx-disk.js'
import { VhdxIo } from './vhdx-io.js'
import { GUID_PARENT_LOCATOR, GUID_ZERO, MiB, normalizeGuid } from './vhdx-layout.js'
import { replayLog } from './vhdx-log.js'
import { type VhdxStructure, readHeaders, readRegionsAndMetadata, strictReporter } from './vhdx-structure.js'

/** What a differencing file records about its parent. */
export interface VhdxParentLocatorInfo {
  /** Every key/value of the locator, as stored. */
  entries: Record<string, string>
  /** parent_linkage / parent_linkage2 as lower-case GUIDs (null when absent or not a GUID). */
  parentLinkage: string | null
  parentLinkage2: string | null
  relativePath: string | null
  volumePath: string | null
  absoluteWin32Path: string | null
}

/** The parent as the caller opened it; `dataWriteGuid` is null for formats without one (never accepted). */
export interface ResolvedParent {
  disk: VirtualDisk
  dataWriteGuid: string | null
}

export type ParentResolver = (locator: VhdxParentLocatorInfo, childPath: string) => Promise<ResolvedParent>

export interface OpenVhdxOptions extends OpenOptions {
  /** Open a differencing file without its parent (map and check only; reading parent sectors then fails). */
  withoutParent?: boolean
}

export function locatorInfo(s: VhdxStructure): VhdxParentLocatorInfo | null {
  if (!s.parentLocator) return null
  const e = s.parentLocator.entries
  const g = (k: string) => {
    const v = e.get(k)
    return v === undefined ? null : normalizeGuid(v)
  }
  return {
    entries: Object.fromEntries(e),
    parentLinkage: g('parent_linkage'),
    parentLinkage2: g('parent_linkage2'),
    relativePath: e.get('relative_path') ?? null,
    volumePath: e.get('volume_path') ?? null,
    absoluteWin32Path: e.get('absolute_win32_path') ?? null,
  }
}

/** The parent locator of a differencing VHDX (null for fixed/dynamic files), without opening the parent. */
export async function readParentLocator(path: string): Promise<VhdxParentLocatorInfo | null> {
  const disk = await openVhdx(path, { readOnly: true, withoutParent: true })
  try {
    return locatorInfo(disk.structure)
  } finally {
    await disk.close()
  }
}

export async function openVhdx(path: string, opts: OpenVhdxOptions = {}, resolveParent?: ParentResolver): Promise<VhdxDisk> {
  const readOnly = opts.readOnly ?? false
  const fh = await open(path, readOnly ? 'r' : 'r+')
  let parent: VirtualDisk | null = null
  try {
    const io = new VhdxIo(fh, path, (await fh.stat()).size)
    const report = strictReporter(path)
    const hdr = await readHeaders(io, report)
    const replay = await replayLog(io, hdr, { inMemory: readOnly })
    const s = await readRegionsAndMetadata(io, hdr, report)
    const batBytes = await io.readNew(s.batRegion.fileOffset, Bat.byteLength(s.geometry))
    const bat = new Bat(batBytes.subarray(0, s.geometry.totalBatEntries * 8), s.batRegion.fileOffset, s.geometry, s.fileParameters.hasParent)
    const reserved: Array<[number, number]> = [[0, MiB], [hdr.header.logOffset, hdr.header.logLength], ...s.regions.map(r => [r.fileOffset, r.length] as [number, number])]
    const problems = bat.validate(s.fileParameters.blockSizeBytes, io.fileSize, reserved, 1)
    if (problems.length > 0) {
      const p = problems[0]!
      throw new FormatError(path, 'BAT entry', s.batRegion.fileOffset + p.index * 8, `entry ${p.index}: ${p.message}`)
    }
    if (s.fileParameters.hasParent && !opts.withoutParent) {
      const loc = locatorInfo(s)!
      if (!resolveParent) throw new EngineError(`${path}: differencing disk needs its parent, and no parent resolver was given`, 'InvalidOperation')
      const r = await resolveParent(loc, path)
      parent = r.disk
      const locOffset = s.metadataRegion.fileOffset + (s.metadataItems.find(i => i.itemId === GUID_PARENT_LOCATOR)?.offset ?? 0)
      const got = r.dataWriteGuid === null ? null : normalizeGuid(r.dataWriteGuid)
      if (got === null || (got !== loc.parentLinkage && got !== loc.parentLinkage2)) {
        throw new FormatError(path, 'metadata item Parent Locator', locOffset, `parent_linkage {${loc.parentLinkage}} does not match the parent's DataWriteGuid {${got}}: the parent changed after this child was created`)
      }
      if (parent.logicalSectorSize !== s.logicalSectorSize) {
        throw new FormatError(path, 'metadata item Logical Sector Size', null, `child has ${s.logicalSectorSize}-byte sectors, parent ${parent.logicalSectorSize}`)
      }
    }
    const disk = new VhdxDisk(path, io, s, bat, readOnly, parent, replay.lastSequence)
    if (!readOnly && hdr.header.logGuid !== GUID_ZERO) {
      // The log was replayed in place: record it empty (the session's first header update).
      await disk.markLogReplayed()
    }
    return disk
  } catch (e) {
    await fh.close()
    if (parent) await parent.close()
    throw e
  }
}
