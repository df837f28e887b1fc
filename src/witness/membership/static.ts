/**
 * A fixed membership list (from --static-node NAME=IP[,IP...]) whose node states an administrator sets by hand
 * (`hvcbt witness node-state`). Used for tests and for clusters without etcd.
 */
import { EventEmitter } from 'node:events'
import { isIP } from 'node:net'
import type { MembershipSource, NodeInfo, NodeState } from './membership.js'

export class StaticMembership extends EventEmitter implements MembershipSource {
  private readonly list: NodeInfo[]

  constructor(nodes: NodeInfo[]) {
    super()
    this.list = nodes.map(n => ({ ...n, addresses: [...n.addresses] }))
  }

  /** Parse `NAME=IP[,IP...]` specifications; every node starts up. */
  static parse(specs: string[]): StaticMembership {
    const nodes = specs.map(spec => {
      const m = /^([^=\s]+)=(.+)$/.exec(spec)
      if (!m) throw new RangeError(`--static-node ${spec}: expected NAME=IP[,IP...]`)
      const addresses = m[2]!.split(',').map(s => s.trim()).filter(Boolean)
      for (const a of addresses) if (!isIP(a)) throw new RangeError(`--static-node ${spec}: ${a} is not an IP address`)
      return { name: m[1]!, addresses, state: 'up' as NodeState }
    })
    const names = new Set<string>()
    for (const n of nodes) {
      if (names.has(n.name.toUpperCase())) throw new RangeError(`--static-node: node ${n.name} given twice`)
      names.add(n.name.toUpperCase())
    }
    return new StaticMembership(nodes)
  }

  nodes(): NodeInfo[] {
    return this.list.map(n => ({ ...n, addresses: [...n.addresses] }))
  }

  setNodeState(name: string, state: NodeState): void {
    const n = this.list.find(x => x.name.toUpperCase() === name.toUpperCase())
    if (!n) throw new RangeError(`no node named ${name}`)
    if (n.state === state) return
    n.state = state
    this.emit('change', this.nodes())
  }
}
