/**
 * NDR20 (C706 chapter 14, MS-RPCE 2.2.5) as small combinators: a type is declared once, the way an IDL does, and
 * both the encoder and the decoder are derived from that declaration.
 *
 * Every type has two phases, as NDR has: `scalars` (the inline representation: integers, referent ids, context
 * handles, hoisted conformance) and `buffers` (deferred pointees). A top-level operation parameter is written
 * scalars-then-buffers immediately; inside a structure, all members' scalars come first, then all members'
 * pointees in member order, depth first (a pointee's own pointees follow it before the next pointee).
 *
 * Decoding mirrors this: `readScalars` returns an intermediate value (a referent id for a pointer, a record of
 * intermediates for a struct) and `readBuffers` turns it into the final value. Every length read from the wire is
 * checked against the bytes that remain before anything is allocated, so hostile stubs cannot ask for memory.
 *
 * Pointers: `unique` (0 = NULL, referent ids 0x00020000, +4 like Windows), `ref` (never NULL; inline at top level,
 * a referent id when embedded), `full` (encoded like unique; aliasing is not tracked since no witness or endpoint
 * mapper structure aliases). Unions are not provided: neither MS-SWN nor the endpoint mapper calls need them.
 */
import { ProtocolError } from '../../engine/errors.js'
import { Reader, Writer, guidFromBytes, guidToBytes } from './bytes.js'

export class NdrWriter extends Writer {
  private nextReferent = 0x00020000
  referent(): number {
    const id = this.nextReferent
    this.nextReferent += 4
    return id
  }
}

export class NdrReader extends Reader {
  constructor(buf: Uint8Array) {
    super(buf, 'NDR')
  }
  /** Check that `count` elements of at least `minBytes` each could still follow, before allocating them. */
  checkCount(count: number, minBytes: number, what: string): void {
    if (count * Math.max(minBytes, 1) > this.remaining) {
      throw new ProtocolError('NDR', `${what}: count ${count} exceeds the ${this.remaining} bytes left at offset ${this.pos}`)
    }
  }
}

export interface NdrType<T> {
  /** Alignment of the inline representation (1, 2, 4 or 8). */
  readonly align: number
  /** Smallest inline size, for count checks. */
  readonly minBytes: number
  /** False when the type never has deferred parts (lets structs skip the buffers pass). */
  readonly hasBuffers: boolean
  writeScalars(w: NdrWriter, v: T): void
  writeBuffers(w: NdrWriter, v: T): void
  readScalars(r: NdrReader): unknown
  readBuffers(r: NdrReader, s: unknown): T
  /** Conformant types (arrays, strings) embedded last in a struct have their max_count hoisted (C706 14.3.7.1). */
  readonly conformance?: {
    write(w: NdrWriter, v: T): void
    read(r: NdrReader): number
    writeBody(w: NdrWriter, v: T): void
    readBody(r: NdrReader, maxCount: number): unknown
  }
}

export type Infer<X> = X extends NdrType<infer T> ? T : never

function scalar<T>(align: number, write: (w: NdrWriter, v: T) => void, read: (r: NdrReader) => T): NdrType<T> {
  return {
    align,
    minBytes: align,
    hasBuffers: false,
    writeScalars(w, v) {
      w.align(align)
      write(w, v)
    },
    writeBuffers() {},
    readScalars(r) {
      r.align(align)
      return read(r)
    },
    readBuffers: (_r, s) => s as T,
  }
}

export const u8 = scalar<number>(1, (w, v) => w.u8(v), r => r.u8())
export const u16 = scalar<number>(2, (w, v) => w.u16(v), r => r.u16())
export const u32 = scalar<number>(4, (w, v) => w.u32(v), r => r.u32())
export const u64 = scalar<bigint>(8, (w, v) => w.u64(v), r => r.u64())

/** GUID: u32, u16, u16, 8 bytes; 4-aligned; text form in memory. */
export const guid = scalar<string>(4, (w, v) => w.bytes(guidToBytes(v)), r => guidFromBytes(r.bytes(16, 'GUID')))

/** Fixed-size byte array (no alignment beyond `align`). */
export function fixedBytes(n: number, align = 1): NdrType<Uint8Array> {
  return scalar<Uint8Array>(align, (w, v) => {
    if (v.length !== n) throw new RangeError(`fixed byte array needs ${n} bytes, got ${v.length}`)
    w.bytes(v)
  }, r => r.bytes(n, `${n}-byte array`).slice())
}

/** Context handle: 20 bytes inline (u32 attributes + GUID), all zero = NULL. */
export const contextHandle = fixedBytes(20, 4)
export const nullContextHandle = (): Uint8Array => new Uint8Array(20)

/** Fixed-size WCHAR array holding a NUL-terminated string, zero-filled ([charset(UTF16)] WCHAR name[n]). */
export function fixedWideString(chars: number): NdrType<string> {
  return scalar<string>(2, (w, v) => {
    if (v.length >= chars) throw new RangeError(`string of ${v.length} chars does not fit WCHAR[${chars}]`)
    const b = new Uint8Array(chars * 2)
    b.set(Buffer.from(v, 'utf16le'))
    w.bytes(b)
  }, r => {
    const s = Buffer.from(r.bytes(chars * 2, `WCHAR[${chars}]`)).toString('utf16le')
    const nul = s.indexOf('\0')
    return nul < 0 ? s : s.slice(0, nul)
  })
}

type Fields = Record<string, NdrType<any>> // eslint-disable-line @typescript-eslint/no-explicit-any
type StructValue<F extends Fields> = { [K in keyof F]: Infer<F[K]> }

/** A structure: members in declaration order, aligned to its largest member; the last member may be conformant. */
export function struct<F extends Fields>(fields: F): NdrType<StructValue<F>> {
  const entries = Object.entries(fields)
  const align = Math.max(1, ...entries.map(([, t]) => t.align))
  const last = entries[entries.length - 1]?.[1]
  const hoisted = last?.conformance
  const hasBuffers = entries.some(([, t]) => t.hasBuffers)
  return {
    align,
    minBytes: entries.reduce((n, [, t]) => n + t.minBytes, 0),
    hasBuffers,
    writeScalars(w, v) {
      if (hoisted) hoisted.write(w, v[entries[entries.length - 1]![0]] as never)
      w.align(align)
      for (const [k, t] of entries) {
        if (t === last && hoisted) hoisted.writeBody(w, v[k] as never)
        else t.writeScalars(w, v[k])
      }
    },
    writeBuffers(w, v) {
      if (!hasBuffers) return
      for (const [k, t] of entries) t.writeBuffers(w, v[k])
    },
    readScalars(r) {
      const maxCount = hoisted ? hoisted.read(r) : 0
      r.align(align)
      const s: Record<string, unknown> = {}
      for (const [k, t] of entries) s[k] = t === last && hoisted ? hoisted.readBody(r, maxCount) : t.readScalars(r)
      return s
    },
    readBuffers(r, s) {
      const inter = s as Record<string, unknown>
      const out: Record<string, unknown> = {}
      for (const [k, t] of entries) out[k] = t.readBuffers(r, inter[k])
      return out as StructValue<F>
    },
  }
}

/** Embedded pointer kinds. */
function pointer<T>(target: NdrType<T>, nullable: boolean, kind: string): NdrType<T | null> {
  return {
    align: 4,
    minBytes: 4,
    hasBuffers: true,
    writeScalars(w, v) {
      w.align(4)
      if (v === null || v === undefined) {
        if (!nullable) throw new RangeError(`${kind} pointer cannot be NULL`)
        w.u32(0)
      } else w.u32(w.referent())
    },
    writeBuffers(w, v) {
      if (v === null || v === undefined) return
      target.writeScalars(w, v)
      target.writeBuffers(w, v)
    },
    readScalars(r) {
      r.align(4)
      const id = r.u32(`${kind} pointer referent id`)
      if (id === 0 && !nullable) throw new ProtocolError('NDR', `NULL ${kind} pointer at offset ${r.pos - 4}`)
      return id
    },
    readBuffers(r, s) {
      if (s === 0) return null
      return target.readBuffers(r, target.readScalars(r))
    },
  }
}

/** [unique] T*: may be NULL; the pointee is deferred when embedded, follows at once at top level. */
export const unique = <T>(t: NdrType<T>): NdrType<T | null> => pointer(t, true, 'unique')
/** [ptr] T*: encoded like unique (no aliasing in the interfaces served here). */
export const full = <T>(t: NdrType<T>): NdrType<T | null> => pointer(t, true, 'full')
/** Embedded [ref] T*: a non-zero referent id, pointee deferred. (At top level, declare the pointee type itself.) */
export const ref = <T>(t: NdrType<T>): NdrType<T> => pointer(t, false, 'ref') as NdrType<T>

function conformantOf<T>(elem: NdrType<T>, limit: number): NdrType<T[]> {
  const body = {
    writeBody(w: NdrWriter, v: T[]) {
      for (const e of v) elem.writeScalars(w, e)
      if (elem.hasBuffers) for (const e of v) elem.writeBuffers(w, e)
    },
    readBody(r: NdrReader, maxCount: number): unknown {
      if (maxCount > limit) throw new ProtocolError('NDR', `array of ${maxCount} elements exceeds the limit of ${limit}`)
      r.checkCount(maxCount, elem.minBytes, 'conformant array')
      const items: unknown[] = []
      for (let i = 0; i < maxCount; i++) items.push(elem.readScalars(r))
      return items
    },
  }
  return {
    align: Math.max(4, elem.align),
    minBytes: 4,
    hasBuffers: elem.hasBuffers,
    writeScalars(w, v) {
      w.align(4).u32(v.length)
      body.writeBody(w, v)
    },
    writeBuffers() {},
    readScalars(r) {
      r.align(4)
      return body.readBody(r, r.u32('max_count'))
    },
    readBuffers(r, s) {
      return (s as unknown[]).map(e => elem.readBuffers(r, e))
    },
    conformance: {
      write: (w, v) => void w.align(4).u32(v.length),
      read: r => (r.align(4), r.u32('max_count')),
      writeBody: body.writeBody,
      readBody: body.readBody,
    },
  }
}

/**
 * Conformant array [size_is(n)] T[]: max_count then the elements (element pointees after all elements). Used as a
 * pointee (unique(conformantArray(...))) or as the last struct member (max_count hoisted to the struct start).
 * `limit` bounds max_count when decoding.
 */
export function conformantArray<T>(elem: NdrType<T>, limit = 65536): NdrType<T[]> {
  return conformantOf(elem, limit)
}

/** Conformant byte array: a Uint8Array in memory. */
export function conformantBytes(limit = 1 << 20): NdrType<Uint8Array> {
  const write = (w: NdrWriter, v: Uint8Array) => void w.bytes(v)
  const read = (r: NdrReader, n: number): Uint8Array => {
    if (n > limit) throw new ProtocolError('NDR', `byte array of ${n} exceeds the limit of ${limit}`)
    return r.bytes(n, 'conformant byte array').slice()
  }
  return {
    align: 4,
    minBytes: 4,
    hasBuffers: false,
    writeScalars(w, v) {
      w.align(4).u32(v.length)
      write(w, v)
    },
    writeBuffers() {},
    readScalars(r) {
      r.align(4)
      return read(r, r.u32('max_count'))
    },
    readBuffers: (_r, s) => s as Uint8Array,
    conformance: {
      write: (w, v) => void w.align(4).u32(v.length),
      read: r => (r.align(4), r.u32('max_count')),
      writeBody: write,
      readBody: read,
    },
  }
}

/** Value of a conformant-varying array: `maxCount` (size_is) may exceed the transmitted items (length_is). */
export interface VaryingItems<T> {
  maxCount: number
  items: T[]
}

/** Conformant-varying array [size_is(m), length_is(n)] T[]: max_count, offset (0), actual_count, elements. */
export function conformantVaryingArray<T>(elem: NdrType<T>, limit = 65536): NdrType<VaryingItems<T>> {
  return {
    align: Math.max(4, elem.align),
    minBytes: 12,
    hasBuffers: elem.hasBuffers,
    writeScalars(w, v) {
      w.align(4).u32(Math.max(v.maxCount, v.items.length)).u32(0).u32(v.items.length)
      for (const e of v.items) elem.writeScalars(w, e)
      if (elem.hasBuffers) for (const e of v.items) elem.writeBuffers(w, e)
    },
    writeBuffers() {},
    readScalars(r) {
      r.align(4)
      const maxCount = r.u32('max_count')
      const offset = r.u32('offset')
      const actual = r.u32('actual_count')
      if (offset !== 0 || actual > maxCount || actual > limit) {
        throw new ProtocolError('NDR', `bad varying array: max ${maxCount} offset ${offset} actual ${actual}`)
      }
      r.checkCount(actual, elem.minBytes, 'conformant varying array')
      const items: unknown[] = []
      for (let i = 0; i < actual; i++) items.push(elem.readScalars(r))
      return { maxCount, items }
    },
    readBuffers(r, s) {
      const v = s as { maxCount: number; items: unknown[] }
      return { maxCount: v.maxCount, items: v.items.map(e => elem.readBuffers(r, e)) }
    },
  }
}

/**
 * [string] wchar_t*: max_count, offset 0, actual_count (characters including the NUL), UTF-16LE characters.
 * In memory the string has no NUL; a missing terminator on the wire is tolerated.
 */
export function wideString(limitChars = 4096): NdrType<string> {
  return {
    align: 4,
    minBytes: 12,
    hasBuffers: false,
    writeScalars(w, v) {
      const n = v.length + 1
      w.align(4).u32(n).u32(0).u32(n).bytes(Buffer.from(v + '\0', 'utf16le'))
    },
    writeBuffers() {},
    readScalars(r) {
      r.align(4)
      const max = r.u32('string max_count')
      const offset = r.u32('string offset')
      const actual = r.u32('string actual_count')
      if (offset !== 0 || actual > max || actual > limitChars) {
        throw new ProtocolError('NDR', `bad string header: max ${max} offset ${offset} actual ${actual}`)
      }
      const s = Buffer.from(r.bytes(actual * 2, 'UTF-16 string')).toString('utf16le')
      return s.endsWith('\0') ? s.slice(0, -1) : s
    },
    readBuffers: (_r, s) => s as string,
  }
}

/** Top-level parameters of one direction of an operation, in IDL order. */
export type Params = Fields
export type ParamValues<F extends Params> = StructValue<F>

export function encodeParams<F extends Params>(params: F, v: ParamValues<F>): Buffer {
  const w = new NdrWriter()
  for (const [k, t] of Object.entries(params)) {
    t.writeScalars(w, v[k])
    t.writeBuffers(w, v[k])
  }
  return w.finish()
}

export function decodeParams<F extends Params>(params: F, stub: Uint8Array): ParamValues<F> {
  const r = new NdrReader(stub)
  const out: Record<string, unknown> = {}
  for (const [k, t] of Object.entries(params)) out[k] = t.readBuffers(r, t.readScalars(r))
  return out as ParamValues<F>
}

/** An operation: opnum plus in and out parameter lists (the DWORD return value is the last out parameter). */
export interface Operation<I extends Params, O extends Params> {
  name: string
  opnum: number
  in: I
  out: O
  encodeIn(v: ParamValues<I>): Buffer
  decodeIn(stub: Uint8Array): ParamValues<I>
  encodeOut(v: ParamValues<O>): Buffer
  decodeOut(stub: Uint8Array): ParamValues<O>
}

export function operation<I extends Params, O extends Params>(d: { name: string; opnum: number; in: I; out: O }): Operation<I, O> {
  return {
    ...d,
    encodeIn: v => encodeParams(d.in, v),
    decodeIn: s => decodeParams(d.in, s),
    encodeOut: v => encodeParams(d.out, v),
    decodeOut: s => decodeParams(d.out, s),
  }
}

/** A type carried as another on the wire (an IPv4 address as 4 network-order bytes, ...). */
export function mapped<W, T>(wire: NdrType<W>, toWire: (v: T) => W, fromWire: (w: W) => T): NdrType<T> {
  return {
    align: wire.align,
    minBytes: wire.minBytes,
    hasBuffers: wire.hasBuffers,
    writeScalars: (w, v) => wire.writeScalars(w, toWire(v)),
    writeBuffers: (w, v) => wire.writeBuffers(w, toWire(v)),
    readScalars: r => wire.readScalars(r),
    readBuffers: (r, s) => fromWire(wire.readBuffers(r, s)),
  }
}

/** Fixed-size [string] char array inside a struct (a varying array): offset 0, actual_count incl. NUL, bytes. */
export function varyingAnsiString(size: number): NdrType<string> {
  return scalar<string>(4, (w, v) => {
    const b = Buffer.from(v + '\0', 'latin1')
    if (b.length > size) throw new RangeError(`string of ${v.length} chars does not fit char[${size}]`)
    w.u32(0).u32(b.length).bytes(b)
  }, r => {
    const offset = r.u32('string offset')
    const actual = r.u32('string actual_count')
    if (offset !== 0 || actual > size) throw new ProtocolError('NDR', `bad varying string: offset ${offset} actual ${actual}`)
    return Buffer.from(r.bytes(actual)).toString('latin1').replace(/\0.*$/s, '')
  })
}
