/**
 * `hvcbt backup verify --repo DIR [--id ID] [--deep]`
 *
 * Every chunk a backup references is read, decoded and hashed; a chunk shared by many backups is checked once and
 * its verdict applies to each of them, so one flipped byte in a shared chunk names every backup that depends on
 * it. The chunk list is checked against the SHA-256 its manifest records.
 *
 * --deep also rebuilds each backup's image stream in disk order (zero chunks as zeros) and checks it: its chunk
 * list rebuilt from the content must equal the manifest's, and its SHA-256 must equal the manifest's whole-disk
 * hash when the backup recorded one (full and content-scan backups); the stream hash is reported either way, so it
 * can be compared with `sha256sum` of a restored raw image.
 */
import { createHash } from 'node:crypto'
import { chunkHashAt, type Manifest } from './manifest.js'
import { Repository } from './repository.js'

export interface VerifyOptions {
  repoDir: string
  id?: string
  deep?: boolean
  progress?(done: number, total: number, message?: string): void
  signal?: AbortSignal
}

export interface ChunkProblem {
  hash: string
  /** 'missing' or 'corrupt' (content does not match the name, or the file cannot be decoded). */
  problem: 'missing' | 'corrupt'
  detail: string
  /** Disk offsets of the first few references in this backup. */
  offsets: number[]
}

export interface BackupVerdict {
  id: string
  ok: boolean
  chunksChecked: number
  problems: ChunkProblem[]
  /** Problems with the manifest or its chunk list itself. */
  manifestProblem: string | null
  /** --deep: SHA-256 of the rebuilt image stream (null when not computed or not rebuildable). */
  imageSha256: string | null
  imageSha256Matches: boolean | null
}

export interface VerifyResult {
  repo: string
  ok: boolean
  backupsChecked: number
  chunksChecked: number
  /** Ids of the backups with problems. */
  affected: string[]
  backups: BackupVerdict[]
  durationMs: number
}

export async function verifyRepository(o: VerifyOptions): Promise<VerifyResult> {
  const t0 = Date.now()
  const repo = await Repository.open(o.repoDir)
  try {
    const { manifests, damaged } = await repo.listManifests()
    const chosen = o.id ? [await repo.readManifest(o.id)] : manifests
    const verdicts: BackupVerdict[] = o.id ? [] : damaged.map(d => ({
      id: d.id, ok: false, chunksChecked: 0, problems: [], manifestProblem: d.error, imageSha256: null, imageSha256Matches: null,
    }))
    const lists = new Map<string, Buffer | string>()
    let total = 0
    for (const m of chosen) {
      try {
        const l = await repo.readChunkList(m)
        lists.set(m.id, l)
        total += m.chunkCount
      } catch (err) {
        lists.set(m.id, (err as Error).message)
      }
    }
    /** Verdict per chunk hash: null = good, else the problem. */
    const seen = new Map<string, { problem: 'missing' | 'corrupt'; detail: string } | null>()
    let checked = 0
    let done = 0
    for (const m of chosen) {
      const list = lists.get(m.id)!
      if (typeof list === 'string') {
        verdicts.push({ id: m.id, ok: false, chunksChecked: 0, problems: [], manifestProblem: list, imageSha256: null, imageSha256Matches: null })
        continue
      }
      verdicts.push(await verifyOne(repo, m, list, seen, o.deep ?? false, () => { checked++ }, () => {
        done++
        if (done % 16 === 0 || done === total) o.progress?.(done, total, `verifying ${m.id}`)
      }, o.signal))
    }
    const affected = verdicts.filter(v => !v.ok).map(v => v.id)
    return {
      repo: repo.dir, ok: affected.length === 0, backupsChecked: verdicts.length, chunksChecked: checked, affected,
      backups: verdicts, durationMs: Date.now() - t0,
    }
  } finally {
    await repo.close()
  }
}

/** Chunks checked per batch. */
const VERIFY_WINDOW_BYTES = 4 * 1024 * 1024

async function verifyOne(repo: Repository, m: Manifest, list: Buffer,
  seen: Map<string, { problem: 'missing' | 'corrupt'; detail: string } | null>, deep: boolean,
  onCheck: () => void, onChunk: () => void, signal?: AbortSignal): Promise<BackupVerdict> {
  const problems = new Map<string, ChunkProblem>()
  const image = deep ? createHash('sha256') : null
  const zero = Buffer.alloc(m.chunkSizeBytes)
  let chunksChecked = 0
  const size = (i: number): number => Math.min(m.chunkSizeBytes, m.disk.virtualSizeBytes - i * m.chunkSizeBytes)
  // a window of chunks at a time: fetched in one batch (adjacent pack records read together, hashed in parallel)
  const WINDOW = Math.max(1, Math.floor(VERIFY_WINDOW_BYTES / m.chunkSizeBytes))
  for (let w = 0; w < m.chunkCount; w += WINDOW) {
    signal?.throwIfAborted()
    const end = Math.min(m.chunkCount, w + WINDOW)
    const fetch = new Map<string, number>() // hash -> first chunk index needing it
    for (let i = w; i < end; i++) {
      const hash = chunkHashAt(list, i)
      const verdict = hash === null ? null : seen.get(hash)
      if (hash !== null && !fetch.has(hash) && (verdict === undefined || (deep && verdict === null))) fetch.set(hash, i)
    }
    const hashes = [...fetch.keys()]
    const got = new Map<string, Buffer>()
    ;(await repo.getChunks(hashes)).forEach((data, k) => {
      const hash = hashes[k]!
      const len = size(fetch.get(hash)!)
      let verdict: { problem: 'missing' | 'corrupt'; detail: string } | null = null
      if (data instanceof Error) verdict = { problem: (data as { code?: unknown }).code === -32001 ? 'missing' : 'corrupt', detail: data.message }
      else if (data.length !== len) verdict = { problem: 'corrupt', detail: `holds ${data.length} bytes, expected ${len}` }
      else got.set(hash, data)
      if (!seen.has(hash)) { onCheck(); chunksChecked++ }
      seen.set(hash, verdict)
    })
    for (let i = w; i < end; i++) {
      const len = size(i)
      const hash = chunkHashAt(list, i)
      onChunk()
      const verdict = hash === null ? null : seen.get(hash)
      if (verdict) {
        const p = problems.get(hash!) ?? { hash: hash!, ...verdict, offsets: [] }
        if (p.offsets.length < 8) p.offsets.push(i * m.chunkSizeBytes)
        problems.set(hash!, p)
      }
      // a problem keeps the walk going (every problem is reported); the image hash then will not match
      image?.update(hash === null || verdict ? zero.subarray(0, len) : got.get(hash)!)
    }
  }
  const imageSha256 = image ? image.digest('hex') : null
  const imageSha256Matches = imageSha256 && m.imageSha256 ? imageSha256 === m.imageSha256 : null
  const ok = problems.size === 0 && imageSha256Matches !== false
  return {
    id: m.id, ok, chunksChecked, problems: [...problems.values()],
    manifestProblem: imageSha256Matches === false ? `rebuilt image SHA-256 ${imageSha256} differs from the manifest's ${m.imageSha256}` : null,
    imageSha256, imageSha256Matches,
  }
}
