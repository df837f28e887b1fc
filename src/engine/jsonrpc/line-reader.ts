/**
 * Framing: newline-delimited messages from a byte stream. Bytes are split on '\n' (a trailing '\r' is dropped)
 * whatever the chunk boundaries; a line longer than `maxLineBytes` is discarded up to its newline and reported
 * once through `onOverlong`, so a hostile or broken peer cannot make the engine buffer without bound.
 */
export class LineReader {
  private parts: Buffer[] = []
  private partBytes = 0
  private discarding = false

  constructor(
    private readonly onLine: (line: string) => void,
    private readonly onOverlong: (bytes: number) => void,
    private readonly maxLineBytes = 64 * 1024 * 1024,
  ) {}

  push(chunk: Buffer): void {
    let start = 0
    for (;;) {
      const nl = chunk.indexOf(0x0a, start)
      if (nl < 0) {
        this.append(chunk.subarray(start))
        return
      }
      this.append(chunk.subarray(start, nl))
      this.endLine()
      start = nl + 1
    }
  }

  /** End of stream: a last line without its newline still counts. */
  end(): void {
    if (this.partBytes > 0 || this.parts.length > 0) this.endLine()
  }

  private append(b: Buffer): void {
    if (b.length === 0) return
    if (this.discarding) {
      this.partBytes += b.length
      return
    }
    if (this.partBytes + b.length > this.maxLineBytes) {
      this.discarding = true
      this.parts = []
      this.partBytes += b.length
      return
    }
    this.parts.push(b)
    this.partBytes += b.length
  }

  private endLine(): void {
    if (this.discarding) {
      this.onOverlong(this.partBytes)
    } else {
      let line = (this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts)).toString('utf8')
      if (line.endsWith('\r')) line = line.slice(0, -1)
      if (line.trim() !== '') this.onLine(line)
    }
    this.parts = []
    this.partBytes = 0
    this.discarding = false
  }
}
