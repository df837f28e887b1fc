/** Header-level facts about a disk file, shaped after Hyper-V's Get-VHD (sizes carry their unit). */
export type DiskFormat = 'vhdx' | 'vhd' | 'raw'
export type DiskType = 'fixed' | 'dynamic' | 'differencing'

export interface DiskInfo {
  path: string
  format: DiskFormat
  type: DiskType
  virtualSizeBytes: number
  /** VHDX/VHD block size; 0 for raw and fixed VHD. */
  blockSizeBytes: number
  logicalSectorSizeBytes: number
  physicalSectorSizeBytes: number
  fileSizeBytes: number
  /** VHDX Virtual Disk ID or VHD unique id, as a lower-case GUID; null for raw. */
  diskId: string | null
  /** Parent path as recorded in the file (differencing only), else null. */
  parentPath: string | null
}
