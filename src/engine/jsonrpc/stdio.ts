/**
 * `hvcbt rpc`: JSON-RPC over the process's stdin/stdout. stdout carries protocol only — console output is sent to
 * stderr — and writes respect back-pressure. End of stdin or SIGTERM stops services and exits once every running
 * request has answered.
 */
import { LineReader } from './line-reader.js'
import { RpcConnection } from './server.js'
import type { AnyMethod } from '../method.js'
import type { LogLevel } from '../method.js'

export interface StdioOptions {
  methods: (name: string) => AnyMethod | undefined
  /** Called after the connection drained, before exit (stop services). */
  onClose: () => Promise<void>
  /** Receives a function that logs through `$/log`, for engine-wide one-time warnings. */
  onLogger?: (log: (level: LogLevel, message: string) => void) => void
}

export function serveStdio(opts: StdioOptions): Promise<void> {
  // Anything printed by a library must not corrupt the protocol stream.
  console.log = console.error
  console.info = console.error
  const out = process.stdout
  const queue: string[] = []
  let draining = false
  const flush = () => {
    while (queue.length > 0) {
      const ok = out.write(queue.shift()!)
      if (!ok) {
        draining = true
        out.once('drain', () => {
          draining = false
          flush()
        })
        return
      }
    }
  }
  const send = (m: object) => {
    queue.push(JSON.stringify(m) + '\n')
    if (!draining) flush()
  }
  const conn = new RpcConnection(opts.methods, send)
  opts.onLogger?.((level, message) => conn.log(level, message))
  const reader = new LineReader(
    line => conn.handleLine(line),
    bytes => conn.handleOverlong(bytes),
  )
  return new Promise(resolve => {
    let ending = false
    const end = async (abort: boolean) => {
      if (ending) return
      ending = true
      reader.end()
      await conn.shutdown(abort)
      await opts.onClose()
      if (queue.length > 0 || draining) await new Promise<void>(r => out.write('', () => r()))
      resolve()
    }
    process.stdin.on('data', (c: Buffer) => reader.push(c))
    process.stdin.on('end', () => void end(false))
    process.stdin.on('error', () => void end(true))
    process.once('SIGTERM', () => void end(true))
    process.once('SIGINT', () => void end(true))
  })
}
