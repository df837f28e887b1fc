/**
 * The command line, derived from the method registry: `hvcbt <noun> <verb> [positionals] [--options]`.
 *
 * Each method's params schema becomes options (camelCase names as --kebab-case flags, enums as choices, arrays as
 * repeatable flags), its cli.positional list becomes positionals, and the same ajv validation as JSON-RPC runs on
 * the result. Output: the method's human rendering (or a default list/table) on stdout, `--json` for scripts; one
 * `hvcbt: message` line on stderr and a non-zero exit code on failure (2 for usage errors).
 */
import yargs, { type Argv } from 'yargs'
import type { AnyMethod, CallContext, LogLevel } from '../engine/method.js'
import { EngineError, toEngineError } from '../engine/errors.js'
import { describeErrors, validateParams, InvalidParams } from '../engine/validate.js'
import { stopAllServices } from '../engine/services.js'
import { engineName, version } from '../engine/version.js'
import { renderHuman } from './format.js'
import { ProgressBar } from './progress.js'

interface Node {
  children: Map<string, Node>
  method?: AnyMethod
}

type Schema = Record<string, unknown>

export const kebab = (s: string) => s.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase()

/** Runs the CLI; resolves to the process exit code. */
export async function runCli(argv: string[], methods: readonly AnyMethod[]): Promise<number> {
  let exitCode = 0
  const root: Node = { children: new Map() }
  for (const m of methods) {
    if (m.rpcOnly) continue
    let node = root
    for (const part of m.cli?.command ?? m.name.split('.')) {
      let next = node.children.get(part)
      if (!next) node.children.set(part, (next = { children: new Map() }))
      node = next
    }
    node.method = m
  }

  const y = yargs(argv)
    .scriptName(engineName)
    .usage(`${engineName} <command>\n\nChanged-block tracking, backups and SMB Witness for Hyper-V disks.`)
    .option('json', { type: 'boolean', description: 'Print the result as JSON (for scripts)', global: true })
    .option('verbose', { type: 'boolean', description: 'Print diagnostic messages on stderr', global: true })
    .command('rpc', 'Serve JSON-RPC 2.0 on stdin/stdout (used by the PowerShell module)', () => {}, () => {})
    .version(version)
    .alias('h', 'help')
    .strict()
    .demandCommand(1, 'name a command; --help lists them')
    .recommendCommands()
    .wrap(Math.min(120, process.stdout.columns || 100))
    .fail((msg, err) => {
      throw err ?? new UsageError(msg)
    })
  addChildren(y, root, [], (code: number) => (exitCode = code))
  try {
    await y.parseAsync()
  } catch (err) {
    if (!(err instanceof UsageError)) throw err
    process.stderr.write(`${engineName}: ${err.message}\nRun '${engineName} ${commandOf(argv, root)}--help' for usage.\n`)
    return 2
  }
  return exitCode
}

class UsageError extends Error {}

/** One line per command group in `hvcbt --help`. */
const groupSummaries: Record<string, string> = {
  engine: 'The engine itself: version, OpenRPC description',
  vhd: 'Virtual disk files (VHDX, VHD, raw): inspect, create, check, map, read, write, convert, merge',
  tracking: 'Changed-block tracking: enable, status, reference points, changed ranges',
  serve: 'Serve disks to other programs (NBD export)',
  nbd: 'Running NBD exports',
  backup: 'Full, incremental and differential backups: create, list, restore, verify, prune',
  witness: 'SMB Witness (MS-SWN) service and client',
}

/** The known command words at the start of argv ('vhd info '), for the usage hint. */
function commandOf(argv: string[], root: Node): string {
  const words: string[] = []
  let node: Node | undefined = root
  for (const a of argv) {
    node = node?.children.get(a)
    if (!node) break
    words.push(a)
  }
  return words.length ? words.join(' ') + ' ' : ''
}

function addChildren(y: Argv, node: Node, path: string[], setExit: (code: number) => void): void {
  for (const [name, child] of node.children) {
    if (child.method && child.children.size === 0) {
      addLeaf(y, name, child.method, setExit)
      continue
    }
    y.command(
      name,
      describeGroup(name, child),
      yy => {
        addChildren(yy, child, [...path, name], setExit)
        return yy.demandCommand(1, `name a '${[...path, name].join(' ')}' command; --help lists them`)
      },
      () => {},
    )
  }
}

function describeGroup(name: string, node: Node): string {
  return groupSummaries[name] ?? `${name[0]!.toUpperCase()}${name.slice(1)} commands: ${[...node.children.keys()].join(', ')}`
}

/** The params the CLI offers (all but cli.rpcOnlyParams). */
function propertiesOf(m: AnyMethod): [string, Schema][] {
  const rpcOnly = new Set(m.cli?.rpcOnlyParams ?? [])
  return Object.entries((m.params.properties ?? {}) as Record<string, Schema>).filter(([p]) => !rpcOnly.has(p))
}

function addLeaf(y: Argv, name: string, m: AnyMethod, setExit: (code: number) => void): void {
  const required = new Set<string>((m.params.required as string[] | undefined) ?? [])
  const positional = m.cli?.positional ?? []
  const stdio = m.cli?.stdio ?? {}
  const stdioParams = new Set([stdio.input, stdio.output].filter(Boolean))
  const spec = positional
    .map(p => {
      const s = (m.params.properties as Record<string, Schema>)[p] ?? {}
      const rest = s.type === 'array' ? '..' : ''
      return required.has(p) && !stdioParams.has(p) ? `<${p}${rest}>` : `[${p}${rest}]`
    })
    .join(' ')
  y.command(
    `${name}${spec ? ' ' + spec : ''}`,
    m.summary,
    yy => {
      for (const [prop, schema] of propertiesOf(m)) {
        const opt = optionFor(schema)
        if (positional.includes(prop)) {
          // a variadic positional (`<paths..>`) is typed by its items; yargs collects the array itself
          const { string: _s, number: _n, ...rest } = opt
          const type = opt.type === 'array' ? (opt.number ? 'number' : 'string') : opt.type
          yy.positional(prop, { ...rest, type, description: describe(schema) })
        } else {
          yy.option(kebab(prop), {
            ...opt,
            description: describe(schema),
            demandOption: required.has(prop) && !stdioParams.has(prop) && schema.default === undefined,
          })
        }
      }
      for (const [alias, target] of Object.entries(m.cli?.aliases ?? {})) yy.alias(kebab(alias), target)
      for (const [cmd, what] of m.cli?.examples ?? []) yy.example(cmd, what)
      if (m.description) yy.epilogue(m.description)
      return yy
    },
    async argv => setExit(await invoke(m, argv as Record<string, unknown>)),
  )
}

function describe(schema: Schema): string {
  const parts = [String(schema.description ?? '')]
  if (schema.default !== undefined) parts.push(`(default: ${JSON.stringify(schema.default)})`)
  return parts.filter(Boolean).join(' ')
}

/** The yargs option shape for a JSON Schema property. */
function optionFor(schema: Schema): { type?: 'string' | 'number' | 'boolean' | 'array'; choices?: Array<string | number>; string?: boolean; number?: boolean } {
  const choices = literals(schema) as Array<string | number> | undefined
  if (choices) return { type: typeof choices[0] === 'number' ? 'number' : 'string', choices }
  const types = typesOf(schema)
  if (types.includes('array')) {
    const item = (schema.items ?? {}) as Schema
    const it = typesOf(item)
    return it.includes('string') || literals(item) ? { type: 'array', string: true } : { type: 'array', number: true }
  }
  if (types.includes('string')) return { type: 'string' }
  if (types.includes('integer') || types.includes('number')) return { type: 'number' }
  if (types.includes('boolean')) return { type: 'boolean' }
  return { type: 'string' }
}

function typesOf(schema: Schema): string[] {
  if (typeof schema.type === 'string') return [schema.type]
  if (Array.isArray(schema.type)) return schema.type as string[]
  const alts = (schema.anyOf ?? schema.oneOf) as Schema[] | undefined
  return alts ? alts.flatMap(typesOf) : []
}

function literals(schema: Schema): unknown[] | undefined {
  if (Array.isArray(schema.enum)) return schema.enum
  const alts = (schema.anyOf ?? schema.oneOf) as Schema[] | undefined
  if (alts && alts.length > 0 && alts.every(a => 'const' in a)) return alts.map(a => a.const)
  return undefined
}

async function invoke(m: AnyMethod, argv: Record<string, unknown>): Promise<number> {
  const json = argv.json === true
  const verbose = argv.verbose === true
  const params: Record<string, unknown> = {}
  for (const [prop, schema] of propertiesOf(m)) {
    let v = argv[prop]
    if (v === undefined) continue
    // yargs gives one value for a single flag and an array for repeated ones
    if (typesOf(schema).includes('array') && !Array.isArray(v)) v = [v]
    params[prop] = v
  }
  const stdio = m.cli?.stdio ?? {}
  if (stdio.output && params[stdio.output] === undefined) params[stdio.output] = '/dev/stdout'
  if (stdio.input && params[stdio.input] === undefined) params[stdio.input] = '/dev/stdin'
  const dataOnStdout = stdio.output !== undefined && params[stdio.output] === '/dev/stdout'

  const ac = new AbortController()
  let interrupts = 0
  const onSignal = () => {
    if (++interrupts > 1) process.exit(130)
    ac.abort(new EngineError('interrupted', 'OperationStopped', -32006))
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  const bar = new ProgressBar(!json && process.stderr.isTTY === true)
  const ctx: CallContext = {
    signal: ac.signal,
    interactive: true,
    progress: (done, total, message) => bar.update(done, total, message),
    log: (level: LogLevel, message: string) => {
      if (level === 'error' || level === 'warning' || ((level === 'info' && !json) || verbose)) {
        bar.done()
        process.stderr.write(`${engineName}: ${level === 'info' ? '' : level + ': '}${message}\n`)
      }
    },
  }
  try {
    const valid = validateParams(m, params)
    const result = await m.handler(valid, ctx)
    bar.done()
    const out = json ? JSON.stringify(result, null, 2) : (m.cli?.human?.(result, valid) ?? renderHuman(result))
    if (out) (dataOnStdout ? process.stderr : process.stdout).write(out.endsWith('\n') ? out : out + '\n')
    if (m.cli?.service) {
      if (!ac.signal.aborted) await new Promise(resolve => ac.signal.addEventListener('abort', resolve, { once: true }))
      await stopAllServices()
    }
    return m.cli?.exitCode?.(result) ?? 0
  } catch (err) {
    bar.done()
    const e = toEngineError(err)
    let message = e.message
    if (e.code === InvalidParams && Array.isArray(e.data.errors)) {
      message = describeErrors(e.data.errors, f => (m.cli?.positional?.includes(f) ? `<${f}>` : `--${kebab(f)}`))
    }
    if (json) process.stderr.write(JSON.stringify({ error: { code: e.code, message, category: e.category, data: e.data } }) + '\n')
    else process.stderr.write(`${engineName}: ${message}\n`)
    return e.code === InvalidParams ? 2 : (m.cli?.errorExitCode ?? 1)
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
}
