/**
 * Header-level facts about a VHDX file (what `hvcbt vhd info` and Get-VHD show), without reading the BAT.
 * A pending log is replayed in memory first, since it may rewrite the metadata region.
 */
import { open } from 'node:fs/promises'
import type { DiskInfo } from '../disk-info.js'
import { VhdxIo } from './vhdx-io.js'
import { replayLog } from './vhdx-log.js'
import { readHeaders, readRegionsAndMetadata, recordedParentPath, strictReporter } from './vhdx-structure.js'

export async function inspectVhdx(path: string): Promise<DiskInfo> {
  const fh = await open(path, 'r')
  try {
    const io = new VhdxIo(fh, path, (await fh.stat()).size)
    const report = strictReporter(path)
    const hdr = await readHeaders(io, report)
    await replayLog(io, hdr, { inMemory: true })
    const s = await readRegionsAndMetadata(io, hdr, report)
    const fp = s.fileParameters
    return {
      path,
      format: 'vhdx',
      type: fp.hasParent ? 'differencing' : fp.leaveBlockAllocated ? 'fixed' : 'dynamic',
      virtualSizeBytes: s.virtualSize,
      blockSizeBytes: fp.blockSizeBytes,
      logicalSectorSizeBytes: s.logicalSectorSize,
      physicalSectorSizeBytes: s.physicalSectorSize,
      fileSizeBytes: s.fileSize,
      diskId: s.diskId,
      parentPath: recordedParentPath(s.parentLocator),
    }
  } finally {
    await fh.close()
  }
}
