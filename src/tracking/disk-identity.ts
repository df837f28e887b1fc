/**
 * What the tracking store remembers about its disk at clean close, to notice a change made outside tracking.
 *
 * - VHDX: the DataWriteGuid of the current header. MS-VHDX requires a writer to change it before the first
 *   user-visible data change, so a different value means someone wrote the disk; metadata-only updates (which
 *   change FileWriteGuid and the file's mtime) don't count. The file's device + inode catch a replaced file.
 * - VHD and raw files carry no such field: size + mtime + device + inode. A touch without data change also counts
 *   as a change, which errs on the safe side (untrusted -> full backup, never a missed change).
 */
import fsp from 'node:fs/promises'

export interface DiskIdentity {
  /** How the identity was taken. */
  kind: 'vhdx' | 'file'
  /** st_dev and st_ino of the disk file (as strings: bigint stat values). */
  dev: string
  ino: string
  /** File size in bytes and modification time in ms (compared for kind 'file' only). */
  sizeBytes: number
  mtimeMs: number
  /** VHDX only: DataWriteGuid of the current header, lower-case hex of the 16 bytes as stored. */
  dataWriteGuid?: string
}

const VHDX_HEADER_OFFSETS = [64 * 1024, 128 * 1024]
const VHDX_HEADER_BYTES = 4096

/** DataWriteGuid of the VHDX header with the highest SequenceNumber, or null if neither header is valid. */
async function vhdxDataWriteGuid(handle: fsp.FileHandle): Promise<string | null> {
  let best: { seq: bigint; guid: string } | null = null
  for (const off of VHDX_HEADER_OFFSETS) {
    const buf = Buffer.alloc(VHDX_HEADER_BYTES)
    const { bytesRead } = await handle.read(buf, 0, VHDX_HEADER_BYTES, off)
    if (bytesRead < VHDX_HEADER_BYTES || buf.toString('latin1', 0, 4) !== 'head') continue
    // The header's CRC-32C is not checked here: a torn header can only yield a different guid, which reads as
    // "changed outside tracking" (untrusted), the safe direction. The format layer validates headers on open.
    const seq = buf.readBigUInt64LE(8) // SequenceNumber: the higher valid one is current
    const guid = buf.subarray(32, 48).toString('hex') // DataWriteGuid
    if (!best || seq > best.seq) best = { seq, guid }
  }
  return best?.guid ?? null
}

export async function probeDiskIdentity(diskPath: string): Promise<DiskIdentity> {
  const handle = await fsp.open(diskPath, 'r')
  try {
    const st = await handle.stat({ bigint: true })
    const base = {
      dev: st.dev.toString(), ino: st.ino.toString(), sizeBytes: Number(st.size), mtimeMs: Number(st.mtimeMs),
    }
    const sig = Buffer.alloc(8)
    await handle.read(sig, 0, 8, 0)
    if (sig.toString('latin1') === 'vhdxfile') {
      const guid = await vhdxDataWriteGuid(handle)
      if (guid) return { kind: 'vhdx', ...base, dataWriteGuid: guid }
    }
    return { kind: 'file', ...base }
  } finally {
    await handle.close()
  }
}

/** Null when `now` is the same disk content as `recorded`, else the reason it is not. */
export function identityMismatch(recorded: DiskIdentity, now: DiskIdentity): string | null {
  if (recorded.dev !== now.dev || recorded.ino !== now.ino) {
    return `the disk file was replaced (device/inode ${recorded.dev}/${recorded.ino} at clean close, now ${now.dev}/${now.ino})`
  }
  if (recorded.kind !== now.kind) return `the disk file changed type (${recorded.kind} at clean close, now ${now.kind})`
  if (recorded.kind === 'vhdx') {
    if (recorded.dataWriteGuid !== now.dataWriteGuid) {
      return `the VHDX DataWriteGuid changed since tracking closed (${recorded.dataWriteGuid} -> ${now.dataWriteGuid}): ` +
        'the disk was written outside tracking'
    }
    return null
  }
  if (recorded.sizeBytes !== now.sizeBytes) {
    return `the disk file size changed outside tracking (${recorded.sizeBytes} -> ${now.sizeBytes} bytes)`
  }
  if (recorded.mtimeMs !== now.mtimeMs) {
    return `the disk file was modified outside tracking (mtime ${new Date(recorded.mtimeMs).toISOString()} at clean close, ` +
      `now ${new Date(now.mtimeMs).toISOString()})`
  }
  return null
}
