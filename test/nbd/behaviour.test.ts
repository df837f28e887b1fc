/**
 * Server behaviour beyond framing: out-of-order replies, write ordering against FLUSH, the write observer, pluggable
 * metadata contexts (a fake dirty-bitmap family read by nbdinfo), structured reads with holes, and draining close().
 */
import t from 'tap'
import { NbdServer, type NbdExport } from '../../src/nbd/server.js'
import * as P from '../../src/nbd/protocol.js'
import type { MetaContextLister, MetaContextProvider } from '../../src/nbd/providers.js'
import { MemoryDisk } from './memory-disk.js'
import { metaRequest, RawClient } from './raw-client.js'
import { missing, run } from './helpers.js'

const SIZE = 8 << 20

async function serve(t: { teardown(fn: () => unknown): void }, exp: Partial<NbdExport> = {}) {
  const disk = (exp.disk as MemoryDisk | undefined) ?? new MemoryDisk(SIZE)
  const server = new NbdServer([{ name: 'd', ...exp, disk }])
  const { port } = await server.listen(0)
  const clients: RawClient[] = []
  t.teardown(async () => {
    for (const c of clients) c.close()
    await server.close()
  })
  return {
    disk,
    server,
    port,
    connect: async () => {
      const c = await RawClient.connect(port)
      clients.push(c)
      await c.start()
      return c
    },
  }
}

t.test('replies come back out of order when an earlier request is slower', async t => {
  const { connect, disk } = await serve(t)
  disk.hook = async (op, offset) => {
    if (op === 'read' && offset === 0) await new Promise(r => setTimeout(r, 100))
  }
  const c = await connect()
  await c.go('d')
  c.request(P.NBD_CMD_READ, 1n, 0, 4096)
  c.request(P.NBD_CMD_READ, 2n, 65536, 4096)
  const first = await c.readReply()
  const second = await c.readReply()
  t.same([first.cookie, second.cookie], [2n, 1n], 'the fast read is answered first')
  t.equal(first.kind === 'simple' && first.data.length, 4096, 'simple read reply carries the data')
})

t.test('FLUSH is answered after the writes acknowledged before it are flushed', async t => {
  const { connect, disk } = await serve(t)
  const events: string[] = []
  disk.hook = async (op, offset) => {
    events.push(`${op}-start@${offset}`)
    if (op === 'write') await new Promise(r => setTimeout(r, 20))
    events.push(`${op}-end@${offset}`)
  }
  const c = await connect()
  await c.go('d', { structured: true })
  c.request(P.NBD_CMD_WRITE, 1n, 0, 4096, 0, Buffer.alloc(4096, 1))
  c.request(P.NBD_CMD_WRITE, 2n, 8192, 4096, P.NBD_CMD_FLAG_FUA, Buffer.alloc(4096, 2))
  const acks = [await c.readFullReply(), await c.readFullReply()]
  t.same(acks.map(a => a.error), [0, 0])
  c.request(P.NBD_CMD_FLUSH, 3n, 0, 0)
  t.equal((await c.readFullReply()).error, 0)
  t.ok(events.indexOf('flush-start@0') > events.indexOf('write-end@8192'), 'flush ran after both writes completed')
  t.equal(disk.fuaWrites, 1, 'FUA passed to the disk')
  t.equal(disk.flushes, 1)
})

t.test('the write observer is awaited before the disk is written and before the reply', async t => {
  const seen: string[] = []
  let fail = false
  const observer = {
    async beforeWrite(offset: number, length: number, kind: 'write' | 'trim' | 'zero') {
      seen.push(`${kind}:${offset}+${length}`)
      await new Promise(r => setTimeout(r, 10))
      if (fail) throw new Error('journal unavailable')
      seen.push(`marked:${offset}`)
    },
  }
  const { connect, disk } = await serve(t, { writeObserver: observer })
  disk.hook = async (op, offset) => {
    if (op !== 'read' && op !== 'extents') seen.push(`disk-${op}:${offset}`)
  }
  const c = await connect()
  await c.go('d', { structured: true })
  c.request(P.NBD_CMD_WRITE, 1n, 4096, 512, 0, Buffer.alloc(512, 7))
  t.equal((await c.readFullReply()).error, 0)
  c.request(P.NBD_CMD_TRIM, 2n, 65536, 4096)
  t.equal((await c.readFullReply()).error, 0)
  c.request(P.NBD_CMD_WRITE_ZEROES, 3n, 131072, 8192)
  t.equal((await c.readFullReply()).error, 0)
  t.same(seen, [
    'write:4096+512', 'marked:4096', 'disk-write:4096',
    'trim:65536+4096', 'marked:65536', 'disk-trim:65536',
    'zero:131072+8192', 'marked:131072', 'disk-zero:131072',
  ], 'observer, then disk, then reply, for each kind')
  fail = true
  c.request(P.NBD_CMD_WRITE, 4n, 0, 512, 0, Buffer.alloc(512, 9))
  const r = await c.readFullReply()
  t.equal(r.error, P.NBD_EIO, 'observer failure: EIO')
  const chunk = r.chunks[0]!
  t.match(chunk.kind === 'chunk' ? chunk.payload.subarray(6).toString() : '', /journal unavailable/, 'with the reason')
  t.equal(disk.data[0], 0, 'and the disk was not written')
})

/** A fake dirty-bitmap family: rp-1 marks [1 MiB, 2 MiB) dirty, rp-2 marks nothing. */
function fakeBitmaps(failing = false): MetaContextLister {
  const bitmap = (name: string, dirty: [number, number] | null): MetaContextProvider => ({
    name: `qemu:dirty-bitmap:${name}`,
    async blockStatus(offset, length) {
      if (failing) throw new Error('tracking lost: journal missing')
      const out: { length: number; flags: number }[] = []
      const end = offset + length
      let at = offset
      const edges = dirty ? [dirty[0], dirty[1]] : []
      for (const e of [...edges, end]) {
        if (e <= at || e > end) continue
        const mid = (at + e) / 2
        out.push({ length: e - at, flags: dirty && mid >= dirty[0] && mid < dirty[1] ? P.NBD_STATE_DIRTY : 0 })
        at = e
      }
      return out
    },
  })
  return { prefix: 'qemu:dirty-bitmap:', list: async () => [bitmap('rp-1', [1 << 20, 2 << 20]), bitmap('rp-2', null)] }
}

t.test('metadata contexts from a lister: LIST, SET, BLOCK_STATUS, REQ_ONE', async t => {
  const { connect } = await serve(t, { metaContextListers: [fakeBitmaps()] })
  const c = await connect()
  await c.option(P.NBD_OPT_STRUCTURED_REPLY)
  const names = async (queries: string[]) =>
    (await c.option(P.NBD_OPT_LIST_META_CONTEXT, metaRequest('d', queries)))
      .filter(r => r.type === P.NBD_REP_META_CONTEXT)
      .map(r => r.data.subarray(4).toString())
      .sort()
  t.same(await names([]), ['base:allocation', 'qemu:dirty-bitmap:rp-1', 'qemu:dirty-bitmap:rp-2'], 'no query: everything')
  t.same(await names(['qemu:dirty-bitmap:']), ['qemu:dirty-bitmap:rp-1', 'qemu:dirty-bitmap:rp-2'], 'bitmap wildcard')
  t.same(await names(['base:']), ['base:allocation'], 'base: wildcard')
  t.same(await names(['qemu:']), ['qemu:dirty-bitmap:rp-1', 'qemu:dirty-bitmap:rp-2'], 'namespace wildcard')
  t.same(await names(['x-unknown:thing']), [], 'unknown namespace ignored')
  const set = await c.option(P.NBD_OPT_SET_META_CONTEXT, metaRequest('d', ['base:allocation', 'qemu:dirty-bitmap:rp-1', 'qemu:dirty-bitmap:nope', 'base:']))
  const selected = set.filter(r => r.type === P.NBD_REP_META_CONTEXT).map(r => [r.data.readUInt32BE(0), r.data.subarray(4).toString()])
  t.same(selected, [[1, 'base:allocation'], [2, 'qemu:dirty-bitmap:rp-1']], 'SET selects exact names only')
  await c.go('d', { structured: true })
  c.request(P.NBD_CMD_BLOCK_STATUS, 1n, 0, 4 << 20)
  const r = await c.readFullReply()
  t.equal(r.chunks.length, 2, 'one chunk per context')
  const byId = new Map(r.chunks.map(ch => {
    const p = ch.kind === 'chunk' ? ch.payload : Buffer.alloc(4)
    const d: number[][] = []
    for (let at = 4; at < p.length; at += 8) d.push([p.readUInt32BE(at), p.readUInt32BE(at + 4)])
    return [p.readUInt32BE(0), d]
  }))
  t.same(byId.get(2), [[1 << 20, 0], [1 << 20, 1], [2 << 20, 0]], 'dirty bitmap descriptors')
  t.same(byId.get(1), [[4 << 20, 3]], 'base:allocation: all hole+zero')
  c.request(P.NBD_CMD_BLOCK_STATUS, 2n, 512 << 10, 4 << 20, P.NBD_CMD_FLAG_REQ_ONE)
  const one = await c.readFullReply()
  for (const ch of one.chunks) {
    t.equal(ch.kind === 'chunk' && ch.payload.length, 12, 'REQ_ONE: exactly one descriptor')
  }
})

t.test('a provider that fails gives an error chunk, not a partial map', async t => {
  const { connect } = await serve(t, { metaContextListers: [fakeBitmaps(true)] })
  const c = await connect()
  await c.go('d', { structured: true, contexts: ['qemu:dirty-bitmap:rp-1'] })
  c.request(P.NBD_CMD_BLOCK_STATUS, 1n, 0, 1 << 20)
  const r = await c.readFullReply()
  t.equal(r.error, P.NBD_EIO)
  t.equal(r.chunks.length, 1, 'only the error chunk')
  const ch = r.chunks[0]!
  t.match(ch.kind === 'chunk' ? ch.payload.toString() : '', /tracking lost/, 'the reason reaches the client')
})

t.test('nbdinfo reads a dirty-bitmap context and base:allocation', { skip: missing('nbdinfo') }, async t => {
  const disk = new MemoryDisk(SIZE)
  await disk.write(3 << 20, Buffer.alloc(65536, 1))
  const { port } = await serve(t, { disk, metaContextListers: [fakeBitmaps()] })
  const uri = `nbd://127.0.0.1:${port}/d`
  const map = JSON.parse(await run('nbdinfo', ['--json', '--map=qemu:dirty-bitmap:rp-1', uri])) as { offset: number; length: number; type: number }[]
  t.same(map.filter(m => m.type & 1).map(m => [m.offset, m.length]), [[1 << 20, 1 << 20]], 'dirty range as the provider says')
  const alloc = JSON.parse(await run('nbdinfo', ['--json', '--map', uri])) as { offset: number; length: number; type: number }[]
  t.same(alloc.filter(m => m.type === 0).map(m => [m.offset, m.length]), [[3 << 20, 65536]], 'the written 64 KiB is data')
  const list = await run('nbdinfo', ['--list', uri])
  t.match(list, /qemu:dirty-bitmap:rp-2/, 'nbdinfo --list shows the bitmaps')
})

t.test('structured reads describe holes with OFFSET_HOLE; DF forces one data chunk', async t => {
  const { connect, disk } = await serve(t)
  await disk.write(8192, Buffer.alloc(4096, 0x33))
  const c = await connect()
  await c.go('d', { structured: true })
  c.request(P.NBD_CMD_READ, 1n, 0, 16384)
  const r = await c.readFullReply()
  const shape = r.chunks.map(ch => (ch.kind === 'chunk' ? [ch.type, Number(ch.payload.readBigUInt64BE(0)), ch.flags] : []))
  t.same(shape, [
    [P.NBD_REPLY_TYPE_OFFSET_HOLE, 0, 0],
    [P.NBD_REPLY_TYPE_OFFSET_DATA, 8192, 0],
    [P.NBD_REPLY_TYPE_OFFSET_HOLE, 12288, P.NBD_REPLY_FLAG_DONE],
  ], 'hole, data, hole (DONE on the last)')
  c.request(P.NBD_CMD_READ, 2n, 0, 16384, P.NBD_CMD_FLAG_DF)
  const df = await c.readFullReply()
  t.equal(df.chunks.length, 1, 'DF: one chunk')
  const only = df.chunks[0]!
  t.ok(only.kind === 'chunk' && only.payload.subarray(8 + 8192, 8 + 12288).every(b => b === 0x33), 'with the data in place')
  const knows = await connect()
  await knows.go('d', { structured: true, contexts: ['base:allocation'] })
  knows.request(P.NBD_CMD_READ, 3n, 0, 16384)
  const dense = await knows.readFullReply()
  t.equal(dense.chunks.length, 1, 'a client that selected base:allocation gets one data chunk (it knows the holes)')
})

t.test('close() answers in-flight requests before closing connections; DISC waits for in-flight writes', async t => {
  const disk = new MemoryDisk(SIZE)
  const server = new NbdServer([{ name: 'd', disk }])
  const { port } = await server.listen(0)
  const c = await RawClient.connect(port)
  await c.start()
  await c.go('d')
  disk.hook = async op => {
    if (op === 'write') await new Promise(r => setTimeout(r, 150))
  }
  c.request(P.NBD_CMD_WRITE, 1n, 0, 512, 0, Buffer.alloc(512, 4))
  await new Promise(r => setTimeout(r, 30))
  const closing = server.close()
  const reply = await c.readReply()
  t.same([reply.cookie, reply.kind === 'simple' && reply.error], [1n, 0], 'the in-flight write was answered')
  t.ok(await c.closedWithin(2000), 'then the connection closed')
  await closing
  t.equal(disk.data[0], 4, 'and the write landed')
  t.equal(server.connectionCount, 0)
  const refused = await RawClient.connect(port).then(() => 'connected', () => 'refused')
  t.equal(refused, 'refused', 'no longer listening')

  const server2 = new NbdServer([{ name: 'd', disk }])
  const { port: port2 } = await server2.listen(0)
  t.teardown(() => server2.close())
  const d = await RawClient.connect(port2)
  await d.start()
  await d.go('d')
  d.request(P.NBD_CMD_WRITE, 5n, 4096, 512, 0, Buffer.alloc(512, 5))
  d.request(P.NBD_CMD_DISC, 6n, 0, 0)
  const r5 = await d.readReply()
  t.equal(r5.cookie, 5n, 'write before DISC answered')
  t.ok(await d.closedWithin(2000), 'server closed after DISC')
  t.equal(disk.data[4096], 5)
})

t.test('NBD_OPT_EXPORT_NAME: padding unless NO_ZEROES; earlier negotiation still applies', async t => {
  const disk = new MemoryDisk(SIZE)
  const server = new NbdServer([{ name: 'd', disk }])
  const { port } = await server.listen(0)
  t.teardown(() => server.close())
  const padded = await RawClient.connect(port)
  await padded.start(P.NBD_FLAG_C_FIXED_NEWSTYLE) // without NO_ZEROES
  padded.sendOption(P.NBD_OPT_EXPORT_NAME, Buffer.from('d'))
  const reply = await padded.read(10 + 124)
  t.equal(Number(reply.readBigUInt64BE(0)), SIZE, 'size')
  t.ok(reply.subarray(10).every(b => b === 0), '124 zero bytes follow')
  padded.request(P.NBD_CMD_READ, 1n, 0, 512)
  const r = await padded.readReply()
  t.same([r.kind, r.data.length], ['simple', 512], 'simple replies without structured negotiation')
  padded.close()

  const s = await RawClient.connect(port)
  await s.start()
  await s.option(P.NBD_OPT_STRUCTURED_REPLY)
  s.structured = true
  await s.option(P.NBD_OPT_SET_META_CONTEXT, metaRequest('d', ['base:allocation']))
  s.sendOption(P.NBD_OPT_EXPORT_NAME, Buffer.from('d'))
  const short = await s.read(10)
  t.ok(short.readUInt16BE(8) & P.NBD_FLAG_SEND_DF, 'DF advertised: structured replies are on')
  s.request(P.NBD_CMD_BLOCK_STATUS, 2n, 0, 65536)
  const bs = await s.readFullReply()
  t.equal(bs.error, 0, 'block status works after EXPORT_NAME')
  t.equal(bs.chunks[0]!.kind === 'chunk' && bs.chunks[0]!.type, P.NBD_REPLY_TYPE_BLOCK_STATUS)
  s.close()
})

t.test('requests already received when close() begins are answered ESHUTDOWN', async t => {
  const disk = new MemoryDisk(SIZE)
  const server = new NbdServer([{ name: 'd', disk }], { maxInFlightRequests: 1 })
  const { port } = await server.listen(0)
  const c = await RawClient.connect(port)
  await c.start()
  await c.go('d', { structured: true })
  disk.hook = async op => {
    if (op === 'write') await new Promise(r => setTimeout(r, 150))
  }
  c.request(P.NBD_CMD_WRITE, 1n, 0, 512, 0, Buffer.alloc(512, 8))
  c.request(P.NBD_CMD_READ, 2n, 0, 512) // waits behind the in-flight limit of 1
  await new Promise(r => setTimeout(r, 50))
  const closing = server.close()
  const replies = [await c.readFullReply(), await c.readFullReply()]
  const byCookie = new Map(replies.map(r => [r.cookie, r.error]))
  t.equal(byCookie.get(1n), 0, 'the in-flight write completes')
  t.equal(byCookie.get(2n), P.NBD_ESHUTDOWN, 'the queued read gets ESHUTDOWN')
  t.ok(await c.closedWithin(2000), 'then the connection closes')
  await closing
  t.equal(disk.data[0], 8)
})
