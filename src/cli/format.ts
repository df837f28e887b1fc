/** Human-readable rendering for the CLI: sizes, lists (like Format-List) and tables (like Format-Table). */

const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB']

/** 1073741824 -> "1 GiB (1073741824 bytes)"; exact multiples print without decimals. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} bytes`
  let v = n
  let u = 0
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024
    u++
  }
  const shown = Number.isInteger(v) ? String(v) : v.toFixed(2)
  return `${shown} ${units[u]} (${n} bytes)`
}

/** "virtualSizeBytes" -> "Virtual size bytes". */
export function labelOf(key: string): string {
  const words = key.replace(/([a-z0-9])([A-Z])/g, '$1 $2').toLowerCase()
  return words.charAt(0).toUpperCase() + words.slice(1)
}

function scalar(key: string, v: unknown): string {
  if (v === null || v === undefined) return '-'
  if (typeof v === 'number' && /Bytes$/.test(key)) return formatBytes(v)
  if (typeof v === 'object') return JSON.stringify(v)
  return String(v)
}

/** Default rendering of a result: objects as aligned `Label : value` lines, arrays of objects as a table. */
export function renderHuman(result: unknown): string {
  if (Array.isArray(result)) return renderTable(result)
  if (result === null || typeof result !== 'object') return String(result ?? '')
  const entries = Object.entries(result as Record<string, unknown>)
  const lists = entries.filter(([, v]) => Array.isArray(v) && v.length > 0 && typeof v[0] === 'object')
  const simple = entries.filter(e => !lists.includes(e))
  const width = Math.max(0, ...simple.map(([k]) => labelOf(k).length))
  const lines = simple.map(([k, v]) => `${labelOf(k).padEnd(width)} : ${Array.isArray(v) ? v.join(', ') : scalar(k, v)}`)
  for (const [k, v] of lists) lines.push('', `${labelOf(k)}:`, renderTable(v as unknown[]))
  return lines.join('\n')
}

export function renderTable(rows: unknown[]): string {
  if (rows.length === 0) return '(none)'
  if (typeof rows[0] !== 'object' || rows[0] === null) return rows.map(String).join('\n')
  const keys = [...new Set(rows.flatMap(r => Object.keys(r as object)))]
  const cells = rows.map(r => keys.map(k => scalarShort(k, (r as Record<string, unknown>)[k])))
  const heads = keys.map(labelOf)
  const widths = keys.map((_, i) => Math.max(heads[i]!.length, ...cells.map(c => c[i]!.length)))
  const fmt = (c: string[]) => c.map((s, i) => s.padEnd(widths[i]!)).join('  ').trimEnd()
  return [fmt(heads), fmt(widths.map(w => '-'.repeat(w))), ...cells.map(fmt)].join('\n')
}

function scalarShort(key: string, v: unknown): string {
  if (v === null || v === undefined) return '-'
  if (typeof v === 'object') return JSON.stringify(v)
  return String(v)
}
