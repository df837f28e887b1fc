import t from 'tap'
import { Type } from 'typebox'
import { RpcConnection } from '../../src/engine/jsonrpc/server.js'
import { defineMethod, type AnyMethod } from '../../src/engine/method.js'
import { EngineError } from '../../src/engine/errors.js'

// Test methods exercising the connection: the registry's real methods are covered end to end elsewhere.
const methods: AnyMethod[] = [
  defineMethod({
    name: 'test.echo',
    summary: 'echo',
    params: Type.Object({ text: Type.String(), times: Type.Integer({ minimum: 1, default: 1 }) }, { additionalProperties: false }),
    result: Type.String(),
    async handler({ text, times }) {
      return text.repeat(times)
    },
  }),
  defineMethod({
    name: 'test.wait',
    summary: 'resolves after ms, or fails when cancelled',
    params: Type.Object({ ms: Type.Integer() }),
    result: Type.Integer(),
    async handler({ ms }, ctx) {
      ctx.progress(0, 2, 'starting')
      ctx.log('verbose', 'waiting')
      await new Promise((resolve, reject) => {
        const timer = setTimeout(resolve, ms)
        ctx.signal.addEventListener('abort', () => {
          clearTimeout(timer)
          reject(ctx.signal.reason)
        })
      })
      ctx.progress(2, 2)
      return ms
    },
  }),
  defineMethod({
    name: 'test.fail',
    summary: 'fails',
    params: Type.Object({ kind: Type.String() }),
    result: Type.Null(),
    async handler({ kind }) {
      if (kind === 'engine') throw new EngineError('no such disk', 'ObjectNotFound', -32001, { path: '/x' })
      if (kind === 'errno') throw Object.assign(new Error('x'), { code: 'EACCES', path: '/root/y' })
      throw new TypeError('bug')
    },
  }),
]

function connection() {
  const out: any[] = []
  const conn = new RpcConnection(n => methods.find(m => m.name === n), m => out.push(m))
  const settle = () => conn.shutdown(false)
  return { conn, out, settle }
}

t.test('garbage gets -32700 and the connection keeps serving', async t => {
  const { conn, out, settle } = connection()
  conn.handleLine('this is not json')
  conn.handleLine('{"jsonrpc":"2.0","id":1,"method":"test.echo","params":{"text":"hi"}}')
  await settle()
  t.equal(out[0].error.code, -32700)
  t.equal(out[0].id, null)
  t.same(out[1], { jsonrpc: '2.0', id: 1, result: 'hi' })
})

t.test('invalid requests get -32600 naming the problem', async t => {
  const { conn, out, settle } = connection()
  conn.handleLine('42')
  conn.handleLine('{"jsonrpc":"1.0","id":2,"method":"test.echo"}')
  conn.handleLine('{"jsonrpc":"2.0","id":3,"method":7}')
  conn.handleLine('{"jsonrpc":"2.0","id":{},"method":"test.echo"}')
  await settle()
  t.same(out.map(m => m.error.code), [-32600, -32600, -32600, -32600])
  t.same(out.map(m => m.id), [null, 2, 3, null])
  t.match(out[1].error.message, /jsonrpc must be "2.0"/)
})

t.test('unknown method -32601; bad params -32602 with ajv errors in data', async t => {
  const { conn, out, settle } = connection()
  conn.handleLine('{"jsonrpc":"2.0","id":1,"method":"nope"}')
  conn.handleLine('{"jsonrpc":"2.0","id":2,"method":"test.echo","params":{"text":5,"extra":true}}')
  conn.handleLine('{"jsonrpc":"2.0","id":3,"method":"test.echo","params":[1]}')
  await settle()
  const byId = new Map(out.map(m => [m.id, m]))
  t.equal(byId.get(1).error.code, -32601)
  t.equal(byId.get(2).error.code, -32602)
  t.match(byId.get(2).error.message, /text must be string/)
  t.match(byId.get(2).error.message, /unknown parameter 'extra'/)
  t.ok(Array.isArray(byId.get(2).error.data.errors) && byId.get(2).error.data.errors.length >= 2)
  t.equal(byId.get(2).error.data.category, 'InvalidArgument')
  t.equal(byId.get(3).error.code, -32602)
})

t.test('defaults from the schema are applied', async t => {
  const { conn, out, settle } = connection()
  conn.handleLine('{"jsonrpc":"2.0","id":1,"method":"test.echo","params":{"text":"ab","times":3}}')
  conn.handleLine('{"jsonrpc":"2.0","id":2,"method":"test.echo","params":{"text":"ab"}}')
  await settle()
  t.same(out.map(m => m.result).sort(), ['ab', 'ababab'])
})

t.test('application errors carry a PowerShell category', async t => {
  const { conn, out, settle } = connection()
  conn.handleLine('{"jsonrpc":"2.0","id":1,"method":"test.fail","params":{"kind":"engine"}}')
  conn.handleLine('{"jsonrpc":"2.0","id":2,"method":"test.fail","params":{"kind":"errno"}}')
  conn.handleLine('{"jsonrpc":"2.0","id":3,"method":"test.fail","params":{"kind":"bug"}}')
  await settle()
  const byId = new Map(out.map(m => [m.id, m]))
  t.same(byId.get(1).error, { code: -32001, message: 'no such disk', data: { category: 'ObjectNotFound', path: '/x' } })
  t.equal(byId.get(2).error.data.category, 'PermissionDenied')
  t.match(byId.get(2).error.message, /\/root\/y: permission denied/)
  t.equal(byId.get(3).error.code, -32603)
  t.equal(byId.get(3).error.message, 'bug')
})

t.test('requests run concurrently and answer as they finish', async t => {
  const { conn, out, settle } = connection()
  conn.handleLine('{"jsonrpc":"2.0","id":"slow","method":"test.wait","params":{"ms":150}}')
  conn.handleLine('{"jsonrpc":"2.0","id":"fast","method":"test.wait","params":{"ms":1}}')
  await settle()
  const responses = out.filter(m => 'result' in m)
  t.same(responses.map(m => m.id), ['fast', 'slow'])
  const progress = out.filter(m => m.method === '$/progress')
  t.ok(progress.some(p => p.params.id === 'slow' && p.params.done === 2 && p.params.total === 2), 'final progress is always sent')
  t.ok(out.some(m => m.method === '$/log' && m.params.level === 'verbose' && m.params.id === 'fast'))
})

t.test('$/cancelRequest aborts one request; shutdown(abort) aborts the rest', async t => {
  const { conn, out } = connection()
  conn.handleLine('{"jsonrpc":"2.0","id":1,"method":"test.wait","params":{"ms":10000}}')
  conn.handleLine('{"jsonrpc":"2.0","id":2,"method":"test.wait","params":{"ms":10000}}')
  conn.handleLine('{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":1}}')
  await new Promise(r => setTimeout(r, 20))
  const first = out.find(m => m.id === 1 && m.error)
  t.equal(first?.error.code, -32006)
  t.equal(first?.error.data.category, 'OperationStopped')
  await conn.shutdown(true)
  t.equal(out.find(m => m.id === 2 && m.error)?.error.data.category, 'OperationStopped')
})

t.test('a duplicate id in flight is refused; notifications get no response', async t => {
  const { conn, out, settle } = connection()
  conn.handleLine('{"jsonrpc":"2.0","id":7,"method":"test.wait","params":{"ms":50}}')
  conn.handleLine('{"jsonrpc":"2.0","id":7,"method":"test.wait","params":{"ms":1}}')
  conn.handleLine('{"jsonrpc":"2.0","method":"test.echo","params":{"text":"n"}}')
  conn.handleLine('{"jsonrpc":"2.0","method":"nope"}')
  await settle()
  const responses = out.filter(m => m.id === 7 && !m.method)
  t.equal(responses.length, 2)
  t.match(responses[0].error.message, /already in use/)
  t.equal(responses[1].result, 50)
  t.notOk(out.some(m => m.result === 'n'))
})

t.test('batches answer as one array', async t => {
  const { conn, out, settle } = connection()
  conn.handleLine('[{"jsonrpc":"2.0","id":1,"method":"test.echo","params":{"text":"a"}},{"jsonrpc":"2.0","method":"test.echo","params":{"text":"b"}},5]')
  conn.handleLine('[]')
  await settle()
  t.equal(out.length, 2)
  t.same(out[0].error.code, -32600, 'an empty batch is an invalid request')
  t.same(out[1].map((m: any) => m.result ?? m.error.code), ['a', -32600])
})
