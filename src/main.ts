#!/usr/bin/env node
/**
 * Entry point of the hvcbt engine: `hvcbt rpc` serves JSON-RPC on stdio for the PowerShell module; anything else
 * is the command line. Both read the same method registry.
 */
import { findMethod, methods } from './engine/registry.js'
import { serveStdio } from './engine/jsonrpc/stdio.js'
import { stopAllServices } from './engine/services.js'
import { setSparseWarningSink } from './platform/sparse.js'
import { runCli } from './cli/cli.js'

async function main(): Promise<number> {
  const args = process.argv.slice(2)
  if (args[0] === 'rpc' && !args.includes('--help') && !args.includes('-h')) {
    await serveStdio({
      methods: findMethod,
      onClose: stopAllServices,
      onLogger: log => setSparseWarningSink(message => log('warning', message)),
    })
    return 0
  }
  return runCli(args, methods)
}

main().then(
  code => {
    process.exitCode = code
  },
  err => {
    process.stderr.write(`hvcbt: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
    process.exitCode = 70
  },
)
