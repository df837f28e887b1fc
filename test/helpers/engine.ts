/**
 * Test helpers that run the real engine as a separate process: the unbundled build (dist/main.js, made by
 * `npm run build:ts`, which test/run-all.sh does first) or, with HVCBT_TEST_ENGINE set, any executable such as
 * the single executable build/out/hvcbt.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { existsSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')

/** argv prefix that starts the engine. */
export function engineCommand(): string[] {
  const exe = process.env.HVCBT_TEST_ENGINE
  if (exe) return exe.endsWith('.js') ? [process.execPath, exe] : [exe]
  const main = path.join(repoRoot, 'dist', 'main.js')
  if (!existsSync(main)) throw new Error(`${main} is missing: run 'npm run build:ts' first`)
  return [process.execPath, main]
}

export interface CliResult {
  status: number | null
  stdout: string
  stderr: string
}

/** Runs `hvcbt ...args` to completion. */
export function runHvcbt(args: string[], opts: { input?: string | Buffer; cwd?: string; env?: NodeJS.ProcessEnv } = {}): CliResult {
  const [cmd, ...pre] = engineCommand()
  const r = spawnSync(cmd!, [...pre, ...args], {
    input: opts.input,
    cwd: opts.cwd,
    env: { ...process.env, NODE_OPTIONS: '', ...opts.env },
    encoding: 'utf8',
    timeout: 60_000,
    maxBuffer: 64 * 1024 * 1024,
  })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

export interface RpcMessage {
  jsonrpc: '2.0'
  id?: string | number | null
  method?: string
  params?: Record<string, unknown>
  result?: unknown
  error?: { code: number; message: string; data?: Record<string, unknown> }
}

/** A running `hvcbt rpc` with line-level access. */
export class RpcProcess {
  readonly child: ChildProcessWithoutNullStreams
  readonly messages: RpcMessage[] = []
  stderr = ''
  private buf = ''
  private waiters: Array<() => void> = []
  private nextId = 1

  constructor() {
    const [cmd, ...pre] = engineCommand()
    this.child = spawn(cmd!, [...pre, 'rpc'], { env: { ...process.env, NODE_OPTIONS: '' } })
    this.child.stdout.setEncoding('utf8')
    this.child.stdout.on('data', (d: string) => {
      this.buf += d
      let nl: number
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, nl)
        this.buf = this.buf.slice(nl + 1)
        // stdout must carry protocol only: a non-JSON line throws here and fails the test
        this.messages.push(JSON.parse(line) as RpcMessage)
      }
      for (const w of this.waiters.splice(0)) w()
    })
    this.child.stderr.on('data', (d: Buffer) => (this.stderr += d.toString()))
  }

  sendRaw(text: string): void {
    this.child.stdin.write(text)
  }

  /** Waits for a message matching `pred`, failing after `ms`. */
  async waitFor(pred: (m: RpcMessage) => boolean, ms = 20_000): Promise<RpcMessage> {
    const deadline = Date.now() + ms
    for (;;) {
      const found = this.messages.find(pred)
      if (found) return found
      if (this.child.exitCode !== null) throw new Error(`engine exited (${this.child.exitCode}): ${this.stderr}`)
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`timed out waiting for a message; got ${JSON.stringify(this.messages)}`)
      await new Promise<void>(resolve => {
        const t = setTimeout(resolve, Math.min(left, 200))
        this.waiters.push(() => {
          clearTimeout(t)
          resolve()
        })
      })
    }
  }

  /** Sends a request and resolves to its response (result or error). */
  async call(method: string, params?: Record<string, unknown>): Promise<RpcMessage> {
    const id = this.nextId++
    this.sendRaw(JSON.stringify({ jsonrpc: '2.0', id, method, ...(params ? { params } : {}) }) + '\n')
    return this.waitFor(m => m.id === id && (m.result !== undefined || m.error !== undefined))
  }

  async close(): Promise<number | null> {
    this.child.stdin.end()
    if (this.child.exitCode !== null) return this.child.exitCode
    return new Promise(resolve => this.child.on('exit', code => resolve(code)))
  }
}

/** Absolute path of a tool, or null (tests skip with the reason; CI installs every tool). */
export function which(tool: string): string | null {
  const r = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' })
  return r.status === 0 ? r.stdout.trim() : null
}
