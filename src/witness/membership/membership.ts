/**
 * Cluster membership as the witness sees it: which file-server nodes exist, their addresses and whether they are
 * up. The witness server builds its interface list from this and turns state changes into RESOURCE_CHANGE
 * notifications. Sources are pluggable: static.ts (fixed list, states set by an administrator) and etcd.ts
 * (lease-bound node records in etcd, shared by every witness node of a cluster).
 */

export type NodeState = 'up' | 'down' | 'unknown'

export interface NodeInfo {
  /** Node name (the InterfaceGroupName clients see), e.g. 'FS1'. */
  name: string
  /** IPv4 and IPv6 addresses of the node's file-server interfaces. */
  addresses: string[]
  state: NodeState
}

export interface MembershipSource {
  /** The current view (a fresh array; callers may keep it). */
  nodes(): NodeInfo[]
  /** 'change' fires with the new view after any node was added, removed, changed state or addresses. */
  on(event: 'change', listener: (nodes: NodeInfo[]) => void): this
  off(event: 'change', listener: (nodes: NodeInfo[]) => void): this
  /** Administrative override of a node's state, for sources that allow it (static: at once; etcd: once stored). */
  setNodeState?(name: string, state: NodeState): void | Promise<void>
  close?(): Promise<void>
}
