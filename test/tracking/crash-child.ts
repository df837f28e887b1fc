/**
 * Child process of the crash test: opens a raw image through TrackedDisk, creates a reference point, prints its id,
 * then writes (and zeroes, and trims) random ranges of the first half of the disk with 8 writers until it is
 * killed, checkpointing and creating further reference points now and then so the kill can land in any phase.
 * It prints `wrote` once its first data write has completed (the parent times the kill from there). The second
 * half is never written: a report that reaches into it would mean tracking fell back to "everything changed".
 * argv: <disk> <seed>.
 */
import { TrackedDisk } from '../../src/tracking/tracked-disk.js'
import { FileDisk } from './helpers.js'

const diskPath = process.argv[2]!
const disk = await TrackedDisk.attach(diskPath, FileDisk.open(diskPath))
const rp = await disk.createRefPoint()
process.stdout.write(`ready ${rp.id}\n`)

const sector = 512
const sectors = disk.size / sector / 2
let stop = false
let announced = false
async function writer(seed: number): Promise<void> {
  let x = seed
  const rnd = (n: number): number => { x = (Math.imul(x, 1664525) + 1013904223) >>> 0; return x % n }
  while (!stop) {
    const count = 1 + rnd(rnd(4) === 0 ? 512 : 16)
    const first = rnd(sectors - count)
    const kind = rnd(10)
    if (kind === 0) await disk.writeZeroes(first * sector, count * sector)
    else if (kind === 1) await disk.trim(first * sector, count * sector)
    else {
      const buf = new Uint8Array(count * sector)
      for (let i = 0; i < buf.length; i += 97) buf[i] = rnd(255) + 1
      await disk.write(first * sector, buf)
      if (!announced) {
        announced = true
        process.stdout.write('wrote\n')
      }
    }
    await new Promise(res => setTimeout(res, 2))
  }
}
async function housekeeping(): Promise<void> {
  let n = 0
  while (!stop) {
    await new Promise(res => setTimeout(res, 5 + (n % 20)))
    // Checkpoints and reference points overlap (a point created while a checkpoint writes its files).
    const cp = disk.store.checkpoint()
    if (++n % 3 === 0) {
      await new Promise(res => setTimeout(res, n % 4))
      await disk.createRefPoint()
    }
    await cp
  }
}
const seed = Number(process.argv[3] ?? Date.now()) >>> 0
await Promise.all([...Array.from({ length: 8 }, (_, i) => writer(seed + i * 7919)), housekeeping()])
stop = true
