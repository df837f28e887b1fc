/**
 * A real etcd server for tests (Debian's etcd-server), on loopback ports chosen free at start, with its data in a
 * temporary folder. It can be stopped and started again on the same ports and data (an etcd outage).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'

export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen(0, host, () => {
      const port = (s.address() as net.AddressInfo).port
      s.close(() => resolve(port))
    })
  })
}

export class EtcdServer {
  private proc: ChildProcess | null = null
  private log = ''
  readonly dir = mkdtempSync(path.join(tmpdir(), 'hvcbt-etcd-'))

  private constructor(
    readonly clientPort: number,
    readonly peerPort: number,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.clientPort}`
  }

  static async start(): Promise<EtcdServer> {
    const e = new EtcdServer(await freePort(), await freePort())
    await e.resume()
    return e
  }

  /** Starts (or restarts) the server and waits until it accepts connections. */
  async resume(): Promise<void> {
    const peer = `http://127.0.0.1:${this.peerPort}`
    this.proc = spawn(
      'etcd',
      [
        '--name', 'hvcbt-test',
        '--data-dir', path.join(this.dir, 'data'),
        '--listen-client-urls', this.url,
        '--advertise-client-urls', this.url,
        '--listen-peer-urls', peer,
        '--initial-advertise-peer-urls', peer,
        '--initial-cluster', `hvcbt-test=${peer}`,
        '--log-level', 'warn',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    )
    this.proc.stderr!.on('data', (d: Buffer) => (this.log = (this.log + d.toString()).slice(-4000)))
    const deadline = Date.now() + 15_000
    while (Date.now() < deadline) {
      if (this.proc.exitCode !== null) throw new Error(`etcd exited: ${this.log}`)
      const r = await fetch(`${this.url}/health`).catch(() => null)
      if (r?.ok && ((await r.json()) as { health: string }).health === 'true') return
      await new Promise(r => setTimeout(r, 100))
    }
    throw new Error(`etcd did not become healthy: ${this.log}`)
  }

  /** Stops the server (SIGTERM), keeping its data for resume(). */
  async pause(): Promise<void> {
    const p = this.proc
    if (!p || p.exitCode !== null) return
    const exited = new Promise(r => p.once('exit', r))
    p.kill('SIGTERM')
    await exited
  }

  async stop(): Promise<void> {
    await this.pause()
    rmSync(this.dir, { recursive: true, force: true })
  }
}
