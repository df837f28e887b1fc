// A stand-in engine, for what the real engine never does on purpose: it claims an unknown protocol version, dies
// with last words on stderr while a request is pending, writes non-protocol text on stdout, or ('chatty') answers
// with $/progress and $/log notifications first (no real method reports progress yet). Selected by
// HVCBT_STANDIN_MODE = 'protocol' | 'die' | 'garbage' | 'chatty' | 'slow' ('slow' never answers a request until the
// client cancels it, and notes requests and cancels in the file HVCBT_STANDIN_LOG). Everything else is tested against
// the real engine.
import { appendFileSync } from 'node:fs'
import { createInterface } from 'node:readline'

const mode = process.env.HVCBT_STANDIN_MODE ?? 'die'
const send = m => process.stdout.write(JSON.stringify(m) + '\n')
createInterface({ input: process.stdin }).on('line', line => {
  const msg = JSON.parse(line)
  if (msg.method === 'engine.version') {
    const protocolVersion = mode === 'protocol' ? 99 : 1
    send({ jsonrpc: '2.0', id: msg.id, result: { name: 'hvcbt', version: '9.9.9', protocolVersion, node: process.versions.node, native: false } })
    return
  }
  if (mode === 'slow') {
    const note = text => process.env.HVCBT_STANDIN_LOG && appendFileSync(process.env.HVCBT_STANDIN_LOG, text + '\n')
    if (msg.method === '$/cancelRequest') {
      note(`cancel ${msg.params.id}`)
      send({ jsonrpc: '2.0', id: msg.params.id, error: { code: -32006, message: 'cancelled by the client', data: { category: 'OperationStopped' } } })
    } else {
      note(`request ${msg.method} ${msg.id}`)
    }
    return
  }
  if (mode === 'chatty') {
    const id = msg.id
    for (const [done, message] of [[0, undefined], [5, 'half way'], [10, undefined]]) {
      send({ jsonrpc: '2.0', method: '$/progress', params: { id, done, total: 10, ...(message ? { message } : {}) } })
    }
    send({ jsonrpc: '2.0', method: '$/log', params: { id, level: 'warning', message: 'a warning for this call' } })
    send({ jsonrpc: '2.0', method: '$/log', params: { id, level: 'error', message: 'an error-level message' } })
    send({ jsonrpc: '2.0', method: '$/log', params: { id, level: 'verbose', message: 'some detail' } })
    send({ jsonrpc: '2.0', method: '$/log', params: { id, level: 'debug', message: 'debugging detail' } })
    send({ jsonrpc: '2.0', method: '$/log', params: { level: 'warning', message: 'an engine-wide warning' } })
    const result = {
      path: msg.params.path, format: 'raw', type: 'fixed', virtualSizeBytes: 12345, blockSizeBytes: 0,
      logicalSectorSizeBytes: 512, physicalSectorSizeBytes: 512, fileSizeBytes: 12345, diskId: null, parentPath: null,
    }
    setTimeout(() => send({ jsonrpc: '2.0', id, result }), 300)
    return
  }
  if (mode === 'garbage') {
    process.stdout.write('Debugger listening on ws://127.0.0.1:9229\n')
    return
  }
  process.stderr.write('stand-in: reading the disk\n')
  process.stderr.write(`stand-in: fatal: simulated crash during ${msg.method}\n`)
  process.exit(3)
})
