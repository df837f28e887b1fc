/**
 * Hostile and malformed input: each case gets the error the spec asks for, or a closed connection, and the server
 * keeps serving other clients. Also the per-connection limits (in-flight requests, option sizes, handshake time).
 */
import t from 'tap'
import { NbdServer, type NbdServerOptions } from '../../src/nbd/server.js'
import * as P from '../../src/nbd/protocol.js'
import { MemoryDisk } from './memory-disk.js'
import { optionRequest, RawClient, requestHeader, u32 } from './raw-client.js'

const SIZE = 4 << 20

async function serve(t: { teardown(fn: () => unknown): void }, opts: NbdServerOptions = {}, readOnly = false) {
  const disk = new MemoryDisk(SIZE)
  const server = new NbdServer([{ name: 'd', disk, readOnly }], opts)
  const { port } = await server.listen(0)
  const clients: RawClient[] = []
  t.teardown(async () => {
    for (const c of clients) c.close()
    await server.close()
  })
  const connect = async () => {
    const c = await RawClient.connect(port)
    clients.push(c)
    return c
  }
  return { disk, server, port, connect }
}

/** A healthy client can still read after whatever happened to another one. */
async function stillServes(t: { equal: (...a: unknown[]) => void }, connect: () => Promise<RawClient>) {
  const c = await connect()
  await c.start()
  await c.go('d', { structured: true })
  c.request(P.NBD_CMD_READ, 99n, 0, 4096)
  const r = await c.readFullReply()
  t.equal(r.error, 0, 'another client is still served')
}

t.test('oversized requests get EINVAL and the connection stays usable', async t => {
  const { connect, disk } = await serve(t)
  const c = await connect()
  await c.start()
  await c.go('d', { structured: true })
  const big = 32 * 1024 * 1024 + 4096
  c.request(P.NBD_CMD_READ, 1n, 0, big)
  t.equal((await c.readFullReply()).error, P.NBD_EINVAL, 'read over the maximum payload: EINVAL')
  // a write over the maximum: the payload is drained without being buffered, then EINVAL
  c.write(requestHeader(P.NBD_CMD_WRITE, 2n, 0, big))
  const chunk = Buffer.alloc(1 << 20, 0x5a)
  for (let sent = 0; sent < big; sent += chunk.length) c.write(chunk.subarray(0, Math.min(chunk.length, big - sent)))
  const w = await c.readFullReply()
  t.same([w.cookie, w.error], [2n, P.NBD_EINVAL], 'write over the maximum payload: EINVAL')
  c.request(P.NBD_CMD_READ, 3n, 0, 4096)
  const r = await c.readFullReply()
  t.same([r.cookie, r.error], [3n, 0], 'the stream is still in sync')
  const first = r.chunks[0]!
  t.ok(first.kind === 'chunk' && first.type === P.NBD_REPLY_TYPE_OFFSET_HOLE, 'unwritten range is reported as a hole')
  t.ok(disk.data.every(b => b === 0), 'nothing was written')
})

t.test('range, alignment, flag and command errors map to the spec errno values', async t => {
  const { connect } = await serve(t)
  const c = await connect()
  await c.start()
  await c.go('d') // simple replies
  const cases: [string, number, number, number, number, Buffer | undefined, number][] = [
    ['read past the end', P.NBD_CMD_READ, 0, SIZE, 4096, undefined, P.NBD_EINVAL],
    ['write past the end', P.NBD_CMD_WRITE, 0, SIZE, 512, Buffer.alloc(512), P.NBD_ENOSPC],
    ['write-zeroes past the end', P.NBD_CMD_WRITE_ZEROES, 0, SIZE - 512, 4096, undefined, P.NBD_ENOSPC],
    ['trim past the end', P.NBD_CMD_TRIM, 0, SIZE, 512, undefined, P.NBD_EINVAL],
    ['unaligned read', P.NBD_CMD_READ, 0, 100, 512, undefined, P.NBD_EINVAL],
    ['unknown command', 42, 0, 0, 512, undefined, P.NBD_EINVAL],
    ['RESIZE', P.NBD_CMD_RESIZE, 0, 0, 0, undefined, P.NBD_EINVAL],
    ['flag not valid for the command', P.NBD_CMD_FLUSH, P.NBD_CMD_FLAG_REQ_ONE, 0, 0, undefined, P.NBD_EINVAL],
    ['DF without structured replies', P.NBD_CMD_READ, P.NBD_CMD_FLAG_DF, 0, 512, undefined, P.NBD_EINVAL],
    ['FAST_ZERO not advertised', P.NBD_CMD_WRITE_ZEROES, P.NBD_CMD_FLAG_FAST_ZERO, 0, 512, undefined, P.NBD_EINVAL],
    ['block status without contexts', P.NBD_CMD_BLOCK_STATUS, 0, 0, 4096, undefined, P.NBD_EINVAL],
    ['offset beyond 2^53', P.NBD_CMD_READ, 0, 2 ** 60, 512, undefined, P.NBD_EINVAL],
  ]
  let cookie = 10n
  for (const [what, type, flags, offset, length, payload, errno] of cases) {
    c.request(type, ++cookie, offset, length, flags, payload)
    const r = await c.readReply()
    t.same([r.cookie, r.kind === 'simple' ? r.error : -1], [cookie, errno], what)
  }
  c.request(P.NBD_CMD_FLUSH, ++cookie, 0, 0, P.NBD_CMD_FLAG_FUA)
  t.equal((await c.readReply()).kind === 'simple', true, 'FUA on FLUSH is accepted')
})

t.test('read-only exports answer EPERM to writes, trims and zeroes', async t => {
  const { connect, disk } = await serve(t, {}, true)
  const c = await connect()
  await c.start()
  const { flags } = await c.go('d', { structured: true })
  t.ok(flags & P.NBD_FLAG_READ_ONLY, 'READ_ONLY advertised')
  t.notOk(flags & P.NBD_FLAG_SEND_TRIM, 'TRIM not advertised')
  c.request(P.NBD_CMD_WRITE, 1n, 0, 512, 0, Buffer.alloc(512, 1))
  c.request(P.NBD_CMD_TRIM, 2n, 0, 512)
  c.request(P.NBD_CMD_WRITE_ZEROES, 3n, 0, 512)
  const errs = new Map<bigint, number>()
  for (let i = 0; i < 3; i++) {
    const r = await c.readFullReply()
    errs.set(r.cookie, r.error)
  }
  t.same([...errs.entries()].sort(), [[1n, P.NBD_EPERM], [2n, P.NBD_EPERM], [3n, P.NBD_EPERM]])
  t.equal(disk.data[0], 0, 'disk untouched')
})

t.test('bad magic, unknown client flags and over-long EXPORT_NAME close only that connection', async t => {
  const { connect } = await serve(t)
  const a = await connect()
  await a.start()
  await a.go('d')
  a.write(Buffer.alloc(28, 0xee)) // request with bad magic
  t.ok(await a.closedWithin(2000), 'bad request magic: closed')

  const b = await connect()
  await b.start()
  b.write(Buffer.concat([Buffer.from('NOTOPTS!'), u32(7), u32(0)]))
  t.ok(await b.closedWithin(2000), 'bad option magic: closed')

  const c = await connect()
  await c.start(0x80000001)
  t.ok(await c.closedWithin(2000), 'unknown client flags: closed')

  const d = await connect()
  await d.start(0) // not fixed newstyle
  t.ok(await d.closedWithin(2000), 'client without fixed newstyle: closed')

  const e = await connect()
  await e.start()
  e.write(optionRequest(P.NBD_OPT_EXPORT_NAME).subarray(0, 12))
  e.write(u32(1 << 30)) // a 1 GiB export name
  t.ok(await e.closedWithin(2000), 'oversized EXPORT_NAME: closed')

  const f = await connect()
  await f.start()
  f.sendOption(P.NBD_OPT_EXPORT_NAME, Buffer.from('nope'))
  t.ok(await f.closedWithin(2000), 'EXPORT_NAME of an unknown export: closed')
  await stillServes(t, connect)
})

t.test('garbage options get error replies and negotiation continues', async t => {
  const { connect } = await serve(t, { maxOptionBytes: 1024 })
  const c = await connect()
  await c.start()
  const expectations: [string, number, Buffer, number][] = [
    ['unknown option', 0xdeadbeef, Buffer.from('garbage'), P.NBD_REP_ERR_UNSUP],
    ['STARTTLS', P.NBD_OPT_STARTTLS, Buffer.alloc(0), P.NBD_REP_ERR_UNSUP],
    ['EXTENDED_HEADERS', P.NBD_OPT_EXTENDED_HEADERS, Buffer.alloc(0), P.NBD_REP_ERR_UNSUP],
    ['LIST with data', P.NBD_OPT_LIST, Buffer.from('x'), P.NBD_REP_ERR_INVALID],
    ['STRUCTURED_REPLY with data', P.NBD_OPT_STRUCTURED_REPLY, Buffer.from('x'), P.NBD_REP_ERR_INVALID],
    ['GO too short', P.NBD_OPT_GO, Buffer.from([0, 0]), P.NBD_REP_ERR_INVALID],
    ['GO with a name longer than the data', P.NBD_OPT_GO, Buffer.concat([u32(100), Buffer.alloc(2)]), P.NBD_REP_ERR_INVALID],
    ['GO with a wrong info count', P.NBD_OPT_GO, Buffer.concat([u32(1), Buffer.from('d'), Buffer.from([0, 9])]), P.NBD_REP_ERR_INVALID],
    ['INFO for an unknown export', P.NBD_OPT_INFO, Buffer.concat([u32(2), Buffer.from('zz'), Buffer.from([0, 0])]), P.NBD_REP_ERR_UNKNOWN],
    ['SET_META_CONTEXT before structured replies', P.NBD_OPT_SET_META_CONTEXT, Buffer.concat([u32(1), Buffer.from('d'), u32(0)]), P.NBD_REP_ERR_INVALID],
    ['option longer than the limit', 0x1234, Buffer.alloc(5000, 1), P.NBD_REP_ERR_TOO_BIG],
  ]
  for (const [what, option, data, type] of expectations) {
    const replies = await c.option(option, data)
    t.equal(replies[replies.length - 1]!.type, type, what)
  }
  await c.option(P.NBD_OPT_STRUCTURED_REPLY)
  const bad: [string, Buffer][] = [
    ['query count too large', Buffer.concat([u32(1), Buffer.from('d'), u32(0xffffffff)])],
    ['query runs past the data', Buffer.concat([u32(1), Buffer.from('d'), u32(1), u32(50), Buffer.from('base:')])],
    ['trailing bytes', Buffer.concat([u32(1), Buffer.from('d'), u32(0), Buffer.from('zz')])],
    ['query without a namespace', Buffer.concat([u32(1), Buffer.from('d'), u32(1), u32(4), Buffer.from('junk')])],
  ]
  for (const [what, data] of bad) {
    const replies = await c.option(P.NBD_OPT_LIST_META_CONTEXT, data)
    t.equal(replies[replies.length - 1]!.type, P.NBD_REP_ERR_INVALID, `LIST_META_CONTEXT, ${what}`)
  }
  const { size } = await c.go('d')
  t.equal(size, SIZE, 'GO still succeeds after the garbage')
  const abort = await connect()
  await abort.start()
  const ack = await abort.option(P.NBD_OPT_ABORT)
  t.equal(ack[0]!.type, P.NBD_REP_ACK, 'ABORT is acknowledged')
  t.ok(await abort.closedWithin(2000), 'and the connection closes')
})

t.test('too many options, or a handshake that never ends, close the connection', async t => {
  const { connect } = await serve(t, { maxOptions: 5, handshakeTimeoutMs: 300 })
  const c = await connect()
  await c.start()
  for (let i = 0; i < 5; i++) await c.option(P.NBD_OPT_LIST)
  c.sendOption(P.NBD_OPT_LIST)
  t.ok(await c.closedWithin(2000), 'sixth option: closed')
  const slow = await connect()
  await slow.start()
  t.ok(await slow.closedWithin(3000), 'idle handshake: closed after the timeout')
  const silent = await connect() // never even sends flags
  t.ok(await silent.closedWithin(3000), 'silent client: closed after the timeout')
})

t.test('in-flight limits: a client that floods requests without reading is throttled, then fully answered', async t => {
  const { connect, disk } = await serve(t, { maxInFlightRequests: 4, maxInFlightBytes: 1 << 20, maxQueuedReplyBytes: 1 << 20 })
  let concurrent = 0
  let peak = 0
  disk.hook = async () => {
    concurrent++
    peak = Math.max(peak, concurrent)
    await new Promise(r => setTimeout(r, 1))
    concurrent--
  }
  const c = await connect()
  await c.start()
  await c.go('d', { structured: true })
  const n = 300
  for (let i = 0; i < n; i++) c.request(P.NBD_CMD_READ, BigInt(i), (i % 64) * 65536, 65536)
  await new Promise(r => setTimeout(r, 200)) // let the server fill its queues while we do not read
  const seen = new Set<bigint>()
  for (let i = 0; i < n; i++) {
    const r = await c.readFullReply()
    t.equal(r.error, 0)
    seen.add(r.cookie)
  }
  t.equal(seen.size, n, 'every request answered once')
  t.ok(peak <= 4, `at most 4 disk operations at once (saw ${peak})`)
})
