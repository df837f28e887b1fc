/**
 * Pack files: many chunks per file. Chunks are as small as the tracking granule (64 KiB), so an incremental stores
 * only the granules that changed; as plain files that would be 1.6 million files per 100 GiB disk, packs make it
 * a few thousand per terabyte.
 *
 *   packs/<32 hex>.pack   16-byte header ('HVCP', u32 version 1, 8 reserved bytes), then records:
 *                         [SHA-256 of the chunk content, 32 bytes][chunk: HVCK header + payload, chunk-codec.ts]
 *   packs/<32 hex>.idx    16-byte header ('HVCI', u32 version 1, u32 entry count, 4 reserved bytes), then one
 *                         48-byte entry per record (hash, u64 offset, u32 record length, u32 content length),
 *                         then the SHA-256 of everything before it
 *
 * Writing: records are appended to `<name>.pack.tmp` (positions handed out in order, writes in parallel). At the
 * target size the pack is finalized in the background: fsync, rename to `.pack`, idx written atomically. So an
 * idx exists only for a durable pack: every indexed chunk survives a power loss, and a backup killed midway leaves
 * its finalized packs for the next one to reuse (its `.pack.tmp` is removed as a temporary). flush() finalizes
 * the open pack and waits for every finalization: a manifest is committed only after it.
 *
 * Reading: every pack's idx is loaded at open into one hash table (ChunkIndex: 48 bytes per chunk plus 8 bytes of
 * table; the 1.6M chunks of a 100 GiB disk take about 90 MiB). A pack whose idx is missing (a writer killed
 * between rename and idx) or damaged is scanned instead: records describe themselves. Reads check that the record
 * holds the hash asked for; the repository then checks the decoded content against it.
 */
import fsp from 'node:fs/promises'
import path from 'node:path'
import { createHash, randomBytes } from 'node:crypto'
import { FormatError } from '../engine/errors.js'
import { fsyncDir, writeFileAtomic } from '../tracking/atomic-file.js'
import { CHUNK_HEADER_BYTES, CHUNK_MAGIC, MAX_CHUNK_BYTES } from './chunk-codec.js'

export const PACK_MAGIC = 'HVCP'
export const INDEX_MAGIC = 'HVCI'
const VERSION = 1
export const PACK_HEADER_BYTES = 16
const INDEX_HEADER_BYTES = 16
const INDEX_ENTRY_BYTES = 48
const HASH = 32
/** Packs never exceed 4 GiB (offsets in memory are u32): the target is capped well below. */
export const MAX_PACK_TARGET_BYTES = 1024 ** 3

/** In-memory entry: hash 32 | pack number u32 | offset u32 | record length u32 | content length u32. */
const ENTRY = 48

/**
 * Hash table from chunk hash to pack location, flat in two typed buffers (no per-chunk objects): open addressing
 * on the hash's first 32 bits (SHA-256 bits are uniform), linear probing, load factor at most 1/2.
 */
export class ChunkIndex {
  private entries = Buffer.alloc(ENTRY * 1024)
  private table = new Uint32Array(4096)
  count = 0

  /** Entry number of `hash` (32 bytes of `buf` at `at`), or -1. */
  find(buf: Buffer, at = 0): number {
    const mask = this.table.length - 1
    for (let s = buf.readUInt32LE(at) & mask; ; s = (s + 1) & mask) {
      const e = this.table[s]!
      if (e === 0) return -1
      const o = (e - 1) * ENTRY
      if (buf.compare(this.entries, o, o + HASH, at, at + HASH) === 0) return e - 1
    }
  }

  /** Add a location for `hash` unless it has one (the first stays). Returns the entry number, or -1 if present. */
  add(buf: Buffer, at: number, pack: number, offset: number, length: number, rawBytes: number): number {
    if (this.find(buf, at) >= 0) return -1
    if ((this.count + 1) * 2 > this.table.length) this.rehash(this.table.length * 2)
    if ((this.count + 1) * ENTRY > this.entries.length) {
      const bigger = Buffer.alloc(this.entries.length * 2)
      this.entries.copy(bigger)
      this.entries = bigger
    }
    const e = this.count++
    const o = e * ENTRY
    buf.copy(this.entries, o, at, at + HASH)
    this.set(e, pack, offset, length, rawBytes)
    this.insert(e)
    return e
  }

  /** Point entry `e` at a new location (a repacked chunk). */
  set(e: number, pack: number, offset: number, length: number, rawBytes: number): void {
    const o = e * ENTRY + HASH
    this.entries.writeUInt32LE(pack, o)
    this.entries.writeUInt32LE(offset, o + 4)
    this.entries.writeUInt32LE(length, o + 8)
    this.entries.writeUInt32LE(rawBytes, o + 12)
  }

  hash(e: number): Buffer { return this.entries.subarray(e * ENTRY, e * ENTRY + HASH) }
  pack(e: number): number { return this.entries.readUInt32LE(e * ENTRY + HASH) }
  offset(e: number): number { return this.entries.readUInt32LE(e * ENTRY + HASH + 4) }
  length(e: number): number { return this.entries.readUInt32LE(e * ENTRY + HASH + 8) }
  rawBytes(e: number): number { return this.entries.readUInt32LE(e * ENTRY + HASH + 12) }

  private insert(e: number): void {
    const mask = this.table.length - 1
    let s = this.entries.readUInt32LE(e * ENTRY) & mask
    while (this.table[s] !== 0) s = (s + 1) & mask
    this.table[s] = e + 1
  }

  private rehash(size: number): void {
    this.table = new Uint32Array(size)
    for (let e = 0; e < this.count; e++) this.insert(e)
  }
}

export interface PackFile {
  name: string
  /** Current path: `<name>.pack`, or `<name>.pack.tmp` while it is being written. */
  file: string
  sizeBytes: number
  mtimeMs: number
}

interface OpenPack {
  no: number
  name: string
  tmp: string
  fh: fsp.FileHandle
  size: number
  /** Set when the pack stops taking records (it is being finalized). */
  sealed: boolean
  writes: Set<Promise<void>>
  /** idx entries of the records written so far. */
  entries: Buffer[]
}

export interface GcResult {
  chunksRemoved: number
  bytesFreed: number
  /** Unreferenced chunks left because their pack is younger than the grace period. */
  chunksKeptInGrace: number
  packsRemoved: number
  /** Packs whose live chunks were copied to new packs before removal. */
  packsRewritten: number
}

/** A pack is rewritten (its live chunks copied to a new pack) once this share of it is unreferenced. */
const REPACK_DEAD_SHARE = 0.2
/** Open read handles kept (packs read by restore and verify). */
const MAX_OPEN_HANDLES = 32
/** Finalizations (fsync + idx) running in the background before a writer waits for one. */
const MAX_FINALIZING = 2

export class PackStore {
  readonly index = new ChunkIndex()
  /** By pack number; null once removed. */
  readonly packs: (PackFile | null)[] = []
  private byName = new Map<string, number>()
  private opening: Promise<OpenPack> | null = null
  private finalizing = new Set<Promise<Error | null>>()
  /** The first finalization that failed: later writes fail at once instead of filling a pack nobody indexes. */
  private failed: Error | null = null
  private handles = new Map<number, { fh: Promise<fsp.FileHandle>; refs: number }>()

  constructor(readonly dir: string, readonly targetBytes: number, private readonly warn: (message: string) => void = () => {}) {}

  // ------------------------------------------------------------------ loading

  /** Index every finalized pack not yet known (at open, and again when a lookup misses: another writer may have added packs). */
  async load(): Promise<void> {
    let names: string[]
    try {
      names = await fsp.readdir(this.dir)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
      throw err
    }
    const idx = new Set(names.filter(n => n.endsWith('.idx')))
    for (const n of names.sort()) {
      const m = /^([0-9a-f]{32})\.pack$/.exec(n)
      if (!m || this.byName.has(m[1]!)) continue
      const file = path.join(this.dir, n)
      const st = await fsp.stat(file).catch(() => null)
      if (!st) continue
      const no = this.addPack({ name: m[1]!, file, sizeBytes: st.size, mtimeMs: st.mtimeMs })
      let entries: Buffer | null = null
      if (idx.has(`${m[1]}.idx`)) {
        try {
          entries = await readIndexFile(path.join(this.dir, `${m[1]}.idx`), st.size)
        } catch (err) {
          this.warn(`${(err as Error).message}: scanning the pack instead`)
        }
      }
      entries ??= await scanPack(file, st.size, this.warn)
      for (let o = 0; o < entries.length; o += INDEX_ENTRY_BYTES) {
        this.index.add(entries, o, no, Number(entries.readBigUInt64LE(o + HASH)), entries.readUInt32LE(o + HASH + 8), entries.readUInt32LE(o + HASH + 12))
      }
    }
  }

  private addPack(p: PackFile): number {
    this.packs.push(p)
    this.byName.set(p.name, this.packs.length - 1)
    return this.packs.length - 1
  }

  // ------------------------------------------------------------------ writing

  has(hash: Buffer): boolean {
    return this.index.find(hash) >= 0
  }

  /** Append a chunk (HVCK header + payload) under `hash` unless the store has it. Returns the bytes written. */
  async put(hash: Buffer, chunk: Buffer): Promise<number> {
    if (this.has(hash)) return 0
    const { pack, offset } = await this.append(hash, chunk)
    this.index.add(hash, 0, pack, offset, HASH + chunk.length, chunk.readUInt32LE(8))
    return HASH + chunk.length
  }

  private async append(hash: Buffer, chunk: Buffer): Promise<{ pack: number; offset: number }> {
    let cur: OpenPack
    for (;;) {
      if (this.finalizing.size >= MAX_FINALIZING) await Promise.race(this.finalizing)
      if (this.failed) throw this.failed
      cur = await (this.opening ??= this.openPack())
      if (!cur.sealed) break
    }
    const offset = cur.size
    cur.size += HASH + chunk.length
    if (cur.size >= this.targetBytes) this.seal(cur)
    const write = cur.fh.writev([hash, chunk], offset).then(() => {
      const e = Buffer.allocUnsafe(INDEX_ENTRY_BYTES)
      hash.copy(e, 0)
      e.writeBigUInt64LE(BigInt(offset), HASH)
      e.writeUInt32LE(HASH + chunk.length, HASH + 8)
      e.writeUInt32LE(chunk.readUInt32LE(8), HASH + 12)
      cur.entries.push(e)
    })
    cur.writes.add(write)
    try {
      await write
    } finally {
      cur.writes.delete(write)
    }
    return { pack: cur.no, offset }
  }

  private async openPack(): Promise<OpenPack> {
    await fsp.mkdir(this.dir, { recursive: true })
    const name = randomBytes(16).toString('hex')
    const tmp = path.join(this.dir, `${name}.pack.tmp`)
    const fh = await fsp.open(tmp, 'wx')
    const header = Buffer.alloc(PACK_HEADER_BYTES)
    header.write(PACK_MAGIC, 0, 'latin1')
    header.writeUInt32LE(VERSION, 4)
    await fh.write(header, 0, header.length, 0)
    const no = this.addPack({ name, file: tmp, sizeBytes: PACK_HEADER_BYTES, mtimeMs: Date.now() })
    return { no, name, tmp, fh, size: PACK_HEADER_BYTES, sealed: false, writes: new Set(), entries: [] }
  }

  /** Stop adding to `cur` and finalize it in the background (errors surface in flush()). */
  private seal(cur: OpenPack): void {
    cur.sealed = true
    this.opening = null
    const p: Promise<Error | null> = this.finalize(cur).then(() => null, (err: Error) => err)
    this.finalizing.add(p)
    void p.then(err => {
      if (err) this.failed ??= err
      else this.finalizing.delete(p)
    })
  }

  private async finalize(cur: OpenPack): Promise<void> {
    while (cur.writes.size) await Promise.allSettled([...cur.writes])
    try {
      await cur.fh.sync()
    } finally {
      await cur.fh.close()
    }
    const file = path.join(this.dir, `${cur.name}.pack`)
    await fsp.rename(cur.tmp, file)
    this.packs[cur.no] = { name: cur.name, file, sizeBytes: cur.size, mtimeMs: Date.now() }
    await writeFileAtomic(path.join(this.dir, `${cur.name}.idx`), indexFile(cur.entries))
  }

  /** Make every chunk put so far durable and indexed on disk. Throws the first failure of any finalization. */
  async flush(): Promise<void> {
    if (this.opening) {
      const cur = await this.opening
      if (!cur.sealed) this.seal(cur)
    }
    const results = await Promise.all(this.finalizing)
    this.finalizing.clear()
    const failed = results.find(r => r !== null)
    if (failed) throw failed
  }

  // ------------------------------------------------------------------ reading

  /** Where `hash` is stored, or null. */
  locate(hash: Buffer): { file: string; offset: number; length: number } | null {
    const e = this.index.find(hash)
    if (e < 0) return null
    return { file: this.packs[this.index.pack(e)]!.file, offset: this.index.offset(e), length: this.index.length(e) }
  }

  /** The chunk (HVCK header + payload) stored under `hash`, or null when no pack has it. */
  async read(hash: Buffer): Promise<{ chunk: Buffer; where: string } | null> {
    const e = this.index.find(hash)
    if (e < 0) return null
    const record = await this.readRecord(this.index.pack(e), this.index.offset(e), this.index.length(e))
    const where = `${this.packs[this.index.pack(e)]!.file} at offset ${this.index.offset(e)}`
    if (!record.subarray(0, HASH).equals(hash)) {
      throw new FormatError(this.packs[this.index.pack(e)]!.file, 'pack record', this.index.offset(e),
        `holds chunk ${record.subarray(0, HASH).toString('hex')}, the index says ${hash.toString('hex')}`)
    }
    return { chunk: record.subarray(HASH), where }
  }

  private async readRecord(pack: number, offset: number, length: number): Promise<Buffer> {
    const p = this.packs[pack]
    if (!p) throw new Error(`pack ${pack} was removed`)
    let h = this.handles.get(pack)
    if (!h) {
      if (this.handles.size >= MAX_OPEN_HANDLES) this.evictHandle()
      h = { fh: fsp.open(p.file, 'r'), refs: 0 }
      h.fh.catch(() => this.handles.delete(pack))
      this.handles.set(pack, h)
    }
    h.refs++
    try {
      const buf = Buffer.allocUnsafe(length)
      const { bytesRead } = await (await h.fh).read(buf, 0, length, offset)
      if (bytesRead !== length) throw new FormatError(p.file, 'pack record', offset, `pack ends after ${bytesRead} of the record's ${length} bytes`)
      return buf
    } finally {
      h.refs--
    }
  }

  private evictHandle(): void {
    for (const [no, h] of this.handles) {
      if (h.refs > 0) continue
      this.handles.delete(no)
      void h.fh.then(fh => fh.close(), () => {})
      return
    }
  }

  // ------------------------------------------------------------------ garbage collection

  /**
   * Remove packs no live chunk is in, and rewrite packs that are at least 20 % unreferenced (their live chunks are
   * copied to new packs, made durable, then the old pack goes: idx first, so no index ever names a missing pack).
   * `live[e]` marks index entries still referenced. Packs modified after `graceCutoffMs` are left alone.
   */
  async collectGarbage(live: Uint8Array, graceCutoffMs: number, dryRun: boolean): Promise<GcResult> {
    const r: GcResult = { chunksRemoved: 0, bytesFreed: 0, chunksKeptInGrace: 0, packsRemoved: 0, packsRewritten: 0 }
    const liveBytes = new Float64Array(this.packs.length)
    const dead = new Uint32Array(this.packs.length)
    for (let e = 0; e < this.index.count; e++) {
      if (live[e]) liveBytes[this.index.pack(e)] += this.index.length(e)
      else dead[this.index.pack(e)]!++
    }
    const doomed: number[] = []
    for (let no = 0; no < this.packs.length; no++) {
      const p = this.packs[no]
      if (!p || p.file.endsWith('.tmp')) continue
      const deadBytes = p.sizeBytes - PACK_HEADER_BYTES - liveBytes[no]!
      if (p.mtimeMs > graceCutoffMs) {
        r.chunksKeptInGrace += dead[no]!
        continue
      }
      if (liveBytes[no] === 0) {
        r.packsRemoved++
      } else if (deadBytes >= p.sizeBytes * REPACK_DEAD_SHARE) {
        r.packsRewritten++
      } else {
        continue
      }
      r.chunksRemoved += dead[no]!
      r.bytesFreed += deadBytes + (liveBytes[no] === 0 ? PACK_HEADER_BYTES : 0)
      doomed.push(no)
    }
    if (dryRun || doomed.length === 0) return r
    const moving = new Set(doomed)
    for (let e = 0; e < this.index.count; e++) {
      const no = this.index.pack(e)
      if (!live[e] || !moving.has(no)) continue
      const record = await this.readRecord(no, this.index.offset(e), this.index.length(e))
      const to = await this.append(record.subarray(0, HASH), record.subarray(HASH))
      this.index.set(e, to.pack, to.offset, record.length, this.index.rawBytes(e))
    }
    await this.flush()
    for (const no of doomed) {
      const p = this.packs[no]!
      const h = this.handles.get(no)
      this.handles.delete(no)
      await h?.fh.then(fh => fh.close(), () => {})
      await fsp.rm(path.join(this.dir, `${p.name}.idx`), { force: true })
      await fsyncDir(this.dir)
      await fsp.rm(p.file, { force: true })
      this.packs[no] = null
      this.byName.delete(p.name)
    }
    await fsyncDir(this.dir)
    return r
  }

  /** Close read handles and drop an unfinished pack (a failed backup's: its chunks are referenced by nothing). */
  async close(): Promise<void> {
    const open = this.opening
    this.opening = null
    if (open) {
      const cur = await open.catch(() => null)
      if (cur && !cur.sealed) {
        cur.sealed = true
        await Promise.allSettled([...cur.writes])
        await cur.fh.close().catch(() => {})
        await fsp.rm(cur.tmp, { force: true })
      }
    }
    await Promise.all(this.finalizing)
    for (const h of this.handles.values()) await h.fh.then(fh => fh.close(), () => {})
    this.handles.clear()
  }
}

function indexFile(entries: Buffer[]): Buffer {
  const body = Buffer.alloc(INDEX_HEADER_BYTES + entries.length * INDEX_ENTRY_BYTES + HASH)
  body.write(INDEX_MAGIC, 0, 'latin1')
  body.writeUInt32LE(VERSION, 4)
  body.writeUInt32LE(entries.length, 8)
  entries.forEach((e, i) => e.copy(body, INDEX_HEADER_BYTES + i * INDEX_ENTRY_BYTES))
  const end = body.length - HASH
  createHash('sha256').update(body.subarray(0, end)).digest().copy(body, end)
  return body
}

/** Read and check an idx file; returns its entries (48 bytes each). Throws FormatError naming what is wrong. */
export async function readIndexFile(file: string, packBytes: number): Promise<Buffer> {
  const buf = await fsp.readFile(file)
  const bad = (what: string, at: number | null): never => { throw new FormatError(file, 'pack index', at, what) }
  if (buf.length < INDEX_HEADER_BYTES + HASH) bad(`${buf.length} bytes, shorter than an empty index`, 0)
  if (buf.toString('latin1', 0, 4) !== INDEX_MAGIC) bad(`magic is not '${INDEX_MAGIC}'`, 0)
  if (buf.readUInt32LE(4) !== VERSION) bad(`unsupported version ${buf.readUInt32LE(4)}`, 4)
  const count = buf.readUInt32LE(8)
  if (buf.length !== INDEX_HEADER_BYTES + count * INDEX_ENTRY_BYTES + HASH) bad(`${count} entries do not fit its ${buf.length} bytes`, 8)
  const end = buf.length - HASH
  if (!createHash('sha256').update(buf.subarray(0, end)).digest().equals(buf.subarray(end))) bad('SHA-256 does not match its content', end)
  const entries = buf.subarray(INDEX_HEADER_BYTES, end)
  for (let o = 0; o < entries.length; o += INDEX_ENTRY_BYTES) {
    const offset = Number(entries.readBigUInt64LE(o + HASH))
    const length = entries.readUInt32LE(o + HASH + 8)
    if (offset < PACK_HEADER_BYTES || length < HASH + CHUNK_HEADER_BYTES || offset + length > packBytes) {
      bad(`entry ${o / INDEX_ENTRY_BYTES} (offset ${offset}, length ${length}) lies outside the ${packBytes}-byte pack`, INDEX_HEADER_BYTES + o)
    }
  }
  return entries
}

/**
 * Rebuild a pack's entries from its records (header checks only; content is checked when read). Stops at the
 * first record that does not parse and warns: the records before it stay readable.
 */
export async function scanPack(file: string, size: number, warn: (message: string) => void): Promise<Buffer> {
  const out: Buffer[] = []
  const fh = await fsp.open(file, 'r')
  try {
    const head = Buffer.alloc(HASH + CHUNK_HEADER_BYTES)
    await fh.read(head, 0, PACK_HEADER_BYTES, 0)
    if (size < PACK_HEADER_BYTES || head.toString('latin1', 0, 4) !== PACK_MAGIC || head.readUInt32LE(4) !== VERSION) {
      warn(`${file}: not a pack file (header): none of its chunks can be used`)
      return Buffer.alloc(0)
    }
    let pos = PACK_HEADER_BYTES
    while (pos < size) {
      const { bytesRead } = await fh.read(head, 0, head.length, pos)
      const h = head.subarray(HASH)
      const payload = h.readUInt32LE(12)
      const length = HASH + CHUNK_HEADER_BYTES + payload
      if (bytesRead < head.length || h.toString('latin1', 0, 4) !== CHUNK_MAGIC || h.readUInt32LE(8) > MAX_CHUNK_BYTES ||
        payload > MAX_CHUNK_BYTES + 16 || pos + length > size) {
        warn(`${file}: record at offset ${pos} does not parse: the ${size - pos} bytes from there are not used`)
        break
      }
      const e = Buffer.alloc(INDEX_ENTRY_BYTES)
      head.copy(e, 0, 0, HASH)
      e.writeBigUInt64LE(BigInt(pos), HASH)
      e.writeUInt32LE(length, HASH + 8)
      e.writeUInt32LE(h.readUInt32LE(8), HASH + 12)
      out.push(e)
      pos += length
    }
  } finally {
    await fh.close()
  }
  return Buffer.concat(out)
}
