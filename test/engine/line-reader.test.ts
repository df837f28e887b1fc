import t from 'tap'
import { LineReader } from '../../src/engine/jsonrpc/line-reader.js'

const text = '{"a":1}\n{"b":"é, ü"}\r\n\n  \n{"c":[1,2,3]}\n'
const expected = ['{"a":1}', '{"b":"é, ü"}', '{"c":[1,2,3]}']

t.test('lines come out whole wherever the stream is split', async t => {
  const bytes = Buffer.from(text)
  for (let cut = 0; cut <= bytes.length; cut++) {
    const got: string[] = []
    const r = new LineReader(l => got.push(l), () => t.fail('no line is overlong'))
    r.push(bytes.subarray(0, cut))
    r.push(bytes.subarray(cut))
    r.end()
    t.same(got, expected, `split at byte ${cut}`)
  }
})

t.test('one byte at a time', async t => {
  const got: string[] = []
  const r = new LineReader(l => got.push(l), () => {})
  for (const b of Buffer.from(text)) r.push(Buffer.from([b]))
  t.same(got, expected)
})

t.test('a last line without newline still counts at end of stream', async t => {
  const got: string[] = []
  const r = new LineReader(l => got.push(l), () => {})
  r.push(Buffer.from('{"x":1}\n{"y":2}'))
  t.same(got, ['{"x":1}'])
  r.end()
  t.same(got, ['{"x":1}', '{"y":2}'])
})

t.test('an overlong line is dropped and reported, and the next line is read', async t => {
  const got: string[] = []
  const over: number[] = []
  const r = new LineReader(l => got.push(l), n => over.push(n), 16)
  r.push(Buffer.from('x'.repeat(10)))
  r.push(Buffer.from('y'.repeat(10)))
  r.push(Buffer.from('z'.repeat(10) + '\n{"ok":1}\n'))
  t.same(over, [30])
  t.same(got, ['{"ok":1}'])
})
