/**
 * Bytes received from the peer and not yet parsed, as a list of the chunks the socket delivered.
 *
 * The NBD parsers ask "are N bytes here?" and then take exactly N; messages may be split at any byte by TCP, so a
 * message can span several chunks. take() returns a view of the first chunk when the bytes lie inside it (no copy,
 * the common case for headers and for payloads that arrived in one piece) and copies into one new buffer only when
 * they span chunks. skip() discards without buffering, so an oversized payload is drained in constant memory.
 */
export class ByteQueue {
  private chunks: Buffer[] = []
  /** Read position inside chunks[0]. */
  private head = 0
  /** Unread bytes in all chunks. */
  length = 0

  push(chunk: Buffer): void {
    if (chunk.length === 0) return
    this.chunks.push(chunk)
    this.length += chunk.length
  }

  /**
   * Exactly `n` bytes from the front; the caller checked `length >= n`. `alloc` provides the buffer when the bytes
   * span chunks and must be copied (a pool, for write payloads).
   */
  take(n: number, alloc: (size: number) => Buffer = Buffer.allocUnsafe): Buffer {
    if (n > this.length) throw new RangeError(`ByteQueue: ${n} bytes asked, ${this.length} buffered`)
    if (n === 0) return Buffer.alloc(0)
    const first = this.chunks[0]!
    if (first.length - this.head >= n) {
      const out = first.subarray(this.head, this.head + n)
      this.advance(n)
      return out
    }
    const out = alloc(n)
    let filled = 0
    while (filled < n) {
      const c = this.chunks[0]!
      const k = Math.min(c.length - this.head, n - filled)
      c.copy(out, filled, this.head, this.head + k)
      filled += k
      this.advance(k)
    }
    return out
  }

  /** Discard up to `n` bytes; returns how many were discarded. */
  skip(n: number): number {
    let done = 0
    while (done < n && this.length > 0) {
      const c = this.chunks[0]!
      const k = Math.min(c.length - this.head, n - done)
      this.advance(k)
      done += k
    }
    return done
  }

  /** Drop everything (the connection is closing). */
  clear(): void {
    this.chunks = []
    this.head = 0
    this.length = 0
  }

  private advance(k: number): void {
    this.head += k
    this.length -= k
    if (this.head === this.chunks[0]!.length) {
      this.chunks.shift()
      this.head = 0
    }
  }
}
