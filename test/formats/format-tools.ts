/**
 * Shared helpers for the format tests: temporary folders removed at teardown, and the external tools (qemu-img,
 * qemu-io, vhdiinfo, vhdimount) run synchronously with their output captured. A test that needs a missing tool
 * skips itself with `skip: missing('qemu-img')`.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const found = new Map<string, boolean>()

export function have(tool: string): boolean {
  if (!found.has(tool)) found.set(tool, spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0)
  return found.get(tool)!
}

/** `false` when every tool is installed, else the skip reason naming the first missing one. */
export function missing(...tools: string[]): string | false {
  for (const t of tools) if (!have(t)) return `${t} not installed`
  return false
}

/** A fresh temporary folder, removed when the test `t` ends. */
export function tempDir(t: { teardown(fn: () => void): void }, prefix = 'hvcbt-fmt-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Run a tool, returning stdout; throws with stderr on a non-zero exit. */
export function run(tool: string, args: string[]): string {
  return execFileSync(tool, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
}

/** Run a tool and return its exit status and output without throwing. */
export function runStatus(tool: string, args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(tool, args, { encoding: 'utf8' })
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr }
}

/** qemu-img info as JSON. */
export function qemuInfo(path: string, format: string): Record<string, unknown> {
  return JSON.parse(run('qemu-img', ['info', '-f', format, '--output=json', path])) as Record<string, unknown>
}

/** vhdiinfo's "Name : value" lines as a map. */
export function vhdiInfo(path: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const line of run('vhdiinfo', [path]).split('\n')) {
    const m = /^\s*([^:]+?)\s*:\s*(.*)$/.exec(line)
    if (m) out[m[1]!] = m[2]!
  }
  return out
}

export { xorshift32 as prng } from '../helpers/prng.js'

/**
 * Mount `image` with vhdimount (FUSE) and return the bytes of layer `layer` (vhdi1 = the base; the highest number
 * is the leaf), or null when FUSE cannot mount here. Always unmounted before returning.
 */
export async function readThroughVhdimount(image: string, mnt: string, layer: number): Promise<Buffer | null> {
  mkdirSync(mnt, { recursive: true })
  const child = spawn('vhdimount', [image, mnt], { stdio: 'ignore' })
  const file = join(mnt, `vhdi${layer}`)
  try {
    for (let i = 0; i < 50 && !existsSync(file); i++) await new Promise(r => setTimeout(r, 100))
    if (!existsSync(file)) return null
    return readFileSync(file)
  } finally {
    spawnSync('fusermount', ['-u', mnt])
    child.kill()
  }
}
