/**
 * The NBD server: a TCP listener, a set of exports, and the connections to them.
 *
 * The server knows only VirtualDisk (through NbdExport); it does not own the disks: close() stops listening, lets
 * every connection drain (in-flight requests answered, then the socket ended; handshakes still in progress are
 * closed) and resolves; closing the disks is the caller's job. Connections are independent: one client's protocol
 * violation closes only its own connection.
 */
import net, { type AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import { BufferPool } from './buffer-pool.js'
import { Connection } from './connection.js'
import { resolveOptions, type NbdExport, type NbdServerOptions, type ResolvedOptions } from './nbd-export.js'

export type { NbdExport, NbdServerOptions } from './nbd-export.js'

export class NbdServer {
  readonly opts: ResolvedOptions
  private readonly exports: NbdExport[] = []
  private readonly connections = new Set<Connection>()
  private readonly pool = new BufferPool()
  private server: net.Server | null = null
  private stopping: Promise<void> | null = null
  shuttingDown = false

  constructor(exports: NbdExport[], options: NbdServerOptions = {}) {
    this.opts = resolveOptions(options)
    for (const e of exports) this.addExport(e)
  }

  addExport(exp: NbdExport): void {
    if (Buffer.byteLength(exp.name) > 4096) throw new RangeError(`export name is longer than 4096 bytes`)
    if (this.exports.some(e => e.name === exp.name)) throw new RangeError(`export '${exp.name}' already exists`)
    this.exports.push(exp)
  }

  /** The export named `name`; '' is the first export (the default export). */
  findExport(name: string): NbdExport | undefined {
    return this.exports.find(e => e.name === name) ?? (name === '' ? this.exports[0] : undefined)
  }

  listExports(): NbdExport[] {
    return [...this.exports]
  }

  /** Number of open connections. */
  get connectionCount(): number {
    return this.connections.size
  }

  /** Start listening; resolves with the bound address (port 0 picks a free port). */
  listen(port: number, host = '127.0.0.1'): Promise<AddressInfo> {
    if (this.server) throw new Error('NBD server is already listening')
    const server = net.createServer({ noDelay: true }, socket => this.accept(socket))
    this.server = server
    return new Promise((resolve, reject) => {
      server.once('error', reject)
      server.listen({ port, host }, () => {
        server.off('error', reject)
        server.on('error', err => this.opts.log?.('error', `nbd listener: ${err.message}`))
        resolve(server.address() as AddressInfo)
      })
    })
  }

  /** Serve one already-connected stream (used by tests and for sockets accepted elsewhere). */
  handle(stream: Duplex, peer = 'stream'): Connection {
    const self = this // eslint-disable-line @typescript-eslint/no-this-alias -- the getter below needs the server
    const conn = new Connection(stream, {
      opts: this.opts,
      pool: this.pool,
      findExport: n => this.findExport(n),
      listExports: () => this.listExports(),
      get shuttingDown() {
        return self.shuttingDown
      },
      closed: c => {
        this.connections.delete(c)
        this.opts.log?.('debug', `nbd ${c.peer}: closed`)
      },
    }, peer)
    this.connections.add(conn)
    return conn
  }

  /** Stop accepting, drain every connection, resolve when all are closed. Idempotent. */
  close(): Promise<void> {
    this.stopping ??= (async () => {
      this.shuttingDown = true
      const listening = this.server
      const stopped = listening
        ? new Promise<void>(resolve => listening.close(() => resolve()))
        : Promise.resolve()
      await Promise.all([...this.connections].map(c => c.shutdown()))
      await stopped
    })()
    return this.stopping
  }

  private accept(socket: net.Socket): void {
    const peer = `${socket.remoteAddress}:${socket.remotePort}`
    if (this.shuttingDown) {
      socket.destroy()
      return
    }
    socket.setNoDelay(true)
    this.opts.log?.('debug', `nbd ${peer}: connected`)
    this.handle(socket, peer)
  }
}
