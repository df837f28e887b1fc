/**
 * Header-level facts about a VHD (what `hvcbt vhd info` shows): type, virtual size, block size, unique id and the
 * recorded parent path. Reads only the footer, the dynamic header and the parent locators, never the BAT, so it
 * is fast on any size of disk.
 *
 * Size: the footer's current size, which Hyper-V and libvhdi use. qemu instead sizes VHDs whose creator
 * application it does not know from the CHS geometry; `chsSizeBytes` is reported too so a caller can explain a
 * difference.
 */
import { open } from 'node:fs/promises'
import type { DiskInfo } from '../disk-info.js'
import { SECTOR, VhdDiskType, uuidText } from './vhd-layout.js'
import { loadVhdMetadata, type VhdMetadata } from './vhd-metadata.js'

export interface VhdInfo extends DiskInfo {
  format: 'vhd'
  creatorApp: string
  /** Size implied by the CHS geometry (cylinders x heads x sectors x 512). */
  chsSizeBytes: number
  /** Which footer was used: 'copy' means the footer at the end of the file is damaged. */
  footerSource: 'end' | 'copy'
}

export async function inspectVhd(path: string): Promise<VhdInfo> {
  const fh = await open(path, 'r')
  try {
    return vhdInfoFrom(await loadVhdMetadata(fh, path))
  } finally {
    await fh.close()
  }
}

export function vhdInfoFrom(m: VhdMetadata): VhdInfo {
  const f = m.footer
  return {
    path: m.path,
    format: 'vhd',
    type: f.diskType === VhdDiskType.Fixed ? 'fixed' : f.diskType === VhdDiskType.Dynamic ? 'dynamic' : 'differencing',
    virtualSizeBytes: f.currentSize,
    blockSizeBytes: m.dynamicHeader?.blockSize ?? 0,
    logicalSectorSizeBytes: SECTOR,
    physicalSectorSizeBytes: SECTOR,
    fileSizeBytes: m.fileSize,
    diskId: uuidText(f.uniqueId),
    parentPath: m.parentRefs[0]?.path ?? null,
    creatorApp: f.creatorApp.replace(/\0/g, ''),
    chsSizeBytes: f.cylinders * f.heads * f.sectorsPerTrack * SECTOR,
    footerSource: m.footerSource,
  }
}
