/**
 * An in-memory VirtualDisk for protocol tests, with hooks to delay or fail operations (to observe out-of-order
 * replies, draining and error mapping). Extents: 4 KiB blocks never written, or zeroed, are 'zero'.
 */
import type { Extent, VirtualDisk, WriteFlags } from '../../src/formats/virtual-disk.js'

const BLOCK = 4096

export class MemoryDisk implements VirtualDisk {
  readonly logicalSectorSize = 512
  readonly physicalSectorSize = 4096
  readonly data: Buffer
  private readonly allocated: Uint8Array
  flushes = 0
  fuaWrites = 0
  /** Called before each operation; may delay (return a promise) or throw. */
  hook: ((op: string, offset: number, length: number) => void | Promise<void>) | null = null

  constructor(
    readonly size: number,
    readonly readOnly = false,
  ) {
    this.data = Buffer.alloc(size)
    this.allocated = new Uint8Array(Math.ceil(size / BLOCK))
  }

  async read(offset: number, into: Uint8Array): Promise<void> {
    await this.hook?.('read', offset, into.length)
    into.set(this.data.subarray(offset, offset + into.length))
  }

  async write(offset: number, data: Uint8Array, flags?: WriteFlags): Promise<void> {
    await this.hook?.('write', offset, data.length)
    this.data.set(data, offset)
    this.mark(offset, data.length, 1)
    if (flags?.fua) this.fuaWrites++
  }

  async writeZeroes(offset: number, length: number, flags?: WriteFlags): Promise<void> {
    await this.hook?.('zero', offset, length)
    this.data.fill(0, offset, offset + length)
    this.mark(offset, length, flags?.noHole ? 1 : 0)
  }

  async trim(offset: number, length: number): Promise<void> {
    await this.hook?.('trim', offset, length)
    this.data.fill(0, offset, offset + length)
    this.mark(offset, length, 0)
  }

  async extents(offset: number, length: number): Promise<Extent[]> {
    await this.hook?.('extents', offset, length)
    const out: Extent[] = []
    for (let at = offset; at < offset + length; ) {
      const b = Math.floor(at / BLOCK)
      const end = Math.min((b + 1) * BLOCK, offset + length)
      const state = this.allocated[b] ? 'data' : 'zero'
      const last = out[out.length - 1]
      if (last && last.state === state) last.length += end - at
      else out.push({ offset: at, length: end - at, state })
      at = end
    }
    return out
  }

  async flush(): Promise<void> {
    await this.hook?.('flush', 0, 0)
    this.flushes++
  }

  async close(): Promise<void> {}

  /** Mark whole 4 KiB blocks allocated (1) or not (0); partial blocks become allocated when written. */
  private mark(offset: number, length: number, v: number): void {
    for (let b = Math.floor(offset / BLOCK); b * BLOCK < offset + length; b++) {
      const whole = b * BLOCK >= offset && (b + 1) * BLOCK <= offset + length
      if (v === 1 || whole) this.allocated[b] = v
    }
  }
}
