// A deliberately broken engine, for the failure modes the real engine never shows on purpose: it claims an unknown
// protocol version, dies with last words on stderr while a request is pending, or writes non-protocol text on
// stdout. Selected by HVCBT_STANDIN_MODE = 'protocol' | 'die' | 'garbage'. Everything else is tested against the
// real engine.
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
  if (mode === 'garbage') {
    process.stdout.write('Debugger listening on ws://127.0.0.1:9229\n')
    return
  }
  process.stderr.write('stand-in: reading the disk\n')
  process.stderr.write(`stand-in: fatal: simulated crash during ${msg.method}\n`)
  process.exit(3)
})
