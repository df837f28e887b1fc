/**
 * The witness credential store: a JSON file of users and their NT hashes (never passwords), mode 0600, written
 * atomically. The server re-reads it when its modification time changes, so `hvcbt witness user add` takes effect
 * without a restart.
 *
 *   { "version": 1, "users": [ { "name": "backup", "ntHash": "<32 hex>", "created": "<ISO time>" } ] }
 */
import { chmodSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs'
import { EngineError } from '../../../engine/errors.js'
import { ntHash } from './md4.js'

export interface StoredUser {
  name: string
  ntHash: string
  created: string
}

interface CredentialFile {
  version: 1
  users: StoredUser[]
}

function readStore(path: string): CredentialFile {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, users: [] }
    throw e
  }
  const data = JSON.parse(text) as CredentialFile
  if (data.version !== 1 || !Array.isArray(data.users)) {
    throw new EngineError(`${path}: not a version 1 witness credential file`, 'InvalidData')
  }
  for (const u of data.users) {
    if (typeof u.name !== 'string' || !/^[0-9a-f]{32}$/i.test(u.ntHash)) {
      throw new EngineError(`${path}: bad user entry ${JSON.stringify(u.name)}`, 'InvalidData')
    }
  }
  return data
}

/** Add or replace a user; the file is created with mode 0600. Returns whether the user existed. */
export function addUser(path: string, name: string, password: string): boolean {
  if (!/^[^\\/"[\]:|<>+=;,?*@\s][^\\/"[\]:|<>+=;,?*@]{0,103}$/.test(name)) {
    throw new EngineError(`invalid user name ${JSON.stringify(name)}`, 'InvalidArgument')
  }
  if (password.length === 0) throw new EngineError('empty password', 'InvalidArgument')
  const store = readStore(path)
  const existed = store.users.some(u => u.name.toUpperCase() === name.toUpperCase())
  store.users = store.users.filter(u => u.name.toUpperCase() !== name.toUpperCase())
  store.users.push({ name, ntHash: ntHash(password).toString('hex'), created: new Date().toISOString() })
  const tmp = `${path}.tmp-${process.pid}`
  writeFileSync(tmp, JSON.stringify(store, null, 2) + '\n', { mode: 0o600 })
  chmodSync(tmp, 0o600)
  renameSync(tmp, path)
  return existed
}

/** A lookup that follows changes to the file. */
export class CredentialStore {
  private mtimeMs = -1
  private users = new Map<string, Buffer>()

  constructor(readonly path: string) {
    const mode = statSync(path).mode & 0o077
    if (mode !== 0) throw new EngineError(`${path}: credential file must not be readable by group or others (chmod 600)`, 'SecurityError')
    this.reload()
  }

  private reload(): void {
    const st = statSync(this.path)
    if (st.mtimeMs === this.mtimeMs) return
    this.mtimeMs = st.mtimeMs
    this.users = new Map(readStore(this.path).users.map(u => [u.name.toUpperCase(), Buffer.from(u.ntHash, 'hex')]))
  }

  lookup(user: string): Buffer | null {
    try {
      this.reload()
    } catch {
      // keep the last good copy if the file is briefly missing or mid-replace
    }
    return this.users.get(user.toUpperCase()) ?? null
  }
}
