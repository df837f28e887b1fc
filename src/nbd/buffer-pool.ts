/**
 * Reuse of large reply buffers. A structured or simple READ reply is one buffer (header + data read in place); at
 * 256 KiB - 32 MiB per request, allocating each afresh costs page faults and garbage collection that showed as a
 * third of the server's CPU time in profiles. Buffers come back once the socket has handed them to the kernel.
 *
 * Buffers are kept per exact size (clients use one or two request sizes), at most `perSize` of each and at most
 * `maxBytes` in all; small ones (< 64 KiB) are not pooled (Node's own slab allocator serves them well).
 */
const MIN_POOLED_BYTES = 64 * 1024

export class BufferPool {
  private readonly free = new Map<number, Buffer[]>()
  private bytes = 0

  constructor(
    private readonly maxBytes = 64 * 1024 * 1024,
    private readonly perSize = 1024,
  ) {}

  /** A buffer of exactly `size` bytes with unspecified contents. */
  get(size: number): Buffer {
    const list = this.free.get(size)
    const b = list?.pop()
    if (b) {
      this.bytes -= size
      return b
    }
    return Buffer.allocUnsafeSlow(size)
  }

  /** Give `b` back; the caller must not touch it afterwards. */
  put(b: Buffer): void {
    if (b.length < MIN_POOLED_BYTES || b.byteOffset !== 0 || b.buffer.byteLength !== b.length) return
    if (this.bytes + b.length > this.maxBytes) return
    let list = this.free.get(b.length)
    if (!list) this.free.set(b.length, (list = []))
    if (list.length >= this.perSize) return
    list.push(b)
    this.bytes += b.length
  }
}
