/**
 * The composition root of methods: every domain's declarations, in one list. The JSON-RPC server, the CLI and
 * rpc.discover all read this list. Add one import and one spread per domain file under ./methods/.
 */
import type { AnyMethod } from './method.js'

export const methods: readonly AnyMethod[] = [
]

export function findMethod(name: string): AnyMethod | undefined {
  return methods.find(m => m.name === name)
}
