/**
 * Framing: a whole client session (flags, options, pipelined requests with a write payload, DISC) is fed to the
 * server split at every byte offset, and one byte at a time; the server's answers must be the same as when the
 * session arrives in one piece. Replies may come in any order, so they are compared as a set keyed by cookie.
 */
import t from 'tap'
import { Duplex } from 'node:stream'
import { NbdServer } from '../../src/nbd/server.js'
import * as P from '../../src/nbd/protocol.js'
import { MemoryDisk } from './memory-disk.js'
import { goRequest, metaRequest, optionRequest, requestHeader, u32 } from './raw-client.js'

/** A duplex whose readable side we push bytes into and whose writable side we collect. */
class ScriptedStream extends Duplex {
  readonly out: Buffer[] = []
  readonly finished: Promise<void>
  constructor() {
    super()
    this.finished = new Promise(resolve => this.once('finish', resolve))
  }
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.out.push(Buffer.from(chunk))
    cb()
  }
}

function session(): Buffer {
  const payload = Buffer.alloc(1024, 0xab)
  return Buffer.concat([
    u32(P.NBD_FLAG_C_FIXED_NEWSTYLE | P.NBD_FLAG_C_NO_ZEROES),
    optionRequest(P.NBD_OPT_LIST),
    optionRequest(P.NBD_OPT_STRUCTURED_REPLY),
    optionRequest(P.NBD_OPT_LIST_META_CONTEXT, metaRequest('d', [])),
    optionRequest(P.NBD_OPT_SET_META_CONTEXT, metaRequest('d', ['base:allocation'])),
    optionRequest(0x7777, Buffer.from('unknown option data')),
    optionRequest(P.NBD_OPT_INFO, goRequest('d', [P.NBD_INFO_NAME, P.NBD_INFO_BLOCK_SIZE])),
    optionRequest(P.NBD_OPT_GO, goRequest('d', [P.NBD_INFO_BLOCK_SIZE])),
    requestHeader(P.NBD_CMD_WRITE, 1n, 65536, payload.length, P.NBD_CMD_FLAG_FUA), payload,
    requestHeader(P.NBD_CMD_READ, 2n, 0, 8192),
    requestHeader(P.NBD_CMD_READ, 3n, 131072, 4096, P.NBD_CMD_FLAG_DF),
    requestHeader(P.NBD_CMD_BLOCK_STATUS, 4n, 0, 32768),
    requestHeader(P.NBD_CMD_FLUSH, 5n, 0, 0),
    requestHeader(P.NBD_CMD_TRIM, 6n, 196608, 4096),
    requestHeader(P.NBD_CMD_WRITE_ZEROES, 7n, 262144, 4096, P.NBD_CMD_FLAG_NO_HOLE),
    requestHeader(P.NBD_CMD_CACHE, 8n, 0, 4096),
    requestHeader(P.NBD_CMD_READ, 9n, 1 << 30, 512), // past the end: EINVAL
    requestHeader(P.NBD_CMD_DISC, 10n, 0, 0),
  ])
}

/** Cut the server's output into messages: greeting, option replies, then transmission replies by cookie. */
function messages(out: Buffer): string[] {
  const list: string[] = [out.subarray(0, 18).toString('hex')]
  let at = 18
  const transmission: string[] = []
  while (at < out.length) {
    if (out.readBigUInt64BE(at) === P.NBD_OPTION_REPLY_MAGIC) {
      const len = out.readUInt32BE(at + 16)
      list.push(out.subarray(at, at + 20 + len).toString('hex'))
      at += 20 + len
    } else if (out.readUInt32BE(at) === P.NBD_STRUCTURED_REPLY_MAGIC) {
      const len = out.readUInt32BE(at + 16)
      transmission.push(out.subarray(at, at + 20 + len).toString('hex'))
      at += 20 + len
    } else if (out.readUInt32BE(at) === P.NBD_SIMPLE_REPLY_MAGIC) {
      transmission.push(out.subarray(at, at + 16).toString('hex'))
      at += 16
    } else {
      throw new Error(`unparseable server output at ${at}`)
    }
  }
  return [...list, ...transmission.sort()]
}

async function runSession(chunks: Buffer[]): Promise<{ out: Buffer; disk: MemoryDisk }> {
  const disk = new MemoryDisk(1 << 20)
  await disk.write(0, Buffer.alloc(8192, 0x11))
  await disk.write(131072, Buffer.alloc(4096, 0x22))
  const server = new NbdServer([{ name: 'd', disk }])
  const stream = new ScriptedStream()
  server.handle(stream)
  for (const c of chunks) {
    stream.push(c)
    await new Promise(r => setImmediate(r))
  }
  await stream.finished
  stream.push(null)
  await server.close()
  return { out: Buffer.concat(stream.out), disk }
}

t.test('a session split at every byte gives the same answers', async t => {
  const script = session()
  const whole = await runSession([script])
  const reference = messages(whole.out)
  t.equal(reference.length, 1 + 15 + 9, 'greeting, 15 option replies, 9 transmission replies')
  t.ok(whole.disk.data.subarray(65536, 65536 + 1024).every(b => b === 0xab), 'the write landed')
  t.equal(whole.disk.fuaWrites, 1, 'FUA reached the disk')
  let mismatches = 0
  for (let cut = 1; cut < script.length; cut++) {
    const r = await runSession([script.subarray(0, cut), script.subarray(cut)])
    const m = messages(r.out)
    if (JSON.stringify(m) !== JSON.stringify(reference)) {
      mismatches++
      if (mismatches < 3) t.fail(`split at ${cut} gives different answers`)
    }
  }
  t.equal(mismatches, 0, `all ${script.length - 1} two-piece splits match`)
  const bytewise: Buffer[] = []
  for (let i = 0; i < script.length; i++) bytewise.push(script.subarray(i, i + 1))
  const one = await runSession(bytewise)
  t.same(messages(one.out), reference, 'one byte at a time matches')
})

t.test('answers carry the right content', async t => {
  const { out } = await runSession([session()])
  const m = messages(out).map(h => Buffer.from(h, 'hex'))
  const optionReplies = m.slice(1, 16)
  const types = optionReplies.map(r => r.readUInt32BE(12))
  t.equal(types.filter(x => x === P.NBD_REP_ERR_UNSUP).length, 1, 'the unknown option got ERR_UNSUP')
  const chunks = m.slice(16).filter(b => b.readUInt32BE(0) === P.NBD_STRUCTURED_REPLY_MAGIC)
  const byCookie = (c: bigint) => chunks.filter(b => b.readBigUInt64BE(8) === c)
  const read2 = byCookie(2n)
  t.equal(read2.length, 1, 'dense read is one chunk')
  t.equal(read2[0]!.readUInt16BE(6), P.NBD_REPLY_TYPE_OFFSET_DATA)
  t.ok(read2[0]!.subarray(28).every(b => b === 0x11), 'read data is right')
  const bs = byCookie(4n)
  t.equal(bs[0]!.readUInt16BE(6), P.NBD_REPLY_TYPE_BLOCK_STATUS)
  t.equal(bs[0]!.readUInt32BE(20), 1, 'context id 1')
  t.same([bs[0]!.readUInt32BE(24), bs[0]!.readUInt32BE(28)], [8192, 0], 'first extent: 8 KiB of data')
  t.same([bs[0]!.readUInt32BE(32), bs[0]!.readUInt32BE(36)], [24576, P.NBD_STATE_HOLE | P.NBD_STATE_ZERO], 'then a hole')
  t.equal(bs[0]!.readUInt32BE(16), 4 + 16, 'two descriptors')
  const errs = byCookie(9n)
  t.equal(errs[0]!.readUInt16BE(6), P.NBD_REPLY_TYPE_ERROR)
  t.equal(errs[0]!.readUInt32BE(20), P.NBD_EINVAL, 'read past the end is EINVAL')
})
