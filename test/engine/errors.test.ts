import t from 'tap'
import { EngineError, FormatError, toEngineError } from '../../src/engine/errors.js'

t.test('system errors keep their path and get a PowerShell category', async t => {
  const e = Object.assign(new Error('x'), { code: 'ENOENT', path: '/no/such.vhdx', syscall: 'open' })
  const ee = toEngineError(e)
  t.equal(ee.category, 'ObjectNotFound')
  t.match(ee.message, /\/no\/such\.vhdx: no such file/)
  t.equal(ee.data.path, '/no/such.vhdx')
})

t.test('FormatError names file, structure and offset', async t => {
  const e = new FormatError('a.vhdx', 'header 1', 65536n, 'bad CRC-32C')
  t.equal(e.message, 'a.vhdx: header 1 at offset 65536: bad CRC-32C')
  t.equal(e.category, 'InvalidData')
  t.equal(toEngineError(e), e)
  t.ok(e instanceof EngineError)
})

t.test('unknown errors become internal errors keeping the message', async t => {
  const ee = toEngineError(new TypeError('boom'))
  t.equal(ee.code, -32603)
  t.equal(ee.message, 'boom')
})

t.test('EEXIST from link/rename names the destination, not the temporary source', async t => {
  const e = Object.assign(new Error('x'), { code: 'EEXIST', path: '/d/a.vhdx.123.tmp', dest: '/d/a.vhdx', syscall: 'link' })
  const ee = toEngineError(e)
  t.equal(ee.message, '/d/a.vhdx: already exists')
  t.equal(ee.category, 'ResourceExists')
  t.equal(ee.data.path, '/d/a.vhdx')
})
