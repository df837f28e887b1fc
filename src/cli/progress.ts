/**
 * Progress on a terminal: one line on stderr redrawn in place with percent, bytes, rate and ETA. Silent when stderr
 * is not a terminal or in --json mode, so scripts and logs get no control characters.
 */
import { formatBytes } from './format.js'

export class ProgressBar {
  private readonly started = Date.now()
  private lastDraw = 0
  private drawn = false

  constructor(private readonly enabled: boolean) {}

  update(done: number, total: number, message?: string): void {
    if (!this.enabled) return
    const now = Date.now()
    if (done < total && now - this.lastDraw < 100) return
    this.lastDraw = now
    const secs = (now - this.started) / 1000
    const rate = secs > 0 ? done / secs : 0
    const pct = total > 0 ? Math.min(100, (100 * done) / total) : 0
    const eta = rate > 0 && total > done ? Math.ceil((total - done) / rate) : 0
    const width = 24
    const fill = Math.round((pct / 100) * width)
    const bar = '#'.repeat(fill) + '.'.repeat(width - fill)
    const sizes = `${short(done)}/${short(total)}`
    const text = `[${bar}] ${pct.toFixed(0).padStart(3)}% ${sizes} ${short(rate)}/s ETA ${eta}s ${message ?? ''}`
    process.stderr.write(`\r${text.slice(0, (process.stderr.columns || 100) - 1)}\x1b[K`)
    this.drawn = true
  }

  done(): void {
    if (this.drawn) process.stderr.write('\r\x1b[K')
    this.drawn = false
  }
}

function short(n: number): string {
  return formatBytes(Math.round(n)).replace(/ \(.*\)$/, '')
}
