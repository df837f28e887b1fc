/**
 * Positioned file I/O for one VHDX file, with an optional in-memory overlay of 4 KiB sectors.
 *
 * A read-only open of a file whose log is not empty must see the file as if the log had been replayed, without
 * writing anything; the replayed sectors go into `overlay` and every read consults it (a Map lookup per 4 KiB
 * sector, and nothing at all when the overlay is empty, which is the normal case).
 */
import type { FileHandle } from 'node:fs/promises'
import { LOG_SECTOR_SIZE } from './vhdx-layout.js'

export class VhdxIo {
  /** 4 KiB-aligned file offset -> replacement sector, for read-only log replay. */
  readonly overlay = new Map<number, Uint8Array>()
  /** Logical file size: the real size, or larger when an in-memory replay extended it. */
  fileSize: number

  constructor(readonly fh: FileHandle, readonly path: string, fileSize: number) {
    this.fileSize = fileSize
  }

  /** Read exactly into.length bytes at `pos`; bytes past the end of the file read as zero. */
  async read(into: Uint8Array, pos: number): Promise<void> {
    let done = 0
    while (done < into.length) {
      const { bytesRead } = await this.fh.read(into, done, into.length - done, pos + done)
      if (bytesRead === 0) {
        into.fill(0, done)
        break
      }
      done += bytesRead
    }
    if (this.overlay.size > 0) this.applyOverlay(into, pos)
  }

  async readNew(pos: number, length: number): Promise<Uint8Array> {
    const b = new Uint8Array(length)
    await this.read(b, pos)
    return b
  }

  private applyOverlay(into: Uint8Array, pos: number): void {
    const first = Math.floor(pos / LOG_SECTOR_SIZE) * LOG_SECTOR_SIZE
    for (let s = first; s < pos + into.length; s += LOG_SECTOR_SIZE) {
      const sector = this.overlay.get(s)
      if (!sector) continue
      const from = Math.max(s, pos)
      const to = Math.min(s + LOG_SECTOR_SIZE, pos + into.length)
      into.set(sector.subarray(from - s, to - s), from - pos)
    }
  }

  async write(data: Uint8Array, pos: number): Promise<void> {
    let done = 0
    while (done < data.length) {
      const { bytesWritten } = await this.fh.write(data, done, data.length - done, pos + done)
      done += bytesWritten
    }
    if (pos + data.length > this.fileSize) this.fileSize = pos + data.length
  }

  async flush(): Promise<void> {
    await this.fh.datasync()
  }
}
