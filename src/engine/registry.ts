/**
 * The composition root of methods: every domain's declarations, in one list. The JSON-RPC server, the CLI and
 * rpc.discover all read this list. Add one import and one spread per domain file under ./methods/.
 */
import type { AnyMethod } from './method.js'
import { engineMethods } from './methods/engine.js'
import { vhdMethods } from './methods/vhd.js'
import { vhdOpsMethods } from './methods/vhd-ops.js'
import { nbdMethods } from './methods/nbd.js'
import { trackingMethods } from './methods/tracking.js'
import { backupMethods } from './methods/backup.js'
import { witnessMethods } from './methods/witness.js'

export const methods: readonly AnyMethod[] = [
  ...engineMethods,
  ...vhdMethods,
  ...vhdOpsMethods,
  ...nbdMethods,
  ...trackingMethods,
  ...backupMethods,
  ...witnessMethods,
]

const byName = new Map(methods.map(m => [m.name, m]))

export function findMethod(name: string): AnyMethod | undefined {
  return byName.get(name)
}
