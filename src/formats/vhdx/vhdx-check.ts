/**
 * `vhd check` for VHDX: every structure, every problem, each named with its structure and file offset.
 *
 * Order: file identifier and headers (a bad copy is a warning, both bad an error), the log (pending entries are a
 * warning: the file is consistent once replayed, which the check does in memory before looking further), both
 * region tables (CRC, signature, entries, copies identical, overlaps, past EOF), the metadata table and items,
 * and the BAT entry by entry (reserved bits, states, sector bitmaps in non-differencing files, blocks past EOF,
 * blocks over the log / regions / header section, duplicate and overlapping offsets). The checker never writes.
 */
import { open } from 'node:fs/promises'
import { FormatError } from '../../engine/errors.js'
import { Bat } from './vhdx-bat.js'
import { VhdxIo } from './vhdx-io.js'
import { GUID_ZERO, MiB } from './vhdx-layout.js'
import { findActiveSequence, LogBudgetError, MAX_LOG_LENGTH, replayLog } from './vhdx-log.js'
import { type Problem, readHeaders, readRegionsAndMetadata } from './vhdx-structure.js'

export type { Problem } from './vhdx-structure.js'

/** How many BAT problems to list before summarizing (a wrecked BAT could otherwise yield millions). */
const MAX_BAT_PROBLEMS = 200

export async function checkVhdx(path: string): Promise<Problem[]> {
  const problems: Problem[] = []
  const report = (p: Problem) => void problems.push(p)
  const fh = await open(path, 'r')
  try {
    const io = new VhdxIo(fh, path, (await fh.stat()).size)
    const hdr = await readHeaders(io, report)
    const h = hdr.header
    if (h.logGuid !== GUID_ZERO) {
      let pending = 0
      if (h.logLength <= MAX_LOG_LENGTH) {
        try {
          pending = findActiveSequence(await io.readNew(h.logOffset, h.logLength), h.logGuid).length
        } catch (e) {
          if (!(e instanceof LogBudgetError)) throw e
        }
      }
      report({
        structure: 'log', offset: h.logOffset, severity: 'warning',
        message: pending > 0
          ? `log is not empty: ${pending} entr${pending === 1 ? 'y' : 'ies'} must be replayed (the file was not closed cleanly; opening it read-write replays the log)`
          : 'LogGuid is set but the log holds no valid entry: the file was not closed cleanly (no data is pending)',
      })
      await replayLog(io, hdr, { inMemory: true })
    }
    const s = await readRegionsAndMetadata(io, hdr, report)
    const bat = new Bat(await io.readNew(s.batRegion.fileOffset, s.geometry.totalBatEntries * 8), s.batRegion.fileOffset, s.geometry, s.fileParameters.hasParent)
    const reserved: Array<[number, number]> = [[0, MiB], [h.logOffset, h.logLength], ...s.regions.map(r => [r.fileOffset, r.length] as [number, number])]
    const batProblems = bat.validate(s.fileParameters.blockSizeBytes, io.fileSize, reserved, MAX_BAT_PROBLEMS + 1)
    for (const p of batProblems.slice(0, MAX_BAT_PROBLEMS)) {
      report({ structure: `BAT entry ${p.index}`, offset: s.batRegion.fileOffset + p.index * 8, message: p.message, severity: 'error' })
    }
    if (batProblems.length > MAX_BAT_PROBLEMS) {
      report({ structure: 'BAT', offset: s.batRegion.fileOffset, message: `more than ${MAX_BAT_PROBLEMS} bad entries; the rest are not listed`, severity: 'error' })
    }
  } catch (e) {
    // Fatal problems were reported before being thrown; anything else unexpected is reported here.
    if (!(e instanceof FormatError)) throw e
    if (!problems.some(p => p.severity === 'error' && e.message.endsWith(p.message))) {
      problems.push({ structure: e.structure, offset: e.offset === null ? null : Number(e.offset), message: e.message, severity: 'error' })
    }
  } finally {
    await fh.close()
  }
  return problems
}
