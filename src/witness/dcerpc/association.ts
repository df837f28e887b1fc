/**
 * Association groups (MS-RPCE 3.3.1.5.6): connections that bind with the same assoc_group_id share one group, and
 * context handles belong to the group, so a client may open a second connection in the group and use the handles
 * of the first. When the last connection of a group closes, its context handles are run down (their owners are
 * told, as an RPC runtime calls an interface's rundown routine).
 */
import { randomBytes, randomUUID } from 'node:crypto'
import { guidFromBytes, guidToBytes } from './bytes.js'

interface HandleEntry {
  value: unknown
  rundown?: () => void
}

export class AssociationGroup {
  connections = 0
  private readonly handles = new Map<string, HandleEntry>()

  constructor(readonly id: number) {}

  /** A new context handle (attributes 0 + a random GUID) owning `value`; `rundown` runs if the group ends first. */
  createHandle(value: unknown, rundown?: () => void): Uint8Array {
    const h = new Uint8Array(20)
    h.set(guidToBytes(randomUUID()), 4)
    this.handles.set(handleKey(h), { value, ...(rundown ? { rundown } : {}) })
    return h
  }

  getHandle<T>(h: Uint8Array): T | undefined {
    return this.handles.get(handleKey(h))?.value as T | undefined
  }

  /** Forget a handle without running it down. */
  closeHandle(h: Uint8Array): boolean {
    return this.handles.delete(handleKey(h))
  }

  get handleCount(): number {
    return this.handles.size
  }

  /** Run down every handle (the group ended). */
  rundown(): void {
    const all = [...this.handles.values()]
    this.handles.clear()
    for (const e of all) e.rundown?.()
  }
}

export function handleKey(h: Uint8Array): string {
  return Buffer.from(h.buffer, h.byteOffset, h.byteLength).toString('hex')
}

export function isNullHandle(h: Uint8Array): boolean {
  return h.every(b => b === 0)
}

/** GUID part of a context handle in text form (for logs and admin output). */
export function handleGuid(h: Uint8Array): string {
  return guidFromBytes(h.subarray(4, 20))
}

export class AssociationGroups {
  private readonly groups = new Map<number, AssociationGroup>()

  create(): AssociationGroup {
    for (;;) {
      const id = randomBytes(4).readUInt32LE(0) & 0x7fffffff
      if (id !== 0 && !this.groups.has(id)) {
        const g = new AssociationGroup(id)
        this.groups.set(id, g)
        return g
      }
    }
  }

  get(id: number): AssociationGroup | undefined {
    return this.groups.get(id)
  }

  /** A connection left the group; the last one ends it. */
  release(g: AssociationGroup): void {
    g.connections--
    if (g.connections <= 0 && this.groups.get(g.id) === g) {
      this.groups.delete(g.id)
      g.rundown()
    }
  }

  get size(): number {
    return this.groups.size
  }
}
