/**
 * One client connection: greeting, option haggling (Handshake), then transmission (Transmission), over any
 * duplex byte stream (a TCP socket in production; a scripted stream in the framing tests).
 *
 * Design:
 * - Bytes from the stream go into a ByteQueue; pump() runs the current phase's parser until it needs more bytes,
 *   is blocked by a limit, or the connection ends. Only one pump runs at a time; data arriving while a handshake
 *   option is being answered (async) is picked up by the running loop.
 * - Reading is paused while the transmission phase is blocked by its in-flight limits, while more than
 *   maxQueuedReplyBytes of replies wait in the stream (a client that sends requests but never reads replies), and
 *   while the queue holds more than a maximum payload plus one read's worth of bytes. So memory per connection is
 *   bounded whatever the client sends.
 * - A protocol violation (bad magic, unknown client flags, an over-long EXPORT_NAME, a handshake that does not end
 *   in time) closes the connection without touching other connections. NBD_CMD_DISC and shutdown() drain: no new
 *   requests are started, in-flight ones are answered, then the stream is ended.
 */
import type { Duplex } from 'node:stream'
import { ProtocolError } from '../engine/errors.js'
import type { BufferPool } from './buffer-pool.js'
import { ByteQueue } from './byte-queue.js'
import { Handshake, type HandshakeHost } from './handshake.js'
import type { NbdExport, ResolvedOptions } from './nbd-export.js'
import {
  CLIENT_FLAGS_BYTES,
  KNOWN_CLIENT_FLAGS,
  NBD_FLAG_C_FIXED_NEWSTYLE,
  NBD_FLAG_C_NO_ZEROES,
  NBD_FLAG_FIXED_NEWSTYLE,
  NBD_FLAG_NO_ZEROES,
  NBD_MAGIC,
  NBD_OPTS_MAGIC,
} from './protocol.js'
import { Transmission } from './transmission.js'

/** How long a drain (DISC or shutdown) waits for in-flight requests before destroying the stream. */
const DRAIN_TIMEOUT_MS = 30_000
/** Extra buffered bytes allowed beyond one maximum payload before reading pauses. */
const QUEUE_SLACK_BYTES = 1024 * 1024

export interface ConnectionHost extends Omit<HandshakeHost, 'send'> {
  opts: ResolvedOptions
  /** Reply buffers shared by the server's connections. */
  pool: BufferPool
  /** The connection is gone (stream closed); remove it from the server's set. */
  closed(conn: Connection): void
}

type Phase = 'flags' | 'options' | 'transmission' | 'draining' | 'closed'

export class Connection {
  private readonly queue = new ByteQueue()
  private phase: Phase = 'flags'
  private handshake: Handshake
  private transmission: Transmission | null = null
  private pumping = false
  private paused = false
  private handshakeTimer: NodeJS.Timeout | null
  private drainTimer: NodeJS.Timeout | null = null
  private readonly closedPromise: Promise<void>
  /** Export chosen with NBD_OPT_GO / EXPORT_NAME (for logs and stats). */
  export: NbdExport | null = null

  constructor(
    private readonly stream: Duplex,
    private readonly host: ConnectionHost,
    readonly peer: string,
  ) {
    const opts = host.opts
    this.handshake = new Handshake({
      findExport: n => host.findExport(n),
      listExports: () => host.listExports(),
      get shuttingDown() {
        return host.shuttingDown
      },
      send: b => this.send([b]),
    }, opts)
    this.closedPromise = new Promise(resolve => stream.once('close', resolve))
    stream.on('data', (chunk: Buffer) => {
      if (this.phase === 'draining' || this.phase === 'closed') return // nothing more is read after DISC/ABORT
      this.queue.push(chunk)
      void this.pump()
    })
    stream.on('drain', () => void this.pump())
    stream.on('error', err => this.log('debug', `stream error: ${err.message}`))
    stream.on('end', () => (this.phase === 'transmission' ? this.startDrain('eof') : this.phase !== 'draining' && this.destroy()))
    // once our last bytes are flushed after end(), close both directions: the client has every reply
    stream.once('finish', () => this.destroy())
    stream.once('close', () => {
      this.phase = 'closed'
      this.clearTimers()
      this.queue.clear()
      host.closed(this)
    })
    this.handshakeTimer = setTimeout(() => {
      this.log('warning', `handshake did not finish within ${opts.handshakeTimeoutMs} ms`)
      this.destroy()
    }, opts.handshakeTimeoutMs)
    this.handshakeTimer.unref?.()
    // greeting: NBDMAGIC, IHAVEOPT, handshake flags
    const g = Buffer.alloc(18)
    g.writeBigUInt64BE(NBD_MAGIC, 0)
    g.writeBigUInt64BE(NBD_OPTS_MAGIC, 8)
    g.writeUInt16BE(NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES, 16)
    this.send([g])
  }

  /** Resolves when the stream has closed. */
  get done(): Promise<void> {
    return this.closedPromise
  }

  /** Stop taking requests, answer those in flight, then end the stream (server shutdown). */
  shutdown(): Promise<void> {
    if (this.phase === 'flags' || this.phase === 'options') this.destroy()
    else if (this.phase === 'transmission') this.startDrain('shutdown')
    return this.closedPromise
  }

  private async pump(): Promise<void> {
    if (this.pumping) return
    this.pumping = true
    try {
      for (;;) {
        if (this.phase === 'flags') {
          if (this.queue.length < CLIENT_FLAGS_BYTES) break
          const flags = this.queue.take(CLIENT_FLAGS_BYTES).readUInt32BE(0)
          if (flags & ~KNOWN_CLIENT_FLAGS) throw new ProtocolError('nbd', `unknown client flags 0x${flags.toString(16)}`)
          if (!(flags & NBD_FLAG_C_FIXED_NEWSTYLE)) throw new ProtocolError('nbd', 'client does not speak fixed newstyle')
          this.handshake.noZeroes = (flags & NBD_FLAG_C_NO_ZEROES) !== 0
          this.phase = 'options'
        } else if (this.phase === 'options') {
          const s = await this.handshake.step(this.queue)
          if ((this.phase as Phase) === 'closed') break
          if (s.kind === 'need-more') break
          if (s.kind === 'abort') {
            this.stream.end()
            this.phase = 'draining'
            break
          }
          if (s.kind === 'go') {
            this.clearTimers()
            this.export = s.export
            this.transmission = new Transmission(s.export, s.structured, s.contexts, this.host.opts, {
              send: (b, done) => this.send(b, done),
              requestDone: () => this.requestDone(),
              log: (level, m) => this.log(level, m),
            }, this.host.pool)
            this.phase = 'transmission'
            if (this.host.shuttingDown) this.startDrain('shutdown')
          }
        } else if (this.phase === 'transmission') {
          if (this.stream.writableLength > this.host.opts.maxQueuedReplyBytes) break // resumes on 'drain'
          const s = this.transmission!.step(this.queue)
          if (s === 'need-more' || s === 'blocked') break
          if (s === 'disc') this.startDrain('disc')
        } else {
          break
        }
      }
    } catch (err) {
      this.log('warning', err instanceof ProtocolError ? err.message : `internal error: ${(err as Error).message}`)
      this.destroy()
    } finally {
      this.pumping = false
    }
    this.updateFlow()
  }

  /** Pause the stream while a limit holds, resume when it no longer does. */
  private updateFlow(): void {
    if (this.phase === 'closed') return
    if (this.phase === 'draining') {
      if (this.paused) this.stream.resume() // keep reading (and dropping) so the peer's close is seen
      this.paused = false
      return
    }
    const t = this.transmission
    const blocked = (t !== null && t.inFlight >= this.host.opts.maxInFlightRequests) ||
      (t !== null && t.inFlightBytes >= this.host.opts.maxInFlightBytes) ||
      this.stream.writableLength > this.host.opts.maxQueuedReplyBytes ||
      this.queue.length > this.host.opts.maxPayloadBytes + QUEUE_SLACK_BYTES
    if (blocked && !this.paused) {
      this.paused = true
      this.stream.pause()
    } else if (!blocked && this.paused) {
      this.paused = false
      this.stream.resume()
    }
  }

  private requestDone(): void {
    if (this.phase === 'draining') {
      if (this.transmission!.inFlight === 0) this.stream.end()
      return
    }
    void this.pump()
  }

  /** Stop reading requests; `shutdown`: requests already received are answered ESHUTDOWN, as the spec asks. */
  private startDrain(reason: 'disc' | 'eof' | 'shutdown'): void {
    if (this.phase === 'draining' || this.phase === 'closed') return
    this.phase = 'draining'
    const t = this.transmission
    if (t) {
      t.shuttingDown = true
      try {
        while (reason === 'shutdown' && t.step(this.queue, true) === 'continue') {
          // each parsed request fails at once with ESHUTDOWN
        }
      } catch {
        // a request with a bad magic: nothing after it can be answered
      }
    }
    this.queue.clear()
    if (!this.transmission || this.transmission.inFlight === 0) this.stream.end()
    this.drainTimer = setTimeout(() => this.destroy(), DRAIN_TIMEOUT_MS)
    this.drainTimer.unref?.()
  }

  private send(buffers: Buffer[], done?: () => void): void {
    if (this.phase === 'closed' || this.stream.destroyed || this.stream.writableEnded) {
      done?.()
      return
    }
    const last = buffers.length - 1
    if (last > 0) this.stream.cork()
    buffers.forEach((b, i) => this.stream.write(b, i === last && done ? () => done() : undefined))
    if (last > 0) this.stream.uncork()
  }

  private destroy(): void {
    if (this.stream.destroyed) return
    this.stream.destroy()
  }

  private clearTimers(): void {
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer)
    if (this.drainTimer) clearTimeout(this.drainTimer)
    this.handshakeTimer = null
    this.drainTimer = null
  }

  private log(level: 'error' | 'warning' | 'info' | 'debug', message: string): void {
    this.host.opts.log?.(level, `nbd ${this.peer}: ${message}`)
  }
}
