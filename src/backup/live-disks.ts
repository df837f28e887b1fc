/**
 * Disks that are live in this engine (exported for writing over NBD), so a backup can take a consistent point in
 * time while the guest keeps writing.
 *
 * The engine's backup methods register an NBD export hook (src/engine/methods/backup.ts) that wraps every writable
 * export's disk, already wrapped by the tracking layer (TrackedDisk), in a CheckpointOverlay and records it here
 * with the export's open tracking store. A backup of such a disk then:
 *   1. opens a checkpoint on the overlay whose freeze step creates the tracking reference point, so "the changes up
 *      to this backup" and "the content this backup reads" are cut at the same instant, with no write in between;
 *   2. reads through the checkpoint view (copy-before-write keeps the content of that instant while writes go on);
 *   3. closes the checkpoint (the side file next to the disk is deleted).
 * Writes made during the backup land after the reference point, so the next backup picks them up.
 */
import type { CheckpointOverlay } from '../tracking/checkpoint-overlay.js'
import type { TrackingStore } from '../tracking/store.js'

export interface LiveDisk {
  /** Copy-before-write layer every write of the export passes through. */
  overlay: CheckpointOverlay
  /** The export's open tracking store (null when the disk is not tracked or tracking is untrusted at open). */
  store: TrackingStore | null
}

const live = new Map<string, LiveDisk>()

/** Record a live disk under its real path; returns the function that forgets it (call at export stop). */
export function registerLiveDisk(realPath: string, entry: LiveDisk): () => void {
  live.set(realPath, entry)
  return () => {
    if (live.get(realPath) === entry) live.delete(realPath)
  }
}

export function liveDisk(realPath: string): LiveDisk | undefined {
  return live.get(realPath)
}
