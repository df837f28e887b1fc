/**
 * Writer process for the VHD crash trials (see vhd-crash-core.ts): node <bundle> <disk> <seed>. Issues the seed's
 * operations forever, printing "w <i>" before operation i and "f <i>" after each flush (every 4 operations);
 * it is meant to be killed.
 */
import { writeSync } from 'node:fs'
import { openDisk } from '../../src/formats/open.js'
import { crashOps } from './vhd-crash-core.js'

/**
 * One progress line, written with a blocking write(2) before the operation it announces: process.stdout may queue
 * a pipe write in the process, and a SIGKILL would then lose lines for operations that did reach the disk.
 */
function say(line: string): void {
  writeSync(1, `${line}\n`)
}

const [disk, seedText] = process.argv.slice(2)
const d = await openDisk(disk!)
say('ready')
let i = 0
for (const op of crashOps(Number(seedText))) {
  say(`w ${i}`)
  if (op.kind === 'write') await d.write(op.offset, Buffer.alloc(op.length, op.fill))
  else await d.writeZeroes(op.offset, op.length)
  if (i % 4 === 3) {
    await d.flush()
    say(`f ${i}`)
  }
  i++
}
