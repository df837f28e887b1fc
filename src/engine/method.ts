/**
 * Method declarations: every capability of the engine is declared once, here-shaped, and that one declaration
 * serves the JSON-RPC channel (name, params/result schemas, handler), the CLI (command path, positionals, human
 * output) and the docs (rpc.discover's OpenRPC document).
 *
 * A method file under src/engine/methods/ wires one domain (formats, tracking, nbd, backup, witness) to the engine;
 * domains themselves never import from engine/ except errors.ts.
 */
import type { Static, TObject, TSchema } from 'typebox'

export type LogLevel = 'error' | 'warning' | 'info' | 'verbose' | 'debug'

/** What a handler may use while it runs. */
export interface CallContext {
  /** Report progress of a long operation (bytes or items). Rate-limited by the transport. */
  progress(done: number, total: number, message?: string): void
  /** Diagnostic message: `$/log` on JSON-RPC (Write-Verbose/Warning in PowerShell), stderr in the CLI. */
  log(level: LogLevel, message: string): void
  /** Aborted when the caller cancels ($/cancelRequest, Ctrl+C) or the engine shuts down. */
  signal: AbortSignal
  /** True when the caller is the CLI (a person or a script), false for JSON-RPC. */
  interactive: boolean
}

export interface CliSpec<P, R> {
  /** Command path; default: the method name split on '.', e.g. 'vhd.info' -> ['vhd', 'info']. */
  command?: string[]
  /** Params given positionally, in order ('path' -> `hvcbt vhd info <path>`). Array params take the rest. */
  positional?: string[]
  /** One-letter or other aliases for option names. */
  aliases?: Record<string, string | string[]>
  /** Human-readable rendering of the result; default: aligned `Name : value` lines / a table for arrays. */
  human?(result: R, params: P): string
  /** Process exit code for a successful call (e.g. `vhd check`: 1 when problems were found). Default 0. */
  exitCode?(result: R): number
  /** Process exit code when the call fails (default 1; usage errors are always 2). */
  errorExitCode?: number
  /**
   * Byte-stream commands (`vhd read`, `vhd write`): params that name a file and default to the process's stdout /
   * stdin in the CLI when omitted. The CLI then prints its human summary on stderr so stdout carries only data.
   */
  stdio?: { output?: string; input?: string }
  /** Examples for --help: [command line, what it does]. */
  examples?: [string, string][]
  /**
   * Long-running service: after the handler resolves, the CLI prints the result and stays alive until
   * SIGINT/SIGTERM, then aborts `ctx.signal` and waits for `stop` (if the result registered one via services).
   */
  service?: boolean
  /**
   * Params the CLI does not offer as options (e.g. a password, which must never be on a command line, where every
   * user can read it); the handler gets them over JSON-RPC only.
   */
  rpcOnlyParams?: string[]
  /** Hidden from --help (internal or not for people). */
  hidden?: boolean
}

export interface MethodDef<P extends TObject = TObject, R extends TSchema = TSchema> {
  /** Dotted name: domain.verb or domain.noun.verb (JSON-RPC method name). */
  name: string
  /** One line for help and OpenRPC. */
  summary: string
  description?: string
  params: P
  result: R
  handler(params: Static<P>, ctx: CallContext): Promise<Static<R>>
  cli?: CliSpec<Static<P>, Static<R>>
  /** Not callable from the CLI (e.g. needs a live session). */
  rpcOnly?: boolean
}

/** Identity function that gives the handler and the CLI hooks the static types of the schemas. */
export function defineMethod<P extends TObject, R extends TSchema>(def: MethodDef<P, R>): MethodDef<P, R> {
  return def
}

/** Type-erased declaration, as the registry holds it. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyMethod = MethodDef<TObject, TSchema> & { handler(params: any, ctx: CallContext): Promise<any> }
