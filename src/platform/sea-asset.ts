/**
 * Native modules inside the single executable. A SEA cannot require() a .node file, so the build embeds each one
 * as an asset, and at run time it is written to `<tmpdir>/hvcbt-<short name>-<uid>-<sha256 prefix>.node` and opened with
 * process.dlopen. A file already at that name is reused only when it is ours (same uid, not writable by others)
 * and has the same content; otherwise a fresh copy is created exclusively under a temporary name and renamed into
 * place, so a concurrent engine never dlopens half a file and a file planted by someone else is never loaded.
 */
import fs from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'

export interface SeaApi {
  isSea(): boolean
  getAsset(name: string): ArrayBuffer
  getAsset(name: string, encoding: string): string
}

/** node:sea when running as a single executable, else null (also on Node < 20.12, which lacks the module). */
export function seaModule(): SeaApi | null {
  try {
    const sea = createRequire(import.meta.url)('node:sea') as SeaApi
    return sea.isSea() ? sea : null
  } catch {
    return null
  }
}

/**
 * Path of a file holding the embedded asset `assetName` (e.g. 'lz4-napi.node'; `shortName` names the extracted
 * file), extracted once per content; null when not running as a single executable. Throws when the executable
 * carries no such asset.
 */
export function seaAssetFile(assetName: string, shortName: string): string | null {
  const sea = seaModule()
  if (!sea) return null
  // required here, not imported: only the single-executable path pays for loading crypto and os
  const require = createRequire(import.meta.url)
  const { createHash } = require('node:crypto') as typeof import('node:crypto')
  const os = require('node:os') as typeof import('node:os')
  let bytes: Buffer
  try {
    bytes = Buffer.from(sea.getAsset(assetName))
  } catch {
    throw new Error(`the executable carries no ${assetName} asset`)
  }
  const hash = createHash('sha256').update(bytes).digest('hex')
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0
  const file = path.join(os.tmpdir(), `hvcbt-${shortName}-${uid}-${hash.slice(0, 24)}.node`)
  if (isOurCopy(file, uid, hash, createHash)) return file
  const temp = `${file}.${process.pid}.${Date.now()}.tmp`
  fs.writeFileSync(temp, bytes, { mode: 0o700, flag: 'wx' })
  try {
    fs.renameSync(temp, file)
  } catch {
    return temp // someone else's file sits at the name (sticky /tmp refuses the rename): use our private copy
  }
  return file
}

function isOurCopy(file: string, uid: number, hash: string, createHash: typeof import('node:crypto').createHash): boolean {
  try {
    const st = fs.lstatSync(file)
    if (!st.isFile() || st.uid !== uid || (st.mode & 0o022) !== 0) return false
    return createHash('sha256').update(fs.readFileSync(file)).digest('hex') === hash
  } catch {
    return false
  }
}
