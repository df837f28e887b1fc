/**
 * A backup repository: a directory, local or on a mounted share.
 *
 *   hvcbt-repository.json   format name + version + chunk and pack sizes (written once, at init)
 *   lock                    writer lock (repository-lock.ts)
 *   packs/<id>.pack, .idx   content-addressed chunks, named by the SHA-256 of the uncompressed content, many per
 *                           pack file, each pack with its index (pack-store.ts)
 *   manifests/<id>.json     one per backup, the commit point (manifest.ts)
 *   manifests/<id>.chunks   its chunk list
 *
 * Atomicity: packs are written under temporary names, fsynced, renamed, and only then indexed; the chunk list and
 * manifest of a backup are written with temp + fsync + rename + fsync dir after every pack it filled is durable
 * and indexed: a manifest never names a chunk that is not durable. A backup killed midway leaves indexed packs
 * without a manifest (reused by the next backup, removed by prune's garbage collection when nothing uses them)
 * and `*.tmp` files, removed by the next writer.
 */
import fsp from 'node:fs/promises'
import path from 'node:path'
import { AppErrorCode, EngineError, FormatError } from '../engine/errors.js'
import { fsyncDir, writeFileAtomic } from '../tracking/atomic-file.js'
import { nativeAddon } from '../platform/sparse.js'
import { decodeChunkAsync, encodeChunkAsync, sha256HexMany, type CodecName } from './chunk-codec.js'
import { acquireLock, type RepositoryLock } from './repository-lock.js'
import { BACKUP_ID_PATTERN, HASH_BYTES, chunkListPath, manifestPath, parseManifest, readChunkList, type Manifest } from './manifest.js'
import { MAX_PACK_TARGET_BYTES, PackStore, type GcResult, type UnpackRequest } from './pack-store.js'

export const REPOSITORY_FILE = 'hvcbt-repository.json'
/** 2: chunks in pack files. 1 (loose chunk files) was written only by development builds. */
export const REPOSITORY_VERSION = 2
/**
 * Default chunk size: 64 KiB, the tracking granule. An incremental then reads and stores exactly the granules the
 * guest changed: a scattered 4-64 KiB write costs 64 KiB, not a whole larger chunk (1 MiB chunks stored 15x the
 * changed bytes for 1 % of scattered 64 KiB writes). Packs keep the file count low; the cost is the chunk list,
 * 32 bytes per chunk (a 100 GiB disk: 51 MiB per backup, 0.05 % of the disk).
 */
export const DEFAULT_CHUNK_SIZE_BYTES = 64 * 1024
/** Default pack size: large enough for sequential I/O and few files (about 3,000 per 100 GiB stored). */
export const DEFAULT_PACK_SIZE_BYTES = 32 * 1024 * 1024

export interface RepositoryConfig {
  format: 'hvcbt-backup-repository'
  version: number
  chunkSizeBytes: number
  packSizeBytes: number
  createdAt: string
}

export interface RepositoryOpenOptions {
  /** Make the repository when the directory is missing or empty. */
  create?: boolean
  chunkSizeBytes?: number
  packSizeBytes?: number
  /** Told about packs that had to be scanned (their index missing or damaged). */
  warn?(message: string): void
}

export class Repository {
  readonly packsDir: string
  readonly manifestsDir: string
  private readonly store: PackStore

  private constructor(readonly dir: string, readonly config: RepositoryConfig, warn?: (message: string) => void) {
    this.packsDir = path.join(dir, 'packs')
    this.manifestsDir = path.join(dir, 'manifests')
    this.store = new PackStore(this.packsDir, config.packSizeBytes, warn)
  }

  get chunkSizeBytes(): number { return this.config.chunkSizeBytes }

  /**
   * The chunk index, loaded on the first chunk operation (listing or reading manifests does not need it).
   * Chunk methods await it; it stays loaded, and a lookup that misses reloads new packs only.
   */
  private indexed: Promise<void> | null = null
  private loaded(): Promise<void> {
    return this.indexed ??= this.store.load()
  }

  /** Open the repository at `dir`; with `create`, make it when the directory is missing or empty. */
  static async open(dir: string, options: RepositoryOpenOptions = {}): Promise<Repository> {
    const file = path.join(dir, REPOSITORY_FILE)
    let text: string | null = null
    try {
      text = await fsp.readFile(file, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
    if (text === null) {
      if (!options.create) {
        throw new EngineError(`${dir} is not a backup repository (no ${REPOSITORY_FILE})`, 'ObjectNotFound', AppErrorCode.NotFound, { repo: dir })
      }
      return Repository.init(dir, options)
    }
    let config: RepositoryConfig
    try {
      config = JSON.parse(text) as RepositoryConfig
    } catch (err) {
      throw new FormatError(file, 'repository file', null, `not JSON: ${(err as Error).message}`)
    }
    if (config.format !== 'hvcbt-backup-repository') throw new FormatError(file, 'repository file', null, 'not an hvcbt backup repository')
    if (config.version === 1) {
      throw new FormatError(file, 'repository file', null, 'repository format version 1 (loose chunk files, written by development builds ' +
        `before pack files); this engine reads version ${REPOSITORY_VERSION}: back up into a new repository`)
    }
    if (config.version !== REPOSITORY_VERSION) {
      throw new FormatError(file, 'repository file', null, `repository format version ${config.version}; this engine reads version ${REPOSITORY_VERSION}`)
    }
    if (!Number.isSafeInteger(config.chunkSizeBytes) || config.chunkSizeBytes < 4096 || config.chunkSizeBytes > 64 * 1024 * 1024) {
      throw new FormatError(file, 'repository file', null, `bad chunkSizeBytes ${config.chunkSizeBytes}`)
    }
    if (!Number.isSafeInteger(config.packSizeBytes) || config.packSizeBytes < 64 * 1024 || config.packSizeBytes > MAX_PACK_TARGET_BYTES) {
      throw new FormatError(file, 'repository file', null, `bad packSizeBytes ${config.packSizeBytes}`)
    }
    return new Repository(dir, config, options.warn)
  }

  private static async init(dir: string, options: RepositoryOpenOptions): Promise<Repository> {
    const chunkSizeBytes = options.chunkSizeBytes ?? DEFAULT_CHUNK_SIZE_BYTES
    const packSizeBytes = options.packSizeBytes ?? DEFAULT_PACK_SIZE_BYTES
    if (!Number.isSafeInteger(chunkSizeBytes) || chunkSizeBytes < 64 * 1024 || chunkSizeBytes > 64 * 1024 * 1024 ||
      chunkSizeBytes % (64 * 1024) !== 0) {
      throw new EngineError(`chunk size ${chunkSizeBytes} must be a multiple of 64 KiB (the tracking granularity) up to 64 MiB`, 'InvalidArgument')
    }
    if (!Number.isSafeInteger(packSizeBytes) || packSizeBytes < 64 * 1024 || packSizeBytes > MAX_PACK_TARGET_BYTES) {
      throw new EngineError(`pack size ${packSizeBytes} must be between 64 KiB and 1 GiB`, 'InvalidArgument')
    }
    await fsp.mkdir(dir, { recursive: true })
    const existing = (await fsp.readdir(dir)).filter(n => n !== 'lock')
    if (existing.length > 0) {
      throw new EngineError(`${dir} is not empty and is not a backup repository (no ${REPOSITORY_FILE})`, 'InvalidArgument')
    }
    await fsp.mkdir(path.join(dir, 'packs'), { recursive: true })
    await fsp.mkdir(path.join(dir, 'manifests'), { recursive: true })
    const config: RepositoryConfig = {
      format: 'hvcbt-backup-repository', version: REPOSITORY_VERSION, chunkSizeBytes, packSizeBytes, createdAt: new Date().toISOString(),
    }
    await fsyncDir(dir)
    await writeFileAtomic(path.join(dir, REPOSITORY_FILE), JSON.stringify(config, null, 2) + '\n')
    return new Repository(dir, config, options.warn)
  }

  lock(purpose: string, options: { breakLock?: boolean } = {}): Promise<RepositoryLock> {
    return acquireLock(this.dir, purpose, options)
  }

  /** Close pack handles; an unfinished pack of a failed backup is dropped. */
  close(): Promise<void> {
    return this.store.close()
  }

  // ------------------------------------------------------------------ chunks

  /**
   * Store `data` under `hash` (the caller hashed it) unless the repository has it. Returns the bytes written
   * (0 if present). Durable and indexed after syncChunks(), before the manifest that references it is committed.
   */
  async putChunk(hash: string, data: Uint8Array, codec?: CodecName): Promise<number> {
    await this.loaded()
    const h = Buffer.from(hash, 'hex')
    if (this.store.has(h)) return 0
    return this.store.put(h, await encodeChunkAsync(data, codec))
  }

  /** Make every chunk stored so far durable and indexed. */
  syncChunks(): Promise<void> {
    return this.store.flush()
  }

  /** Where a chunk is stored (pack file, record offset and length), or null. */
  async locateChunk(hash: string): Promise<{ file: string; offset: number; length: number } | null> {
    await this.loaded()
    return this.store.locate(Buffer.from(hash, 'hex'))
  }

  /** Read, decode and check a chunk. Throws ObjectNotFound when missing, FormatError when damaged. */
  async getChunk(hash: string): Promise<Buffer> {
    const [r] = await this.getChunks([hash])
    if (r instanceof Error) throw r
    return r!
  }

  /**
   * Read, decode and check several chunks at once (records adjacent in a pack are read together; decoding runs in
   * parallel on the thread pool, hashing as one batch there). Per hash: the content, or the error (EngineError ObjectNotFound
   * when missing, FormatError when damaged).
   */
  async getChunks(hashes: string[]): Promise<Array<Buffer | Error>> {
    await this.loaded()
    const keys = hashes.map(h => Buffer.from(h, 'hex'))
    const found = await this.reloadingMissing(keys, some => this.store.readMany(some), f => f === null)
    const decoded = await Promise.all(found.map(async (f, k): Promise<Buffer | Error> => {
      if (f === null) return this.missing(hashes[k]!)
      if (f instanceof Error) return f
      return decodeChunkAsync(f.chunk, f.where).catch((err: Error) => err)
    }))
    // then all hashed in one batch (see sha256HexMany)
    const sums = await sha256HexMany(decoded.filter((d): d is Buffer => !(d instanceof Error)))
    let s = 0
    return decoded.map((d, k) => {
      if (d instanceof Error) return d
      const sum = sums[s++]!
      if (sum === hashes[k]) return d
      const { where } = found[k] as { where: string }
      return new FormatError(where, 'chunk content', null, `SHA-256 is ${sum}, expected ${hashes[k]}`)
    })
  }

  /**
   * Read, decode and check chunks straight into `dest` (restore's path): with the native addon one thread-pool job
   * does it all (PackStore.unpackInto), without it getChunks and a copy. Per request: null when its content is in
   * `dest`, else the error (as getChunks gives it).
   */
  async getChunksInto(dest: Buffer, wanted: UnpackRequest[]): Promise<Array<Error | null>> {
    await this.loaded()
    const unpack = nativeAddon()?.unpackChunks
    if (!unpack) {
      const got = await this.getChunks(wanted.map(w => w.hashes.toString('hex', w.at, w.at + HASH_BYTES)))
      return got.map((g, k) => {
        if (g instanceof Error) return g
        const w = wanted[k]!
        if (g.length !== w.length) return new EngineError(`holds ${g.length} bytes, expected ${w.length}`, 'InvalidData', AppErrorCode.InvalidData)
        g.copy(dest, w.to)
        return null
      })
    }
    const out = await this.reloadingMissing(wanted, some => this.store.unpackInto(unpack, dest, some), r => r === 'missing')
    return out.map((r, k) => r !== 'missing' ? r : this.missing(wanted[k]!.hashes.toString('hex', wanted[k]!.at, wanted[k]!.at + HASH_BYTES)))
  }

  /**
   * `read(items)`, and once more for the items it found missing after indexing the packs another process added
   * since this repository was opened.
   */
  private async reloadingMissing<T, R>(items: T[], read: (some: T[]) => Promise<R[]>, isMissing: (r: R) => boolean): Promise<R[]> {
    const out = await read(items)
    const retry = out.flatMap((r, k) => isMissing(r) ? [k] : [])
    if (!retry.length) return out
    await this.store.load()
    const again = await read(retry.map(k => items[k]!))
    retry.forEach((k, j) => { out[k] = again[j]! })
    return out
  }

  private missing(hash: string): EngineError {
    return new EngineError(`chunk ${hash} is missing from ${this.dir}`, 'ObjectNotFound', AppErrorCode.NotFound, { hash })
  }

  /**
   * Garbage collection: chunks none of `lists` (the chunk lists of every backup kept) references are removed, by
   * removing or rewriting the packs that hold them (pack-store.ts); packs modified after `graceCutoffMs` stay.
   */
  async collectGarbage(lists: Iterable<Buffer>, graceCutoffMs: number, dryRun: boolean): Promise<GcResult> {
    await this.loaded()
    const index = this.store.index
    const live = new Uint8Array(index.count)
    for (const list of lists) {
      for (let o = 0; o < list.length; o += HASH_BYTES) {
        const e = index.find(list, o)
        if (e >= 0) live[e] = 1
      }
    }
    return this.store.collectGarbage(live, graceCutoffMs, dryRun)
  }

  /** Remove `*.tmp` files older than `olderThanMs` left in packs/ and manifests/ by killed writers. */
  async removeTemporaries(olderThanMs = 0): Promise<number> {
    let n = 0
    for (const d of [this.manifestsDir, this.packsDir]) {
      for (const name of await fsp.readdir(d).catch(() => [] as string[])) {
        if (!name.endsWith('.tmp')) continue
        const st = await fsp.stat(path.join(d, name)).catch(() => null)
        if (!st || (olderThanMs > 0 && Date.now() - st.mtimeMs < olderThanMs)) continue
        await fsp.rm(path.join(d, name), { force: true })
        n++
      }
    }
    return n
  }

  // ------------------------------------------------------------------ manifests

  /** Commit a backup: chunk list, then (after the chunks are durable) the manifest JSON. */
  async writeManifest(m: Manifest, chunkList: Buffer): Promise<void> {
    await this.syncChunks()
    await writeFileAtomic(chunkListPath(this.manifestsDir, m.id), chunkList, false)
    await writeFileAtomic(manifestPath(this.manifestsDir, m.id), JSON.stringify(m, null, 2) + '\n')
  }

  async readManifest(id: string): Promise<Manifest> {
    if (!BACKUP_ID_PATTERN.test(id)) throw new EngineError(`'${id}' is not a backup id (like 20261125T101500Z-3fa2c1)`, 'InvalidArgument')
    const file = manifestPath(this.manifestsDir, id)
    let text: string
    try {
      text = await fsp.readFile(file, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new EngineError(`no backup ${id} in ${this.dir}`, 'ObjectNotFound', AppErrorCode.NotFound, { id })
      }
      throw err
    }
    return parseManifest(text, file)
  }

  readChunkList(m: Manifest): Promise<Buffer> {
    return readChunkList(this.manifestsDir, m)
  }

  /** Every committed manifest, oldest first. Damaged ones are returned in `damaged` with the reason. */
  async listManifests(): Promise<{ manifests: Manifest[]; damaged: { id: string; error: string }[] }> {
    const manifests: Manifest[] = []
    const damaged: { id: string; error: string }[] = []
    for (const name of (await fsp.readdir(this.manifestsDir)).sort()) {
      const m = /^(.+)\.json$/.exec(name)
      if (!m || !BACKUP_ID_PATTERN.test(m[1]!)) continue
      try {
        manifests.push(await this.readManifest(m[1]!))
      } catch (err) {
        damaged.push({ id: m[1]!, error: (err as Error).message })
      }
    }
    // Oldest first, by start time to the millisecond: ids carry whole seconds and a random suffix, so two backups
    // in the same second would otherwise order at random and an incremental could pick the wrong base.
    manifests.sort((a, b) => a.startedAt.localeCompare(b.startedAt) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    return { manifests, damaged }
  }

  /** Remove a backup: the manifest first (the commit point), then its chunk list. Chunks are left to gc. */
  async removeManifest(id: string): Promise<void> {
    await fsp.rm(manifestPath(this.manifestsDir, id), { force: true })
    await fsp.rm(chunkListPath(this.manifestsDir, id), { force: true })
    await fsyncDir(this.manifestsDir)
  }
}
