/**
 * Size arguments as people type them: plain bytes ("1048576") or a number with a binary suffix ("64K", "10G",
 * "1.5T", also "10GiB"/"10GB", case-insensitive). Suffixes are powers of 1024, as in qemu-img and Hyper-V's
 * New-VHD. The result must be a whole number of bytes that is a safe integer; anything else is an EngineError
 * naming the argument and what is wrong with it.
 */
import { AppErrorCode, EngineError } from '../engine/errors.js'

const unitShift: Record<string, number> = { '': 0, b: 0, k: 10, m: 20, g: 30, t: 40, p: 50, e: 60 }

/** Parse `text` (or pass a number through after checking it). `what` names the argument in error messages. */
export function parseSize(text: string | number, what = 'size'): number {
  if (typeof text === 'number') {
    if (!Number.isSafeInteger(text) || text < 0) throw invalid(what, String(text), 'must be a whole number of bytes >= 0')
    return text
  }
  const m = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*([kmgtpe]?)(i?b)?\s*$/i.exec(text)
  if (!m) {
    throw invalid(what, text, 'expected a number of bytes with an optional suffix K, M, G, T, P (powers of 1024), e.g. 64K or 10G')
  }
  const unit = (m[2] ?? '').toLowerCase()
  if (unit === '' && m[3] !== undefined && m[3].length === 2) throw invalid(what, text, "'iB' needs a unit letter before it (KiB, MiB, ...)")
  const value = Number(m[1]) * 2 ** unitShift[unit]!
  if (!Number.isFinite(value) || value > Number.MAX_SAFE_INTEGER) throw invalid(what, text, 'is too large')
  if (!Number.isInteger(value)) throw invalid(what, text, `is not a whole number of bytes (${value})`)
  return value
}

/** Human-readable size with a binary unit, e.g. 1073741824 -> "1 GiB", 1536 -> "1.5 KiB". */
export function formatSize(bytes: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB']
  let v = bytes
  let i = 0
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return i === 0 ? `${bytes} bytes` : `${Number(v.toFixed(2))} ${units[i]}`
}

function invalid(what: string, text: string, detail: string): EngineError {
  return new EngineError(`invalid ${what} '${text}': ${detail}`, 'InvalidArgument', AppErrorCode.Generic, { [what]: text })
}
