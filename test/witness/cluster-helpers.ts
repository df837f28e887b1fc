/**
 * A witness cluster for tests and benchmarks: witness nodes as separate engine processes (`hvcbt witness serve
 * --etcd ...`) on their own loopback addresses, which a test can SIGKILL, SIGSTOP and restart, plus admin commands
 * run through the engine's CLI against a node's admin socket.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { engineCommand, runHvcbt } from '../helpers/engine.js'

export interface NodeSpec {
  name: string
  address: string
}

export class WitnessNodeProcess {
  child: ChildProcessWithoutNullStreams | null = null
  output = ''

  constructor(
    readonly spec: NodeSpec,
    private readonly args: string[],
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  /** Starts the node and waits until its service is up (the serve result is printed). */
  async start(ms = 20_000): Promise<void> {
    const [cmd, ...pre] = engineCommand()
    const child = spawn(cmd!, [...pre, 'witness', 'serve', '--node', this.spec.name, '--listen', this.spec.address, ...this.args, '--verbose'], {
      env: { ...process.env, NODE_OPTIONS: '', ...this.env },
    })
    this.child = child
    this.output = ''
    child.stdout.on('data', d => (this.output += d))
    child.stderr.on('data', d => (this.output += d))
    const end = Date.now() + ms
    while (!/Admin sockets/.test(this.output)) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`node ${this.spec.name} exited: ${this.output}`)
      if (Date.now() > end) throw new Error(`node ${this.spec.name} did not start: ${this.output}`)
      await new Promise(r => setTimeout(r, 50))
    }
  }

  /** Sends `signal` and, for a deadly one, waits for the exit. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const c = this.child
    if (!c || c.exitCode !== null || c.signalCode !== null) return
    if (signal === 'SIGSTOP' || signal === 'SIGCONT') {
      c.kill(signal)
      return
    }
    const exited = new Promise(r => c.once('exit', r))
    c.kill(signal)
    await exited
  }
}

/** `hvcbt <args> --json` against the admin socket folder `env`; throws with stderr on failure. */
export function hvcbtJson<T>(args: string[], env: NodeJS.ProcessEnv): T {
  const r = runHvcbt([...args, '--json'], { env })
  if (r.status !== 0) throw new Error(`hvcbt ${args.join(' ')}: ${r.stderr}`)
  return JSON.parse(r.stdout) as T
}

export interface ServiceStatus {
  node: string
  registrations: number
  membership: {
    source: string
    connected: boolean
    degradedSince: string | null
    leaseId: string | null
    leaseTtlSeconds: number | null
    nodes: Array<{ name: string; addresses: string[]; state: string }>
  }
}

/** Polls `witness status` on `server` until `pred` holds. */
export async function statusWhere(server: string, env: NodeJS.ProcessEnv, pred: (s: ServiceStatus) => boolean, ms = 20_000): Promise<ServiceStatus> {
  const end = Date.now() + ms
  let last: ServiceStatus | null = null
  for (;;) {
    try {
      last = hvcbtJson<ServiceStatus>(['witness', 'status', '--server', server], env)
      if (pred(last)) return last
    } catch (e) {
      if (Date.now() > end) throw e
    }
    if (Date.now() > end) throw new Error(`status of ${server} never matched; last: ${JSON.stringify(last)}`)
    await new Promise(r => setTimeout(r, 200))
  }
}

export const stateOf = (s: ServiceStatus, node: string) => s.membership.nodes.find(n => n.name === node)?.state
