/**
 * A backup repository: a directory, local or on a mounted share.
 *
 *   hvcbt-repository.json   format name + version + chunk size (written once, at init)
 *   lock                    writer lock (repository-lock.ts)
 *   chunks/ab/abcdef...     content-addressed chunks, named by the SHA-256 of the uncompressed content, fanned out
 *                           by the first two hex digits (256 directories keep each directory small)
 *   manifests/<id>.json     one per backup, the commit point (manifest.ts)
 *   manifests/<id>.chunks   its chunk list
 *
 * Atomicity: every file is written to a temporary name and renamed into place. Chunk files are fsynced in one
 * parallel batch (then their directories) just before the manifest that references them is committed, which is
 * written with temp + fsync + rename + fsync dir: a manifest never names a chunk that is not durable. A backup
 * killed midway leaves whole chunks without a manifest (and maybe `*.tmp` files, removed on the next write):
 * harmless, reused by the next backup after a read-and-hash check (a power loss may have torn an unsynced one),
 * and removed by prune's garbage collection. Chunks of committed manifests are trusted without re-reading.
 */
import fsp from 'node:fs/promises'
import path from 'node:path'
import { randomBytes } from 'node:crypto'
import { AppErrorCode, EngineError, FormatError } from '../engine/errors.js'
import { fsyncDir, writeFileAtomic } from '../tracking/atomic-file.js'
import { decodeChunkAsync, encodeChunk, sha256HexAsync, type CodecName } from './chunk-codec.js'
import { acquireLock, type RepositoryLock } from './repository-lock.js'
import { BACKUP_ID_PATTERN, chunkListPath, manifestPath, parseManifest, readChunkList, type Manifest } from './manifest.js'

export const REPOSITORY_FILE = 'hvcbt-repository.json'
export const REPOSITORY_VERSION = 1
/**
 * Default chunk size: 1 MiB = 16 tracking granules of 64 KiB. Smaller chunks store less per scattered 4 KiB write
 * but cost a file, a hash-list entry and a fsync-able rename each; at 1 MiB a 100 GiB disk is 102,400 chunks
 * (a 3.2 MiB chunk list), a chunk file is large enough for sequential-speed I/O and LZ4 to find matches, and a
 * single scattered guest write stores at most 1 MiB. Proxmox uses 4 MiB; we favour smaller incrementals.
 */
export const DEFAULT_CHUNK_SIZE_BYTES = 1024 * 1024

export interface RepositoryConfig {
  format: 'hvcbt-backup-repository'
  version: number
  chunkSizeBytes: number
  createdAt: string
}

export class Repository {
  readonly chunksDir: string
  readonly manifestsDir: string
  /** Fan-out directories written to since the last syncChunks(). */
  private touchedDirs = new Set<string>()

  private constructor(readonly dir: string, readonly config: RepositoryConfig) {
    this.chunksDir = path.join(dir, 'chunks')
    this.manifestsDir = path.join(dir, 'manifests')
  }

  get chunkSizeBytes(): number { return this.config.chunkSizeBytes }

  /** Open the repository at `dir`; with `create`, make it when the directory is missing or empty. */
  static async open(dir: string, options: { create?: boolean; chunkSizeBytes?: number } = {}): Promise<Repository> {
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
      return Repository.init(dir, options.chunkSizeBytes ?? DEFAULT_CHUNK_SIZE_BYTES)
    }
    let config: RepositoryConfig
    try {
      config = JSON.parse(text) as RepositoryConfig
    } catch (err) {
      throw new FormatError(file, 'repository file', null, `not JSON: ${(err as Error).message}`)
    }
    if (config.format !== 'hvcbt-backup-repository') throw new FormatError(file, 'repository file', null, 'not an hvcbt backup repository')
    if (config.version !== REPOSITORY_VERSION) {
      throw new FormatError(file, 'repository file', null, `repository format version ${config.version}; this engine reads version ${REPOSITORY_VERSION}`)
    }
    if (!Number.isSafeInteger(config.chunkSizeBytes) || config.chunkSizeBytes < 4096 || config.chunkSizeBytes > 64 * 1024 * 1024) {
      throw new FormatError(file, 'repository file', null, `bad chunkSizeBytes ${config.chunkSizeBytes}`)
    }
    return new Repository(dir, config)
  }

  private static async init(dir: string, chunkSizeBytes: number): Promise<Repository> {
    if (!Number.isSafeInteger(chunkSizeBytes) || chunkSizeBytes < 64 * 1024 || chunkSizeBytes > 64 * 1024 * 1024 ||
      chunkSizeBytes % (64 * 1024) !== 0) {
      throw new EngineError(`chunk size ${chunkSizeBytes} must be a multiple of 64 KiB (the tracking granularity) up to 64 MiB`, 'InvalidArgument')
    }
    await fsp.mkdir(dir, { recursive: true })
    const existing = (await fsp.readdir(dir)).filter(n => n !== 'lock')
    if (existing.length > 0) {
      throw new EngineError(`${dir} is not empty and is not a backup repository (no ${REPOSITORY_FILE})`, 'InvalidArgument')
    }
    await fsp.mkdir(path.join(dir, 'chunks'), { recursive: true })
    await fsp.mkdir(path.join(dir, 'manifests'), { recursive: true })
    const config: RepositoryConfig = {
      format: 'hvcbt-backup-repository', version: REPOSITORY_VERSION, chunkSizeBytes, createdAt: new Date().toISOString(),
    }
    await fsyncDir(dir)
    await writeFileAtomic(path.join(dir, REPOSITORY_FILE), JSON.stringify(config, null, 2) + '\n')
    return new Repository(dir, config)
  }

  lock(purpose: string, options: { breakLock?: boolean } = {}): Promise<RepositoryLock> {
    return acquireLock(this.dir, purpose, options)
  }

  // ------------------------------------------------------------------ chunks

  chunkPath(hash: string): string {
    return path.join(this.chunksDir, hash.slice(0, 2), hash)
  }

  async hasChunk(hash: string): Promise<boolean> {
    try {
      await fsp.access(this.chunkPath(hash))
      return true
    } catch {
      return false
    }
  }

  /**
   * Hashes whose chunk files are known durable and intact: referenced by a committed manifest (chunks are synced
   * before a manifest commits) or checked in this run. Other files found under a hash (left by an interrupted
   * backup, possibly torn by a power loss before their sync) are read and checked before reuse.
   */
  private trusted = new Set<string>()

  /** Declare the chunks of committed manifests trusted (the backup does this with every chunk list it loads). */
  trustChunks(list: Buffer): void {
    for (let i = 0; i < list.length; i += 32) {
      const h = list.subarray(i, i + 32)
      if (h.some(b => b !== 0)) this.trusted.add(h.toString('hex'))
    }
  }

  /**
   * Store `data` under `hash` (the caller hashed it) unless an intact copy is present. Returns the bytes written
   * (0 if present). The file is written and renamed into place; its data and directory are made durable in one
   * batch by syncChunks(), before the manifest that references it is committed.
   */
  async putChunk(hash: string, data: Uint8Array, codec?: CodecName): Promise<number> {
    const file = this.chunkPath(hash)
    if (this.trusted.has(hash)) return 0
    if (await this.hasChunk(hash)) {
      const intact = await this.getChunk(hash).then(() => true, () => false)
      if (intact) {
        this.trusted.add(hash)
        this.unsynced.add(file) // its sync may never have happened (the writer was killed): do it with ours
        return 0
      }
    }
    const dir = path.dirname(file)
    await fsp.mkdir(dir, { recursive: true })
    const bytes = encodeChunk(data, codec)
    const tmp = `${file}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`
    await fsp.writeFile(tmp, bytes)
    await fsp.rename(tmp, file)
    this.trusted.add(hash)
    this.unsynced.add(file)
    this.touchedDirs.add(dir)
    return bytes.length
  }

  /** Chunk files written (or reused unsynced) since the last syncChunks(). */
  private unsynced = new Set<string>()

  /** Make every chunk stored so far durable: fsync the files (8 at a time), then their directories, then chunks/. */
  async syncChunks(): Promise<void> {
    const files = [...this.unsynced]
    let next = 0
    const worker = async (): Promise<void> => {
      for (let k = next++; k < files.length; k = next++) {
        const h = await fsp.open(files[k]!, 'r')
        try { await h.sync() } finally { await h.close() }
      }
    }
    await Promise.all(Array.from({ length: 8 }, worker))
    this.unsynced.clear()
    for (const d of this.touchedDirs) await fsyncDir(d)
    if (this.touchedDirs.size) await fsyncDir(this.chunksDir)
    this.touchedDirs.clear()
  }

  /** Read, decode and check a chunk. Throws ObjectNotFound when missing, FormatError when damaged. */
  async getChunk(hash: string): Promise<Buffer> {
    const file = this.chunkPath(hash)
    let bytes: Buffer
    try {
      bytes = await fsp.readFile(file)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new EngineError(`chunk ${hash} is missing from ${this.dir}`, 'ObjectNotFound', AppErrorCode.NotFound, { hash })
      }
      throw err
    }
    const data = await decodeChunkAsync(bytes, file)
    const actual = await sha256HexAsync(data)
    if (actual !== hash) throw new FormatError(file, 'chunk content', null, `SHA-256 is ${actual}, expected ${hash}`)
    return data
  }

  /** Every stored chunk (hash, file mtime); temporaries are skipped. */
  async listChunks(): Promise<{ hash: string; mtimeMs: number; sizeBytes: number }[]> {
    const out: { hash: string; mtimeMs: number; sizeBytes: number }[] = []
    let fans: string[]
    try {
      fans = await fsp.readdir(this.chunksDir)
    } catch {
      return out
    }
    for (const fan of fans) {
      if (!/^[0-9a-f]{2}$/.test(fan)) continue
      for (const name of await fsp.readdir(path.join(this.chunksDir, fan))) {
        if (!/^[0-9a-f]{64}$/.test(name)) continue
        const st = await fsp.stat(path.join(this.chunksDir, fan, name)).catch(() => null)
        if (st) out.push({ hash: name, mtimeMs: st.mtimeMs, sizeBytes: st.size })
      }
    }
    return out
  }

  async removeChunk(hash: string): Promise<void> {
    await fsp.rm(this.chunkPath(hash), { force: true })
    this.touchedDirs.add(path.dirname(this.chunkPath(hash)))
  }

  /** Remove `*.tmp` files older than `olderThanMs` left in chunks/ and manifests/ by killed writers. */
  async removeTemporaries(olderThanMs = 0): Promise<number> {
    let n = 0
    const dirs = [this.manifestsDir]
    for (const fan of await fsp.readdir(this.chunksDir).catch(() => [] as string[])) dirs.push(path.join(this.chunksDir, fan))
    for (const d of dirs) {
      for (const name of await fsp.readdir(d).catch(() => [] as string[])) {
        if (!name.endsWith('.tmp')) continue
        const st = await fsp.stat(path.join(d, name)).catch(() => null)
        if (st && Date.now() - st.mtimeMs >= olderThanMs) {
          await fsp.rm(path.join(d, name), { force: true })
          n++
        }
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
