/** Test doubles for the tracking tests: an in-memory VirtualDisk and a plain-file one (no format code needed). */
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import type { Extent, VirtualDisk } from '../../src/formats/virtual-disk.js'

export class MemDisk implements VirtualDisk {
  readonly logicalSectorSize = 512
  readonly physicalSectorSize = 512
  readonly readOnly = false
  readonly data: Uint8Array
  /** Optional artificial latency (ms, random up to this) to interleave concurrent requests. */
  jitterMs = 0
  constructor(readonly size: number) { this.data = new Uint8Array(size) }
  private async delay(): Promise<void> {
    if (this.jitterMs) await new Promise(res => setTimeout(res, Math.random() * this.jitterMs))
  }
  async read(offset: number, into: Uint8Array): Promise<void> {
    await this.delay()
    into.set(this.data.subarray(offset, offset + into.length))
  }
  async write(offset: number, data: Uint8Array): Promise<void> {
    await this.delay()
    this.data.set(data, offset)
  }
  async writeZeroes(offset: number, length: number): Promise<void> {
    await this.delay()
    this.data.fill(0, offset, offset + length)
  }
  async trim(offset: number, length: number): Promise<void> { await this.writeZeroes(offset, length) }
  async extents(offset: number, length: number): Promise<Extent[]> { return [{ offset, length, state: 'data' }] }
  async flush(): Promise<void> {}
  async close(): Promise<void> {}
}

export class FileDisk implements VirtualDisk {
  readonly logicalSectorSize = 512
  readonly physicalSectorSize = 512
  readonly readOnly = false
  private constructor(private readonly fd: number, readonly size: number) {}
  static open(file: string): FileDisk {
    const fd = fs.openSync(file, 'r+')
    return new FileDisk(fd, fs.fstatSync(fd).size)
  }
  read(offset: number, into: Uint8Array): Promise<void> {
    return new Promise((res, rej) => fs.read(this.fd, into, 0, into.length, offset, e => e ? rej(e) : res()))
  }
  write(offset: number, data: Uint8Array): Promise<void> {
    return new Promise((res, rej) => fs.write(this.fd, data, 0, data.length, offset, e => e ? rej(e) : res()))
  }
  writeZeroes(offset: number, length: number): Promise<void> { return this.write(offset, new Uint8Array(length)) }
  trim(offset: number, length: number): Promise<void> { return this.writeZeroes(offset, length) }
  async extents(offset: number, length: number): Promise<Extent[]> { return [{ offset, length, state: 'data' }] }
  flush(): Promise<void> { return new Promise((res, rej) => fs.fdatasync(this.fd, e => e ? rej(e) : res())) }
  async close(): Promise<void> { fs.closeSync(this.fd) }
}

export async function tempDir(prefix = 'hvcbt-tracking-'): Promise<string> {
  return fsp.mkdtemp(path.join(os.tmpdir(), prefix))
}

/** Create a raw image file of `size` bytes filled with a deterministic pattern. */
export async function makeRawImage(file: string, size: number, seed = 1): Promise<void> {
  const buf = Buffer.alloc(size)
  let x = seed
  for (let i = 0; i < size; i += 4) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0
    buf.writeUInt32LE(x, i)
  }
  await fsp.writeFile(file, buf)
}

/** Byte ranges [offset, length] where a and b differ, at `unit` resolution. */
export function diffUnits(a: Uint8Array, b: Uint8Array, unit: number): number[] {
  const out: number[] = []
  for (let off = 0; off < a.length; off += unit) {
    const x = Buffer.from(a.buffer, a.byteOffset + off, Math.min(unit, a.length - off))
    const y = Buffer.from(b.buffer, b.byteOffset + off, Math.min(unit, b.length - off))
    if (!x.equals(y)) out.push(off)
  }
  return out
}
