/**
 * JSON-RPC 2.0 connection: parses lines, validates requests, dispatches to the method registry, and sends exactly
 * one response per request (none for notifications). Requests run concurrently and are answered as they finish;
 * each gets an AbortSignal that `$/cancelRequest` or shutdown aborts. Handlers report through `$/progress`
 * (throttled) and `$/log`. Nothing a peer sends can crash the connection: every failure becomes an error response.
 */
import type { AnyMethod, CallContext, LogLevel } from '../method.js'
import { AppErrorCode, toEngineError } from '../errors.js'
import { validateParams } from '../validate.js'
import {
  CancelNotification,
  ErrorCodes,
  LogNotification,
  ProgressNotification,
  type ErrorObject,
  type Id,
  type Response,
} from './protocol.js'

export type Send = (message: object) => void

const progressIntervalMs = 100

export class RpcConnection {
  private readonly pending = new Map<Id, AbortController>()
  private readonly running = new Set<Promise<unknown>>()
  private closed = false

  constructor(
    private readonly methods: (name: string) => AnyMethod | undefined,
    private readonly send: Send,
  ) {}

  /** One framed message (a line). */
  handleLine(line: string): void {
    let msg: unknown
    try {
      msg = JSON.parse(line)
    } catch (e) {
      this.send(errorResponse(null, ErrorCodes.ParseError, `parse error: ${(e as Error).message}`))
      return
    }
    if (Array.isArray(msg)) {
      this.handleBatch(msg)
      return
    }
    const p = this.handleMessage(msg).then(r => r && this.send(r))
    this.track(p)
  }

  /** The transport dropped a line that was too long to buffer. */
  handleOverlong(bytes: number): void {
    this.send(errorResponse(null, ErrorCodes.InvalidRequest, `message of ${bytes} bytes exceeds the size limit`))
  }

  /** Log outside any request (e.g. a one-time warning from a platform layer). */
  log(level: LogLevel, message: string): void {
    if (!this.closed) this.send({ jsonrpc: '2.0', method: LogNotification, params: { level, message } })
  }

  /**
   * Waits for every running request to answer; with `abort`, cancels them first (SIGTERM). Without it (the client
   * closed its end after sending), requests finish normally: `echo '{...}' | hvcbt rpc` gets its answer.
   */
  async shutdown(abort: boolean): Promise<void> {
    if (abort) for (const ac of this.pending.values()) ac.abort(new Error('the engine is shutting down'))
    while (this.running.size > 0) await Promise.allSettled([...this.running])
    this.closed = true
  }

  private track(p: Promise<unknown>): void {
    this.running.add(p)
    void p.finally(() => this.running.delete(p))
  }

  private handleBatch(batch: unknown[]): void {
    if (batch.length === 0) {
      this.send(errorResponse(null, ErrorCodes.InvalidRequest, 'empty batch'))
      return
    }
    const p = Promise.all(batch.map(m => this.handleMessage(m))).then(rs => {
      const out = rs.filter((r): r is Response => r !== undefined)
      if (out.length > 0) this.send(out)
    })
    this.track(p)
  }

  private async handleMessage(msg: unknown): Promise<Response | undefined> {
    if (typeof msg !== 'object' || msg === null) {
      return errorResponse(null, ErrorCodes.InvalidRequest, 'a request must be a JSON object')
    }
    const m = msg as Record<string, unknown>
    const hasId = 'id' in m
    const id = m.id as Id
    if (hasId && !(typeof id === 'string' || typeof id === 'number' || id === null)) {
      return errorResponse(null, ErrorCodes.InvalidRequest, 'id must be a string, a number or null')
    }
    if (m.jsonrpc !== '2.0') return errorResponse(hasId ? id : null, ErrorCodes.InvalidRequest, 'jsonrpc must be "2.0"')
    if (typeof m.method !== 'string') {
      return errorResponse(hasId ? id : null, ErrorCodes.InvalidRequest, 'method must be a string')
    }
    if (m.params !== undefined && (typeof m.params !== 'object' || m.params === null || Array.isArray(m.params))) {
      return errorResponse(hasId ? id : null, ErrorCodes.InvalidParams, 'params must be an object (by-name parameters)')
    }
    if (m.method === CancelNotification) {
      const target = (m.params as { id?: Id } | undefined)?.id
      this.pending.get(target ?? null)?.abort(new Error('cancelled by the client'))
      return undefined
    }
    const method = this.methods(m.method)
    if (!method) {
      return hasId ? errorResponse(id, ErrorCodes.MethodNotFound, `method not found: ${m.method}`) : undefined
    }
    if (hasId && this.pending.has(id)) {
      return errorResponse(id, ErrorCodes.InvalidRequest, `request id ${JSON.stringify(id)} is already in use`)
    }
    const ac = new AbortController()
    if (hasId) this.pending.set(id, ac)
    try {
      const params = validateParams(method, m.params)
      const result = await method.handler(params, this.context(hasId ? id : undefined, ac.signal))
      return hasId ? { jsonrpc: '2.0', id, result: result ?? null } : undefined
    } catch (err) {
      if (!hasId) return undefined
      const e = ac.signal.aborted && !isEngineCategorised(err) ? cancelled(ac.signal) : toEngineError(err)
      return errorResponse(id, e.code, e.message, { category: e.category, ...e.data })
    } finally {
      if (hasId) this.pending.delete(id)
    }
  }

  private context(id: Id | undefined, signal: AbortSignal): CallContext {
    let last = 0
    return {
      signal,
      interactive: false,
      progress: (done, total, message) => {
        if (id === undefined || this.closed) return
        const now = Date.now()
        if (done < total && now - last < progressIntervalMs) return
        last = now
        this.send({ jsonrpc: '2.0', method: ProgressNotification, params: { id, done, total, ...(message ? { message } : {}) } })
      },
      log: (level, message) => {
        if (!this.closed) this.send({ jsonrpc: '2.0', method: LogNotification, params: { level, message, ...(id !== undefined ? { id } : {}) } })
      },
    }
  }
}

function isEngineCategorised(err: unknown): boolean {
  return typeof err === 'object' && err !== null && 'category' in err
}

function cancelled(signal: AbortSignal) {
  const reason = signal.reason instanceof Error ? signal.reason.message : 'cancelled'
  return { code: AppErrorCode.Cancelled, message: reason, category: 'OperationStopped', data: {} }
}

export function errorResponse(id: Id, code: number, message: string, data?: unknown): Response {
  const error: ErrorObject = { code, message }
  if (data !== undefined) error.data = data
  return { jsonrpc: '2.0', id, error }
}
