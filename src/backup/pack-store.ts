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
import type { NativeAddon } from '../platform/sparse.js'
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
    const first = buf.readUInt32LE(at)
    const entries = this.entries
    for (let s = first & mask; ; s = (s + 1) & mask) {
      const e = this.table[s]!
      if (e === 0) return -1
      const o = (e - 1) * ENTRY
      if (entries.readUInt32LE(o) === first && buf.compare(entries, o, o + HASH, at, at + HASH) === 0) return e - 1
    }
  }

  /** Make room for `more` entries at once (loading), instead of growing step by step. */
  reserve(more: number): void {
    const want = this.count + more
    if (want * ENTRY > this.entries.length) {
      const bigger = Buffer.alloc(Math.max(want * ENTRY, this.entries.length * 2))
      this.entries.copy(bigger)
      this.entries = bigger
    }
    if (want * 2 > this.table.length) {
      let size = this.table.length
      while (want * 2 > size) size *= 2
      this.rehash(size)
    }
  }

  /** Add a location for `hash` unless it has one (the first stays). Returns the entry number, or -1 if present. */
  add(buf: Buffer, at: number, pack: number, offset: number, length: number, rawBytes: number): number {
    if (this.find(buf, at) >= 0) return -1
    this.reserve(1)
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

/** A chunk to unpack: its hash is `hashes` at `at` (32 bytes); its `length` bytes of content go to offset `to`. */
export interface UnpackRequest { hashes: Buffer; at: number; to: number; length: number }

/** An open pack, held open (not evicted) until `release()`. */
interface PackHandle { fh: fsp.FileHandle; fd: number; release(): void }

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
  /** Bytes handed out (header + records), written or staged. */
  size: number
  /** Records not yet written, and where they start: written together once STAGE_BYTES gather. */
  staged: Uint8Array[]
  stagedAt: number
  /** Set when the pack stops taking records (it is being finalized). */
  sealed: boolean
  /** Writes in flight: the first failure fails the pack. */
  writes: Set<Promise<void>>
  /** idx entries of the records appended. */
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
/** Adjacent records are read together up to this many bytes. */
const READ_RUN_BYTES = 4 * 1024 * 1024
/** Bytes per chunk in the plan of unpackChunks (native/src/unpack.cc). */
const UNPACK_ENTRY_BYTES = 64
/** Records are written to the open pack this many bytes at a time. */
const STAGE_BYTES = 1024 * 1024
/** ... or this many buffers (well-compressed chunks are small; one writev takes at most IOV_MAX = 1024). */
const STAGE_PARTS = 960

export class PackStore {
  readonly index = new ChunkIndex()
  /** By pack number; null once removed. */
  readonly packs: (PackFile | null)[] = []
  private byName = new Map<string, number>()
  private opening: Promise<OpenPack> | null = null
  private finalizing = new Set<Promise<Error | null>>()
  /** Packs being written (open or finalizing), by number. */
  private unfinished = new Map<number, OpenPack>()
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
    const fresh = names.sort().map(n => /^([0-9a-f]{32})\.pack$/.exec(n)?.[1]).filter((n): n is string => !!n && !this.byName.has(n))
    // read the indexes 16 at a time (each is a few round trips to the file system, which may be a share)
    const loaded = new Array<{ pack: PackFile; entries: Buffer } | null>(fresh.length)
    let next = 0
    const worker = async (): Promise<void> => {
      for (let k = next++; k < fresh.length; k = next++) {
        const name = fresh[k]!
        const file = path.join(this.dir, `${name}.pack`)
        const st = await fsp.stat(file).catch(() => null)
        if (!st) continue
        let entries: Buffer | null = null
        if (idx.has(`${name}.idx`)) {
          try {
            entries = await readIndexFile(path.join(this.dir, `${name}.idx`), st.size)
          } catch (err) {
            this.warn(`${(err as Error).message}: scanning the pack instead`)
          }
        }
        entries ??= await scanPack(file, st.size, this.warn)
        loaded[k] = { pack: { name, file, sizeBytes: st.size, mtimeMs: st.mtimeMs }, entries }
      }
    }
    await Promise.all(Array.from({ length: 16 }, worker))
    this.index.reserve(loaded.reduce((n, l) => n + (l ? l.entries.length / INDEX_ENTRY_BYTES : 0), 0))
    for (const l of loaded) {
      if (!l || this.byName.has(l.pack.name)) continue
      const no = this.addPack(l.pack)
      const entries = l.entries
      for (let o = 0; o < entries.length; o += INDEX_ENTRY_BYTES) {
        // offsets are u64 on disk; packs stay below 4 GiB, so the low half is the offset
        this.index.add(entries, o, no, entries.readUInt32LE(o + HASH), entries.readUInt32LE(o + HASH + 8), entries.readUInt32LE(o + HASH + 12))
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

  /** Append a chunk (HVCK header, payload) under `hash` unless the store has it. Returns the bytes written. */
  async put(hash: Buffer, chunk: [Buffer, Uint8Array]): Promise<number> {
    if (this.has(hash)) return 0
    const length = HASH + chunk[0].length + chunk[1].length
    const { pack, offset } = await this.append([hash, ...chunk], length)
    this.index.add(hash, 0, pack, offset, length, chunk[0].readUInt32LE(8))
    return length
  }

  /**
   * Append one record to the open pack; returns where it went. Records are staged and written STAGE_BYTES at a
   * time with one writev (a write per 64 KiB record costs a thread-pool round trip each; the parts are the
   * caller's fresh buffers, kept, not copied). Readers of a record still staged wait for it (settle()).
   */
  private async append(parts: Uint8Array[], length: number): Promise<{ pack: number; offset: number }> {
    let cur: OpenPack
    for (;;) {
      if (this.finalizing.size >= MAX_FINALIZING) await Promise.race(this.finalizing)
      if (this.failed) throw this.failed
      cur = await (this.opening ??= this.openPack())
      if (!cur.sealed) break
    }
    const offset = cur.size
    cur.size += length
    cur.staged.push(...parts)
    const e = Buffer.alloc(INDEX_ENTRY_BYTES)
    e.set(parts[0]!.subarray(0, HASH), 0)
    e.writeUInt32LE(offset, HASH) // u64 on disk; packs stay below 4 GiB
    e.writeUInt32LE(length, HASH + 8)
    e.writeUInt32LE(Buffer.from(parts[1]!.buffer, parts[1]!.byteOffset, parts[1]!.byteLength).readUInt32LE(8), HASH + 12)
    cur.entries.push(e)
    if (cur.size >= this.targetBytes) this.seal(cur)
    else if (cur.size - cur.stagedAt >= STAGE_BYTES || cur.staged.length >= STAGE_PARTS) await this.writeStaged(cur)
    return { pack: cur.no, offset }
  }

  /** Write what is staged in `cur`; resolves when it is written (with every earlier write). */
  private async writeStaged(cur: OpenPack): Promise<void> {
    if (cur.staged.length) {
      const parts = cur.staged
      const at = cur.stagedAt
      const bytes = cur.size - at
      cur.staged = []
      cur.stagedAt = cur.size
      const write = writeAll(cur.fh, parts, at, bytes, cur.tmp)
      cur.writes.add(write)
      void write.then(() => cur.writes.delete(write), () => {})
    }
    await Promise.all(cur.writes)
  }

  private async openPack(): Promise<OpenPack> {
    await fsp.mkdir(this.dir, { recursive: true })
    const name = randomBytes(16).toString('hex')
    const tmp = path.join(this.dir, `${name}.pack.tmp`)
    const fh = await fsp.open(tmp, 'wx')
    const header = Buffer.alloc(PACK_HEADER_BYTES)
    header.write(PACK_MAGIC, 0, 'latin1')
    header.writeUInt32LE(VERSION, 4)
    const no = this.addPack({ name, file: tmp, sizeBytes: PACK_HEADER_BYTES, mtimeMs: Date.now() })
    const cur: OpenPack = { no, name, tmp, fh, size: PACK_HEADER_BYTES, staged: [header], stagedAt: 0, sealed: false, writes: new Set(), entries: [] }
    this.unfinished.set(no, cur)
    return cur
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
    try {
      await this.writeStaged(cur)
      await cur.fh.sync()
    } finally {
      await cur.fh.close()
    }
    const file = path.join(this.dir, `${cur.name}.pack`)
    await fsp.rename(cur.tmp, file)
    this.packs[cur.no] = { name: cur.name, file, sizeBytes: cur.size, mtimeMs: Date.now() }
    this.unfinished.delete(cur.no)
    await writeFileAtomic(path.join(this.dir, `${cur.name}.idx`), indexFile(cur.entries))
  }

  /** Before reading pack `no`: if it is still being written, write what is staged and wait for it. */
  private async settle(no: number): Promise<void> {
    const cur = this.unfinished.get(no)
    if (cur) await this.writeStaged(cur)
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

  /** Where the `count` wanted chunks are (hash k: 32 bytes of `key(k)`), those the index has, in pack and offset order. */
  private locateSorted(count: number, key: (k: number) => [Buffer, number]): { k: number; pack: number; offset: number; length: number }[] {
    const found: { k: number; pack: number; offset: number; length: number }[] = []
    for (let k = 0; k < count; k++) {
      const e = this.index.find(...key(k))
      if (e >= 0) found.push({ k, pack: this.index.pack(e), offset: this.index.offset(e), length: this.index.length(e) })
    }
    return found.sort((a, b) => a.pack - b.pack || a.offset - b.offset)
  }

  /**
   * The chunks (HVCK header + payload) stored under `hashes`: per hash, the chunk and where it was read, an error
   * (a record that does not hold that hash, an unreadable pack), or null when no pack has it. Records adjacent in
   * a pack are read together (up to READ_RUN_BYTES at a time): a restore reads a full backup's packs sequentially.
   */
  async readMany(hashes: Buffer[]): Promise<Array<{ chunk: Buffer; where: string } | Error | null>> {
    const out = new Array<{ chunk: Buffer; where: string } | Error | null>(hashes.length).fill(null)
    const found = this.locateSorted(hashes.length, k => [hashes[k]!, 0])
    const runs: (typeof found)[] = []
    for (const f of found) {
      const run = runs[runs.length - 1]
      const last = run?.[run.length - 1]
      if (run && last!.pack === f.pack && last!.offset + last!.length === f.offset && f.offset + f.length - run[0]!.offset <= READ_RUN_BYTES) run.push(f)
      else runs.push([f])
    }
    await Promise.all(runs.map(async run => {
      const first = run[0]!
      const file = (): string => this.packs[first.pack]?.file ?? `pack ${first.pack}`
      let bytes: Buffer
      try {
        bytes = await this.readRecord(first.pack, first.offset, run[run.length - 1]!.offset + run[run.length - 1]!.length - first.offset)
      } catch (err) {
        for (const f of run) out[f.k] = err as Error
        return
      }
      for (const f of run) {
        const at = f.offset - first.offset
        const record = bytes.subarray(at, at + f.length)
        out[f.k] = record.length < f.length
          ? shortRecord(file(), f.offset, record.length, f.length)
          : record.subarray(0, HASH).equals(hashes[f.k]!)
          ? { chunk: record.subarray(HASH), where: `${file()} at offset ${f.offset}` }
          : new FormatError(file(), 'pack record', f.offset, `holds chunk ${record.subarray(0, HASH).toString('hex')}, the index says ${hashes[f.k]!.toString('hex')}`)
      }
    }))
    return out
  }

  /**
   * Unpack chunks straight into `dest` in one native job (native/src/unpack.cc): `wanted[k]` is the chunk whose
   * hash is the 32 bytes of `wanted[k].hashes` at `wanted[k].at`, `length` bytes at `dest` offset `to`. Records
   * adjacent in a pack are read with one preadv, a stored record's content straight into `dest`; lz4 records are
   * decoded into it and every chunk's SHA-256 is checked there. Per chunk: null when done, an error, or
   * 'missing' when no pack has it. Needs the addon (`unpack`).
   */
  async unpackInto(unpack: NativeAddon['unpackChunks'], dest: Buffer, wanted: UnpackRequest[]): Promise<Array<Error | null | 'missing'>> {
    const out = new Array<Error | null | 'missing'>(wanted.length).fill('missing')
    const found = this.locateSorted(wanted.length, k => [wanted[k]!.hashes, wanted[k]!.at])
    if (!found.length) return out
    const held = new Map<number, PackHandle | Error>()
    try {
      const usable: (typeof found[number] & { fd: number })[] = []
      for (const f of found) {
        if (!held.has(f.pack)) held.set(f.pack, await this.acquire(f.pack).catch((err: Error) => err))
        const h = held.get(f.pack)!
        if (h instanceof Error) out[f.k] = h
        else usable.push({ ...f, fd: h.fd })
      }
      const plan = Buffer.alloc(UNPACK_ENTRY_BYTES * usable.length)
      usable.forEach((f, n) => {
        const w = wanted[f.k]!
        const o = n * UNPACK_ENTRY_BYTES
        plan.writeInt32LE(f.fd, o)
        plan.writeUInt32LE(f.offset, o + 4)
        plan.writeUInt32LE(f.length, o + 8)
        plan.writeUInt32LE(w.to, o + 12)
        plan.writeUInt32LE(w.length, o + 16)
        w.hashes.copy(plan, o + 32, w.at, w.at + HASH)
      })
      const results = await unpack(dest, plan)
      usable.forEach((f, n) => {
        const r = results[n]
        const file = this.packs[f.pack]?.file ?? `pack ${f.pack}`
        if (!r) out[f.k] = null
        else if ('structure' in r) out[f.k] = new FormatError(r.offset === null ? `${file} at offset ${f.offset}` : file, r.structure, r.offset, r.message)
        else out[f.k] = Object.assign(new Error(`${r.message} (${file})`), { code: r.code, errno: r.errno, syscall: r.syscall })
      })
    } finally {
      for (const h of held.values()) if (!(h instanceof Error)) h.release()
    }
    return out
  }

  /** `length` bytes of pack `pack` at `offset`, fewer when the pack ends before. */
  private async readRecord(pack: number, offset: number, length: number): Promise<Buffer> {
    const h = await this.acquire(pack)
    try {
      const buf = Buffer.allocUnsafe(length)
      let got = 0
      while (got < length) {
        const { bytesRead } = await h.fh.read(buf, got, length - got, offset + got)
        if (bytesRead === 0) break
        got += bytesRead
      }
      return buf.subarray(0, got)
    } finally {
      h.release()
    }
  }

  /** An open handle on pack `pack` (its staged records written first), kept open until `release()`. */
  private async acquire(pack: number): Promise<PackHandle> {
    await this.settle(pack)
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
    const entry = h
    try {
      const fh = await entry.fh
      return { fh, fd: fh.fd, release: () => { entry.refs-- } }
    } catch (err) {
      entry.refs--
      throw err
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
      if (record.length < this.index.length(e)) throw shortRecord(this.packs[no]!.file, this.index.offset(e), record.length, this.index.length(e))
      const to = await this.append([record.subarray(0, HASH), record.subarray(HASH, HASH + CHUNK_HEADER_BYTES), record.subarray(HASH + CHUNK_HEADER_BYTES)], record.length)
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
    const cur = open ? await open.catch(() => null) : null
    if (cur && !cur.sealed) {
      cur.sealed = true
      this.unfinished.delete(cur.no)
      await Promise.allSettled([...cur.writes])
      await cur.fh.close().catch(() => {})
      await fsp.rm(cur.tmp, { force: true })
    }
    await Promise.all(this.finalizing)
    for (const h of this.handles.values()) await h.fh.then(fh => fh.close(), () => {})
    this.handles.clear()
  }
}

/** Write `parts` (`bytes` in all) at `at`, continuing after short writes. */
async function writeAll(fh: fsp.FileHandle, parts: Uint8Array[], at: number, bytes: number, file: string): Promise<void> {
  let done = 0
  while (done < bytes) {
    const { bytesWritten } = await fh.writev(done === 0 ? parts : [Buffer.concat(parts).subarray(done)], at + done)
    if (bytesWritten <= 0) throw new Error(`cannot write to ${file} at offset ${at + done}`)
    done += bytesWritten
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

/** A record the pack ends inside of (`got` of its `length` bytes are there). */
function shortRecord(file: string, offset: number, got: number, length: number): FormatError {
  return new FormatError(file, 'pack record', offset, `pack ends after ${got} of the record's ${length} bytes`)
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
    const offset = entries.readUInt32LE(o + HASH) + entries.readUInt32LE(o + HASH + 4) * 2 ** 32
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
