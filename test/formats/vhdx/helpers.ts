/** Shared helpers for the VHDX tests: temp folders and the real tools (qemu-img, qemu-io, vhdiinfo). */
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export function hasTool(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`]).status === 0
}

export const haveQemu = hasTool('qemu-img') && hasTool('qemu-io')
export const haveVhdi = hasTool('vhdiinfo')

/** A temp folder removed when the test ends. */
export function tempDir(t: { teardown(fn: () => void): void }): string {
  const d = mkdtempSync(join(tmpdir(), 'hvcbt-vhdx-'))
  t.teardown(() => rmSync(d, { recursive: true, force: true }))
  return d
}

export function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
}

/** Exit status and output of a command that may fail. */
export function runStatus(cmd: string, args: string[]): { status: number; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8' })
  return { status: r.status ?? -1, out: `${r.stdout}${r.stderr}` }
}

export function qemuInfo(path: string): { 'virtual-size': number; 'cluster-size'?: number } {
  return JSON.parse(run('qemu-img', ['info', '-f', 'vhdx', '--output=json', path]))
}

/** Write pattern bytes with qemu-io: writes = [offset, length, byte]. */
export function qemuWrite(path: string, writes: Array<[number, number, number]>): void {
  const args = ['-f', 'vhdx']
  for (const [off, len, b] of writes) args.push('-c', `write -P 0x${b.toString(16)} ${off} ${len}`)
  args.push(path)
  run('qemu-io', args)
}

export { xorshift32 as rng } from '../../helpers/prng.js'
