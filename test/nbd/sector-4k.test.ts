/**
 * An export of a VHDX with 4096-byte logical sectors and of a differencing chain: the minimum block size follows the
 * disk, requests not aligned to it get EINVAL, and a differencing disk's base:allocation describes the whole chain.
 */
import t from 'tap'
import path from 'node:path'
import { createDisk } from '../../src/formats/create.js'
import { openDisk, parentOf, resolvedExtents } from '../../src/formats/open.js'
import { NbdServer } from '../../src/nbd/server.js'
import * as P from '../../src/nbd/protocol.js'
import type { VirtualDisk } from '../../src/formats/virtual-disk.js'
import { RawClient } from './raw-client.js'
import { MiB, missing, run, tempDir } from './helpers.js'

async function serve(t: { teardown(fn: () => unknown): void }, disk: VirtualDisk) {
  const server = new NbdServer([{ name: 'd', disk }])
  const { port } = await server.listen(0)
  t.teardown(async () => {
    await server.close()
    await disk.close()
  })
  return port
}

t.test('4096-byte logical sectors: minimum block 4096, 512-byte requests refused', async t => {
  const dir = tempDir(t)
  const file = path.join(dir, 'four-k.vhdx')
  await createDisk(file, { format: 'vhdx', type: 'dynamic', sizeBytes: 16 * MiB, logicalSectorSize: 4096 })
  const disk = await openDisk(file)
  t.equal(disk.logicalSectorSize, 4096)
  const port = await serve(t, disk)
  const c = await RawClient.connect(port)
  t.teardown(() => c.close())
  await c.start()
  await c.option(P.NBD_OPT_STRUCTURED_REPLY)
  c.structured = true
  const info = await c.option(P.NBD_OPT_INFO, Buffer.concat([Buffer.from([0, 0, 0, 1]), Buffer.from('d'), Buffer.from([0, 1, 0, 3])]))
  const bs = info.find(r => r.type === P.NBD_REP_INFO && r.data.readUInt16BE(0) === P.NBD_INFO_BLOCK_SIZE)!
  t.same([bs.data.readUInt32BE(2), bs.data.readUInt32BE(6)], [4096, 4096], 'minimum and preferred block 4096')
  await c.go('d')
  c.request(P.NBD_CMD_WRITE, 1n, 512, 512, 0, Buffer.alloc(512, 1))
  t.equal((await c.readFullReply()).error, P.NBD_EINVAL, '512-byte write refused')
  c.request(P.NBD_CMD_WRITE, 2n, 8192, 4096, 0, Buffer.alloc(4096, 2))
  t.equal((await c.readFullReply()).error, 0, '4096-byte write accepted')
  c.request(P.NBD_CMD_READ, 3n, 8192, 4096, P.NBD_CMD_FLAG_DF)
  const r = await c.readFullReply()
  const chunk = r.chunks[0]!
  t.ok(chunk.kind === 'chunk' && chunk.payload.subarray(8).every(b => b === 2), 'and reads back')
})

t.test('a differencing chain exports its resolved allocation', { skip: missing('nbdinfo') }, async t => {
  const dir = tempDir(t)
  const parent = path.join(dir, 'parent.vhdx')
  const child = path.join(dir, 'child.avhdx')
  await createDisk(parent, { format: 'vhdx', type: 'dynamic', sizeBytes: 16 * MiB, blockSizeBytes: MiB })
  const p = await openDisk(parent)
  await p.write(2 * MiB, Buffer.alloc(MiB, 0x11))
  await p.close()
  await createDisk(child, { format: 'vhdx', parentPath: parent, blockSizeBytes: MiB })
  const c = await openDisk(child)
  await c.write(6 * MiB, Buffer.alloc(MiB, 0x22))
  t.ok(parentOf(c), 'opened as a chain')
  // what nbd.serve does for a chain: extents resolved through the parents
  const port = await serve(t, { ...wrap(c), extents: (o, l) => resolvedExtents(c, o, l) })
  const map = JSON.parse(await run('nbdinfo', ['--json', '--map', `nbd://127.0.0.1:${port}/d`])) as { offset: number; length: number; type: number }[]
  const data = map.filter(m => (m.type & 1) === 0).map(m => [m.offset, m.length])
  t.same(data, [[2 * MiB, MiB], [6 * MiB, MiB]], 'data from the parent and from the child, holes elsewhere')
})

/** A plain VirtualDisk object delegating to `d` (so a test can replace one method). */
function wrap(d: VirtualDisk): VirtualDisk {
  return {
    size: d.size,
    logicalSectorSize: d.logicalSectorSize,
    physicalSectorSize: d.physicalSectorSize,
    readOnly: d.readOnly,
    read: (o, b) => d.read(o, b),
    write: (o, b, f) => d.write(o, b, f),
    writeZeroes: (o, l, f) => d.writeZeroes(o, l, f),
    trim: (o, l) => d.trim(o, l),
    extents: (o, l) => d.extents(o, l),
    flush: () => d.flush(),
    close: () => d.close(),
  }
}
