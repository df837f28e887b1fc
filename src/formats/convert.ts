/**
 * Sparse copy between any formats (`hvcbt vhd convert`): the source is opened read-only with its chain resolved,
 * the destination is created fresh (it must not exist) with the same virtual size, and only ranges that hold
 * non-zero data are written. Unallocated and zero extents (from resolvedExtents through the whole chain) are
 * skipped without reading; 'data' extents are read in chunks and scanned in granules, so zero runs inside data
 * blocks stay holes in the destination too.
 *
 * Reads run up to READ_AHEAD chunks ahead of the writes, so the two files' I/O overlaps. Progress counts virtual
 * bytes covered. The destination is flushed and closed before returning; on failure or cancellation it is
 * removed (it was ours).
 */
import { unlink } from 'node:fs/promises'
import { AppErrorCode, EngineError } from '../engine/errors.js'
import { resolvedExtents } from './chain.js'
import { createDisk, formatForPath } from './create.js'
import type { DiskFormat, DiskType } from './disk-info.js'
import { openDisk } from './open.js'
import type { VirtualDisk } from './virtual-disk.js'

/** Bytes read per request from the source. */
const CHUNK_BYTES = 4 * 1024 * 1024
/** Zero detection granularity: a granule of zeros is not written. */
const GRANULE_BYTES = 64 * 1024
/** Extents are asked for in windows of this size, so a huge disk's map is never held at once. */
const MAP_WINDOW = 8 * 1024 * 1024 * 1024
const READ_AHEAD = 3

export interface ConvertOptions {
  format?: DiskFormat
  type?: 'fixed' | 'dynamic'
  blockSizeBytes?: number
  logicalSectorSize?: 512 | 4096
  progress?(done: number, total: number): void
  signal?: AbortSignal
}

export interface ConvertResult {
  source: string
  destination: string
  format: DiskFormat
  type: DiskType
  virtualSizeBytes: number
  /** Bytes read from the source's data extents. */
  bytesRead: number
  /** Bytes written to the destination (non-zero granules). */
  bytesWritten: number
  seconds: number
}

export async function convertDisk(source: string, destination: string, o: ConvertOptions = {}): Promise<ConvertResult> {
  const started = performance.now()
  const src = await openDisk(source, { readOnly: true })
  let created = false
  let dst: VirtualDisk | null = null
  try {
    const format = o.format ?? formatForPath(destination)
    const lss = o.logicalSectorSize ?? (format === 'vhdx' ? (src.logicalSectorSize as 512 | 4096) : undefined)
    const made = await createDisk(destination, { format, type: o.type ?? 'dynamic', sizeBytes: src.size, blockSizeBytes: o.blockSizeBytes, logicalSectorSize: lss })
    created = true
    dst = await openDisk(destination)
    const { bytesRead, bytesWritten } = await copyData(src, dst, o)
    await dst.close()
    dst = null
    return {
      source, destination, format, type: made.type, virtualSizeBytes: src.size, bytesRead, bytesWritten,
      seconds: (performance.now() - started) / 1000,
    }
  } catch (err) {
    if (dst) await dst.close().catch(() => undefined)
    if (created) await unlink(destination).catch(() => undefined)
    throw err
  } finally {
    await src.close()
  }
}

/** Copy every non-zero byte of `src` into `dst` (which reads as zeros everywhere to begin with). */
export async function copyData(src: VirtualDisk, dst: VirtualDisk, o: Pick<ConvertOptions, 'progress' | 'signal'> = {}): Promise<{ bytesRead: number; bytesWritten: number }> {
  if (dst.size < src.size) throw new EngineError(`destination (${dst.size} bytes) is smaller than the source (${src.size} bytes)`, 'InvalidArgument')
  const align = Math.max(src.logicalSectorSize, dst.logicalSectorSize)
  if (src.size % align !== 0) {
    throw new EngineError(`source size ${src.size} is not a multiple of the destination's ${dst.logicalSectorSize}-byte sectors`, 'InvalidArgument', AppErrorCode.Generic)
  }
  let bytesRead = 0
  let bytesWritten = 0
  // Plan the chunks of data to copy, window by window, and keep READ_AHEAD reads in flight.
  const pending: { offset: number; length: number; data: Promise<Uint8Array> }[] = []
  const drain = async (keep: number): Promise<void> => {
    while (pending.length > keep) {
      const c = pending.shift()!
      const data = await c.data
      bytesWritten += await writeNonZero(dst, c.offset, data, align)
      o.progress?.(c.offset + c.length, src.size)
    }
  }
  for (let w = 0; w < src.size; w += MAP_WINDOW) {
    const wlen = Math.min(MAP_WINDOW, src.size - w)
    for (const e of await resolvedExtents(src, w, wlen)) {
      if (e.state !== 'data') continue
      for (let at = e.offset; at < e.offset + e.length; at += CHUNK_BYTES) {
        if (o.signal?.aborted) throw new EngineError('conversion cancelled', 'OperationStopped', AppErrorCode.Cancelled)
        const length = Math.min(CHUNK_BYTES, e.offset + e.length - at)
        const buf = new Uint8Array(length)
        pending.push({ offset: at, length, data: src.read(at, buf).then(() => buf) })
        bytesRead += length
        await drain(READ_AHEAD)
      }
    }
    await drain(0)
    o.progress?.(w + wlen, src.size)
  }
  await drain(0)
  await dst.flush()
  return { bytesRead, bytesWritten }
}

/** Write the non-zero granules of `data` at `offset`; returns the bytes written. */
async function writeNonZero(dst: VirtualDisk, offset: number, data: Uint8Array, align: number): Promise<number> {
  const granule = Math.max(GRANULE_BYTES, align)
  let written = 0
  let runStart = -1
  const flushRun = async (end: number): Promise<void> => {
    if (runStart < 0) return
    await dst.write(offset + runStart, data.subarray(runStart, end))
    written += end - runStart
    runStart = -1
  }
  for (let g = 0; g < data.length; g += granule) {
    const end = Math.min(g + granule, data.length)
    if (isZero(data, g, end)) await flushRun(g)
    else if (runStart < 0) runStart = g
  }
  await flushRun(data.length)
  return written
}

function isZero(b: Uint8Array, start: number, end: number): boolean {
  // 4 bytes at a time when aligned (granules are multiples of 4 and buffers start aligned).
  if ((b.byteOffset + start) % 4 === 0 && (end - start) % 4 === 0) {
    const w = new Uint32Array(b.buffer, b.byteOffset + start, (end - start) / 4)
    for (let i = 0; i < w.length; i++) if (w[i] !== 0) return false
    return true
  }
  for (let i = start; i < end; i++) if (b[i] !== 0) return false
  return true
}
