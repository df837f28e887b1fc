/** Methods about the engine itself: identity for the module's first exchange, and the OpenRPC document. */
import { Type } from 'typebox'
import { defineMethod } from '../method.js'
import { engineName, protocolVersion, version } from '../version.js'
import { openRpcDocument } from '../openrpc.js'
import { sparseSupport } from '../../platform/sparse.js'

export const engineMethods = [
  defineMethod({
    name: 'engine.version',
    summary: 'Engine name, version, protocol version and platform support',
    params: Type.Object({}, { additionalProperties: false }),
    result: Type.Object({
      name: Type.String(),
      version: Type.String(),
      protocolVersion: Type.Integer(),
      node: Type.String(),
      native: Type.Boolean({ description: 'whether the sparse-file addon loaded' }),
    }),
    cli: { command: ['engine', 'version'] },
    async handler() {
      return { name: engineName, version, protocolVersion, node: process.versions.node, native: sparseSupport().native }
    },
  }),
  defineMethod({
    name: 'rpc.discover',
    summary: 'OpenRPC description of every method',
    params: Type.Object({}, { additionalProperties: false }),
    result: Type.Object({ openrpc: Type.String() }, { additionalProperties: true }),
    cli: { command: ['engine', 'discover'], human: r => JSON.stringify(r, null, 2) },
    async handler() {
      // imported here, not at the top: the registry imports this file, and a cycle at load time would leave one of
      // the two uninitialised depending on which is loaded first
      const { methods } = await import('../registry.js')
      return openRpcDocument(methods) as { openrpc: string }
    },
  }),
]
