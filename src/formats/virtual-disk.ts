/**
 * The one interface every storage layer speaks (after nbdkit's plugin verbs and QEMU's block drivers).
 *
 * VHDX, VHD, raw images, differencing chains, the tracking layer and checkpoint overlays are all VirtualDisks;
 * the NBD server and the backup reader see only this interface, never a format.
 *
 * Offsets and lengths are plain numbers, not bigint: every disk HvCbt handles is at most 64 TiB (2^46 bytes),
 * far inside Number.MAX_SAFE_INTEGER (2^53), and bigint arithmetic would dominate the cost of the hot paths.
 */

/** What a range of the virtual disk holds, as far as the layer knows without reading it. */
export type ExtentState =
  | 'data' // allocated in this layer; may still contain zeros
  | 'zero' // reads as zeros, known without reading (e.g. VHDX PAYLOAD_BLOCK_ZERO, a hole in a raw file)
  | 'unallocated' // not allocated anywhere in the chain: reads as zeros
  | 'parent' // not present in this layer: reads come from the parent disk

export interface Extent {
  offset: number
  length: number
  state: ExtentState
}

export interface WriteFlags {
  /** Force unit access: the write is durable when the promise resolves. */
  fua?: boolean
  /** writeZeroes only: keep the range allocated (NBD_CMD_FLAG_NO_HOLE); formats that cannot may ignore it. */
  noHole?: boolean
}

export interface OpenOptions {
  readOnly?: boolean
}

/**
 * Contract for every method: callers guarantee offset and length are multiples of `logicalSectorSize` and lie
 * inside [0, size). The disk checks nothing else on the hot path; `checkRange` below is the one shared check that
 * the public entry points (CLI, RPC, NBD) apply first.
 */
export interface VirtualDisk {
  /** Virtual size in bytes. */
  readonly size: number
  readonly logicalSectorSize: number
  readonly physicalSectorSize: number
  readonly readOnly: boolean
  /** Fill `into` with the bytes at `offset` (chain resolved). */
  read(offset: number, into: Uint8Array): Promise<void>
  write(offset: number, data: Uint8Array, flags?: WriteFlags): Promise<void>
  /** Make the range read as zeros, deallocating where the format allows. */
  writeZeroes(offset: number, length: number, flags?: WriteFlags): Promise<void>
  /** Hint that the range is no longer used; afterwards it reads as zeros or as its old contents. */
  trim(offset: number, length: number): Promise<void>
  /** Allocation map of [offset, offset+length), ordered, contiguous, adjacent extents of one state merged. */
  extents(offset: number, length: number): Promise<Extent[]>
  /** Make every completed write durable. */
  flush(): Promise<void>
  close(): Promise<void>
}

/** Throws a RangeError naming the problem if [offset, offset+length) is not a valid aligned range of `disk`. */
export function checkRange(disk: Pick<VirtualDisk, 'size' | 'logicalSectorSize'>, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new RangeError(`invalid range: offset ${offset}, length ${length}`)
  }
  if (offset + length > disk.size) {
    throw new RangeError(`range ${offset}+${length} ends past the end of the disk (${disk.size} bytes)`)
  }
  const s = disk.logicalSectorSize
  if (offset % s !== 0 || length % s !== 0) {
    throw new RangeError(`range ${offset}+${length} is not aligned to the ${s}-byte logical sector size`)
  }
}
