/** Shared helpers for the NBD tests: temp dirs, tool detection, a served raw image, child processes. */
import { execFile, execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { openRaw } from '../../src/formats/raw/raw-disk.js'
import type { VirtualDisk } from '../../src/formats/virtual-disk.js'
import { NbdServer, type NbdExport, type NbdServerOptions } from '../../src/nbd/server.js'

export const MiB = 1024 * 1024

export interface Teardown {
  teardown(fn: () => void | Promise<void>): void
}

export function tempDir(t: Teardown): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hvcbt-nbd-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

const toolCache = new Map<string, boolean>()
/** Whether `tool` runs (`tool --version`). */
export function hasTool(tool: string): boolean {
  if (!toolCache.has(tool)) {
    try {
      execFileSync(tool, ['--version'], { stdio: 'ignore' })
      toolCache.set(tool, true)
    } catch {
      toolCache.set(tool, false)
    }
  }
  return toolCache.get(tool)!
}

/** First of `tools` that is missing, as a skip reason, or false. */
export function missing(...tools: string[]): string | false {
  const m = tools.find(x => !hasTool(x))
  return m ? `${m} not installed` : false
}

/** Run a command; resolves with stdout, rejects with stderr in the message. */
export function run(cmd: string, args: string[], timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 64 * MiB }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${err.message}\n${stderr}`))
      else resolve(stdout)
    })
  })
}

/** A sparse file of `size` bytes. */
export function sparseFile(dir: string, name: string, size: number): string {
  const file = path.join(dir, name)
  fs.writeFileSync(file, '')
  fs.truncateSync(file, size)
  return file
}

export interface Served {
  server: NbdServer
  disk: VirtualDisk
  port: number
  uri: string
}

/** Serve `file` as a raw disk under `name` on a free loopback port; stopped at teardown. */
export async function serveRaw(
  t: Teardown,
  file: string,
  opts: { name?: string; readOnly?: boolean; server?: NbdServerOptions; export?: Partial<NbdExport> } = {},
): Promise<Served> {
  const disk = await openRaw(file, { readOnly: opts.readOnly })
  const name = opts.name ?? 'disk'
  const server = new NbdServer([{ name, disk, ...opts.export }], opts.server)
  const addr = await server.listen(0, '127.0.0.1')
  t.teardown(async () => {
    await server.close()
    await disk.close()
  })
  return { server, disk, port: addr.port, uri: `nbd://127.0.0.1:${addr.port}/${name}` }
}

export { xorshift32 as rng } from '../helpers/prng.js'
