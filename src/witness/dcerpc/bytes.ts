/**
 * Little-endian byte cursors for DCE/RPC and NDR (pg-protocol style): a Reader that never reads past its end
 * (every overrun is a ProtocolError naming the structure being read) and a growable Writer.
 *
 * Offsets are relative to the start of the buffer given to the Reader, which for NDR is the start of the stub:
 * NDR alignment is computed from there.
 */
import { ProtocolError } from '../../engine/errors.js'

export class Reader {
  pos = 0
  constructor(
    readonly buf: Uint8Array,
    /** Named in errors ("DCE/RPC", "NDR"). */
    readonly protocol = 'DCE/RPC',
    private readonly view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength),
  ) {}

  get remaining(): number {
    return this.buf.length - this.pos
  }

  need(n: number, what: string): void {
    if (n < 0 || this.pos + n > this.buf.length) {
      throw new ProtocolError(this.protocol, `truncated ${what}: need ${n} bytes at offset ${this.pos}, have ${this.remaining}`)
    }
  }

  align(n: number, what = 'alignment padding'): void {
    const pad = (n - (this.pos % n)) % n
    this.need(pad, what)
    this.pos += pad
  }

  u8(what = 'u8'): number {
    this.need(1, what)
    return this.buf[this.pos++]!
  }

  u16(what = 'u16'): number {
    this.need(2, what)
    const v = this.view.getUint16(this.pos, true)
    this.pos += 2
    return v
  }

  u32(what = 'u32'): number {
    this.need(4, what)
    const v = this.view.getUint32(this.pos, true)
    this.pos += 4
    return v
  }

  u64(what = 'u64'): bigint {
    this.need(8, what)
    const v = this.view.getBigUint64(this.pos, true)
    this.pos += 8
    return v
  }

  bytes(n: number, what = 'bytes'): Uint8Array {
    this.need(n, what)
    const v = this.buf.subarray(this.pos, this.pos + n)
    this.pos += n
    return v
  }
}

export class Writer {
  private buf: Uint8Array
  private view: DataView
  length = 0

  constructor(initial = 256) {
    this.buf = new Uint8Array(initial)
    this.view = new DataView(this.buf.buffer)
  }

  private room(n: number): void {
    if (this.length + n <= this.buf.length) return
    let size = this.buf.length * 2
    while (size < this.length + n) size *= 2
    const next = new Uint8Array(size)
    next.set(this.buf.subarray(0, this.length))
    this.buf = next
    this.view = new DataView(next.buffer)
  }

  /** Zero bytes up to a multiple of `n` from the start of this writer. */
  align(n: number): this {
    const pad = (n - (this.length % n)) % n
    this.room(pad)
    this.buf.fill(0, this.length, this.length + pad)
    this.length += pad
    return this
  }

  u8(v: number): this {
    this.room(1)
    this.buf[this.length++] = v & 0xff
    return this
  }

  u16(v: number): this {
    this.room(2)
    this.view.setUint16(this.length, v, true)
    this.length += 2
    return this
  }

  u32(v: number): this {
    this.room(4)
    this.view.setUint32(this.length, v >>> 0, true)
    this.length += 4
    return this
  }

  u64(v: bigint): this {
    this.room(8)
    this.view.setBigUint64(this.length, v, true)
    this.length += 8
    return this
  }

  bytes(b: Uint8Array): this {
    this.room(b.length)
    this.buf.set(b, this.length)
    this.length += b.length
    return this
  }

  /** Overwrite a u16 already written (frag_length, auth_length). */
  patchU16(at: number, v: number): void {
    this.view.setUint16(at, v, true)
  }

  patchU32(at: number, v: number): void {
    this.view.setUint32(at, v >>> 0, true)
  }

  finish(): Buffer {
    return Buffer.from(this.buf.buffer, 0, this.length)
  }
}

/** GUIDs travel as u32 | u16 | u16 | 8 bytes, little-endian fields: this converts the text form to wire bytes. */
export function guidToBytes(text: string): Uint8Array {
  const hex = text.replace(/-/g, '')
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new Error(`not a GUID: ${text}`)
  const b = Buffer.from(hex, 'hex')
  const out = Buffer.alloc(16)
  out.writeUInt32LE(b.readUInt32BE(0), 0)
  out.writeUInt16LE(b.readUInt16BE(4), 4)
  out.writeUInt16LE(b.readUInt16BE(6), 6)
  b.copy(out, 8, 8, 16)
  return out
}

export function guidFromBytes(b: Uint8Array): string {
  const x = Buffer.from(b.buffer, b.byteOffset, 16)
  const h = (n: number, w: number) => n.toString(16).padStart(w, '0')
  const tail = x.subarray(8, 16).toString('hex')
  return `${h(x.readUInt32LE(0), 8)}-${h(x.readUInt16LE(4), 4)}-${h(x.readUInt16LE(6), 4)}-${tail.slice(0, 4)}-${tail.slice(4)}`
}
