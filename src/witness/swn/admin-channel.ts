/**
 * The witness service's admin channel: a Unix-domain socket (mode 0600 in a 0700 directory, so only its owner,
 * root for a system service, can connect) speaking newline-delimited JSON-RPC 2.0. `hvcbt witness clients /
 * move-client / node-state` connect to it to reach a running `hvcbt witness serve`.
 *
 * Kept inside the witness domain (no engine imports): requests are {jsonrpc, id, method, params}; answers carry
 * `result` or `error: {code, message}`. Lines are limited to 1 MiB.
 */
import { chmodSync, existsSync, mkdirSync, unlinkSync } from 'node:fs'
import { connect, createServer, type Server } from 'node:net'
import { dirname, join } from 'node:path'
import { tmpdir } from 'node:os'

export type AdminHandler = (params: Record<string, unknown>) => Promise<unknown> | unknown

const MaxLine = 1 << 20

/** Where admin sockets live: $HVCBT_RUN_DIR, /run/hvcbt for root, else a per-user folder under the temp dir. */
export function adminDir(): string {
  if (process.env.HVCBT_RUN_DIR) return process.env.HVCBT_RUN_DIR
  if (process.getuid?.() === 0) return '/run/hvcbt'
  return join(tmpdir(), `hvcbt-${process.getuid?.() ?? 'user'}`)
}

/** The admin socket of the witness service listening on `address`. */
export function adminSocketPath(address: string): string {
  return join(adminDir(), `witness-${address.replace(/[^0-9A-Za-z.]/g, '_')}.sock`)
}

async function inUse(path: string): Promise<boolean> {
  return new Promise(resolve => {
    const s = connect(path)
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => resolve(false))
  })
}

export class AdminChannel {
  private constructor(private readonly server: Server, readonly path: string) {}

  static async listen(path: string, handlers: Record<string, AdminHandler>): Promise<AdminChannel> {
    const dir = dirname(path)
    if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 })
    if (existsSync(path)) {
      if (await inUse(path)) throw new Error(`${path} is in use by another witness service`)
      unlinkSync(path)
    }
    const server = createServer(sock => {
      let buf = ''
      sock.setEncoding('utf8')
      sock.on('error', () => {})
      sock.on('data', (chunk: string) => {
        buf += chunk
        if (buf.length > MaxLine && !buf.includes('\n')) {
          sock.destroy()
          return
        }
        let nl: number
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl)
          buf = buf.slice(nl + 1)
          if (line.trim()) void answer(line).then(r => sock.write(JSON.stringify(r) + '\n'))
        }
      })
    })
    const answer = async (line: string): Promise<object> => {
      let req: { id?: unknown; method?: unknown; params?: unknown }
      try {
        req = JSON.parse(line)
      } catch {
        return { jsonrpc: '2.0', id: null, error: { code: -32700, message: 'parse error' } }
      }
      const id = req.id ?? null
      const h = typeof req.method === 'string' ? handlers[req.method] : undefined
      if (!h) return { jsonrpc: '2.0', id, error: { code: -32601, message: `unknown method ${String(req.method)}` } }
      try {
        const params = req.params && typeof req.params === 'object' ? (req.params as Record<string, unknown>) : {}
        return { jsonrpc: '2.0', id, result: (await h(params)) ?? null }
      } catch (e) {
        return { jsonrpc: '2.0', id, error: { code: -32000, message: (e as Error).message } }
      }
    }
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(path, () => resolve())
    })
    chmodSync(path, 0o600)
    return new AdminChannel(server, path)
  }

  async close(): Promise<void> {
    await new Promise<void>(r => this.server.close(() => r()))
    try {
      unlinkSync(this.path)
    } catch {
      // already gone
    }
  }
}

/** One call over an admin socket. */
export function adminCall(path: string, method: string, params: object, timeoutMs = 10000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const s = connect(path)
    let buf = ''
    const timer = setTimeout(() => {
      s.destroy()
      reject(new Error(`${path}: no answer to ${method}`))
    }, timeoutMs)
    s.setEncoding('utf8')
    s.once('connect', () => s.write(JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }) + '\n'))
    s.on('data', (d: string) => {
      buf += d
      const nl = buf.indexOf('\n')
      if (nl < 0) return
      clearTimeout(timer)
      s.destroy()
      const r = JSON.parse(buf.slice(0, nl)) as { result?: unknown; error?: { message: string } }
      if (r.error) reject(new Error(r.error.message))
      else resolve(r.result)
    })
    s.once('error', e => {
      clearTimeout(timer)
      const code = (e as NodeJS.ErrnoException).code
      reject(code === 'ENOENT' || code === 'ECONNREFUSED'
        ? new Error(`no witness service is running for that address (${path} not found)`)
        : code === 'EACCES' ? new Error(`${path}: permission denied (the admin channel is for root only)`) : e)
    })
  })
}
