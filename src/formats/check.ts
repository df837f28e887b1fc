/**
 * Format-neutral check (`hvcbt vhd check`): run the format's checker and sum up.
 *
 * status: 'clean' (no problems; warnings allowed), 'problems' (at least one error), 'unreadable' (the file cannot
 * be read as its format at all: the FormatError is reported as the one problem). A missing file is not a check
 * result: its ENOENT propagates (ObjectNotFound). A differencing disk's parent must be found and match (the VHD
 * checker does this itself; for VHDX it is done here, since the VHDX checker looks at one file).
 */
import { stat } from 'node:fs/promises'
import { FormatError } from '../engine/errors.js'
import { readParentSpec, resolveParent } from './chain.js'
import type { DiskFormat } from './disk-info.js'
import { probeFormat } from './inspect.js'
import { checkVhd } from './vhd/vhd-check.js'
import { checkVhdx, type Problem } from './vhdx/index.js'

export type CheckStatus = 'clean' | 'problems' | 'unreadable'

export interface CheckResult {
  path: string
  format: DiskFormat | null
  status: CheckStatus
  errors: number
  warnings: number
  problems: Problem[]
}

export async function checkDisk(path: string): Promise<CheckResult> {
  let format: DiskFormat | null = null
  let problems: Problem[]
  try {
    format = await probeFormat(path)
    problems = format === 'vhd' ? await checkVhd(path) : format === 'vhdx' ? await checkVhdx(path) : await checkRaw(path)
    if (format === 'vhdx' && !problems.some(p => p.severity === 'error')) problems.push(...(await vhdxParentProblems(path)))
  } catch (err) {
    if (!(err instanceof FormatError)) throw err
    // The problem's fields carry file, structure and offset; keep only the detail in the message.
    const prefix = `${err.file}: ${err.structure}${err.offset === null ? '' : ` at offset ${err.offset}`}: `
    const message = err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message
    const p: Problem = { structure: err.structure, offset: err.offset === null ? null : Number(err.offset), message, severity: 'error' }
    return { path, format, status: 'unreadable', errors: 1, warnings: 0, problems: [p] }
  }
  const errors = problems.filter(p => p.severity === 'error').length
  return { path, format, status: errors > 0 ? 'problems' : 'clean', errors, warnings: problems.length - errors, problems }
}

/** A differencing VHDX's parent must be found and carry the DataWriteGuid the child records (checkVhdx reads one file). */
async function vhdxParentProblems(path: string): Promise<Problem[]> {
  try {
    const spec = await readParentSpec(path, 'vhdx')
    if (!spec) return []
    const found = await resolveParent(path, spec)
    return found.note ? [{ structure: 'VHDX parent', offset: null, message: found.note, severity: 'warning' }] : []
  } catch (err) {
    return [{ structure: 'VHDX parent', offset: null, message: (err as Error).message, severity: 'error' }]
  }
}

async function checkRaw(path: string): Promise<Problem[]> {
  const size = (await stat(path)).size
  return size % 512 === 0 ? [] : [{ structure: 'raw image', offset: null, message: `size ${size} is not a multiple of 512`, severity: 'error' }]
}
