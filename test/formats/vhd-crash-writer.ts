/**
 * Writer process for the VHD crash trials (see vhd-crash-core.ts): node <bundle> <disk> <seed>. Issues the seed's
 * operations forever, printing "w <i>" before operation i and "f <i>" after each flush (every 4 operations);
 * it is meant to be killed.
 */
import { openDisk } from '../../src/formats/open.js'
import { crashOps } from './vhd-crash-core.js'

const [disk, seedText] = process.argv.slice(2)
const d = await openDisk(disk!)
process.stdout.write('ready\n')
let i = 0
for (const op of crashOps(Number(seedText))) {
  process.stdout.write(`w ${i}\n`)
  if (op.kind === 'write') await d.write(op.offset, Buffer.alloc(op.length, op.fill))
  else await d.writeZeroes(op.offset, op.length)
  if (i % 4 === 3) {
    await d.flush()
    process.stdout.write(`f ${i}\n`)
  }
  i++
}
