/**
 * The OpenRPC 1.2.6 description of every method (`rpc.discover`), built from the same declarations the server
 * dispatches on, so the document cannot drift from what the engine accepts.
 */
import type { AnyMethod } from './method.js'
import { engineName, version } from './version.js'

export function openRpcDocument(methods: readonly AnyMethod[]): Record<string, unknown> {
  return {
    openrpc: '1.2.6',
    info: {
      title: engineName,
      version,
      description:
        'HvCbt engine: changed-block tracking, backups and SMB Witness for Hyper-V disks. Newline-delimited ' +
        'JSON-RPC 2.0 over stdio; notifications $/progress {id, done, total, message} and $/log {level, message, id}; ' +
        'errors carry data.category, a PowerShell ErrorCategory name.',
    },
    methods: methods.map(m => {
      const props = (m.params.properties ?? {}) as Record<string, unknown>
      const required = new Set<string>((m.params.required as string[] | undefined) ?? [])
      return {
        name: m.name,
        summary: m.summary,
        ...(m.description ? { description: m.description } : {}),
        paramStructure: 'by-name',
        params: Object.entries(props).map(([name, schema]) => ({
          name,
          required: required.has(name),
          schema: plain(schema),
        })),
        result: { name: 'result', schema: plain(m.result) },
      }
    }),
  }
}

/** Schemas as plain JSON (drops symbols and functions a schema builder may attach). */
function plain(schema: unknown): unknown {
  return JSON.parse(JSON.stringify(schema))
}
