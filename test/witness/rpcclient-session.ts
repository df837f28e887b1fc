/**
 * Drives one interactive `rpcclient` session (Samba's client) so context handles survive between commands: each
 * command is followed by an unknown command whose error line marks the end of its output.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process'

export const haveRpcclient = spawnSync('rpcclient', ['--version']).status === 0

export class RpcclientSession {
  private readonly proc: ChildProcessWithoutNullStreams
  private buf = ''
  private waiter: (() => void) | null = null
  private seq = 0
  exited = false

  constructor(binding: string, args: string[] = ['-U%', '-N']) {
    this.proc = spawn('stdbuf', ['-oL', '-eL', 'rpcclient', ...args, binding], { stdio: 'pipe' })
    const on = (d: Buffer) => {
      this.buf += d.toString()
      this.waiter?.()
    }
    this.proc.stdout.on('data', on)
    this.proc.stderr.on('data', on)
    this.proc.on('exit', () => {
      this.exited = true
      this.waiter?.()
    })
  }

  /** Run one command; resolves with its output lines (without the marker). */
  async cmd(line: string, timeoutMs = 15000): Promise<string> {
    const marker = `zzmark${++this.seq}`
    // rpcclient handles one line per read(): write the marker separately and poke with empty lines until seen.
    this.proc.stdin.write(`${line}\n`)
    setTimeout(() => this.proc.stdin.write(`${marker}\n`), 50)
    const deadline = Date.now() + timeoutMs
    let poke = Date.now() + 150
    for (;;) {
      if (Date.now() > poke) {
        this.proc.stdin.write('\n')
        poke = Date.now() + 150
      }
      const at = this.buf.indexOf(marker)
      if (at >= 0 && this.buf.indexOf('\n', at) >= 0) {
        // stdout and stderr are two pipes: the command's last lines on the other one may arrive after the marker
        // (seen once: "no more entries" after it). Nothing else is sent until this returns, so wait and take all.
        await new Promise(r => setTimeout(r, 100))
        const out = this.buf
        this.buf = ''
        return out.split('\n').filter(l => !/command not found/.test(l) && !l.includes(marker)).join('\n').trim()
      }
      if (this.exited) throw new Error(`rpcclient exited; output: ${this.buf}`)
      if (Date.now() > deadline) throw new Error(`rpcclient: no answer to ${line}; output so far: ${this.buf}`)
      await new Promise<void>(r => {
        const t = setTimeout(r, 200)
        this.waiter = () => {
          clearTimeout(t)
          r()
        }
      })
    }
  }

  /** Start a command that will block (AsyncNotify); `result()` later collects its output. */
  start(line: string, timeoutMs = 15000): { result(): Promise<string> } {
    const p = this.cmd(line, timeoutMs)
    p.catch(() => {})
    return { result: () => p }
  }

  close(): void {
    this.proc.stdin.end('quit\n')
    setTimeout(() => this.proc.kill(), 2000).unref()
  }
}
