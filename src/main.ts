#!/usr/bin/env node
/**
 * Entry point of the hvcbt engine: `hvcbt rpc` serves JSON-RPC on stdio for the PowerShell module; anything else
 * is the command line. Both read the same method registry. Each path loads only what it needs, and `--version`
 * (what scripts and the module call to find the engine) loads nothing at all.
 */
import { version } from './engine/version.js'

async function main(): Promise<number> {
  const args = process.argv.slice(2)
  if (args.length === 1 && args[0] === '--version') {
    process.stdout.write(`${version}\n`)
    return 0
  }
  if (args[0] === 'rpc' && !args.includes('--help') && !args.includes('-h')) {
    const [{ findMethod }, { serveStdio }, { stopAllServices }, { setSparseWarningSink }] = await Promise.all([
      import('./engine/registry.js'),
      import('./engine/jsonrpc/stdio.js'),
      import('./engine/services.js'),
      import('./platform/sparse.js'),
    ])
    await serveStdio({
      methods: findMethod,
      onClose: stopAllServices,
      onLogger: log => setSparseWarningSink(message => log('warning', message)),
    })
    return 0
  }
  const [{ methods }, { runCli }] = await Promise.all([import('./engine/registry.js'), import('./cli/cli.js')])
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
