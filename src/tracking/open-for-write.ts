/**
 * How the engine opens a disk it is about to change. When change tracking is enabled on the disk, every write goes
 * through the tracking layer, so the engine's own writes (`hvcbt vhd write`, restores in place) are recorded and
 * tracking stays trusted; without tracking this is a plain read-write open. Every engine path that writes an
 * existing disk (vhd write, in-place restore) opens it here.
 */
import { EngineError } from '../engine/errors.js'
import { openDisk } from '../formats/open.js'
import type { VirtualDisk } from '../formats/virtual-disk.js'
import { TrackedDisk } from './tracked-disk.js'

export async function openDiskForWrite(path: string): Promise<VirtualDisk> {
  const disk = await openDisk(path, { readOnly: false })
  try {
    return await TrackedDisk.attach(path, disk)
  } catch (err) {
    if (err instanceof EngineError && err.category === 'ObjectNotFound') return disk // tracking not enabled
    await disk.close()
    throw err
  }
}
