/**
 * Reading the VHDX header section and metadata: file identifier, the current header (CRC-32C and sequence-number
 * rule), both region tables, the metadata table and every system item, and the BAT geometry they imply.
 *
 * Two callers: the reader wants the first problem as a FormatError, the checker wants every problem. Both pass a
 * `Reporter`: `strictReporter` throws at the first error; the checker's collects and lets reading go on wherever
 * the rest still makes sense. A problem that makes the rest meaningless always throws.
 *
 * The log must be replayed between choosing the header and reading the regions (the log may rewrite the region
 * contents), so this is two steps: `readHeaders`, then `readRegionsAndMetadata`.
 */
import { FormatError } from '../../engine/errors.js'
import { hasSignature, readU32, readU64, showBytes } from './byte-cursor.js'
import type { VhdxIo } from './vhdx-io.js'
import {
  type BatGeometry, type FileParameters, type MetadataTableEntry, type ParentLocator, type RegionTableEntry, type VhdxHeader,
  FILE_IDENTIFIER_SIGNATURE, GUID_BAT_REGION, GUID_FILE_PARAMETERS, GUID_LOGICAL_SECTOR_SIZE, GUID_METADATA_REGION,
  GUID_PARENT_LOCATOR, GUID_PHYSICAL_SECTOR_SIZE, GUID_VIRTUAL_DISK_ID, GUID_VIRTUAL_DISK_SIZE,
  HEADER_OFFSETS, HEADER_SIZE, MAX_BLOCK_SIZE, MAX_VIRTUAL_DISK_SIZE, METADATA_TABLE_SIZE, MIN_BLOCK_SIZE, MiB,
  REGION_TABLE_OFFSETS, REGION_TABLE_SIZE, batGeometry, decodeFileParameters, decodeHeader, decodeMetadataTable,
  decodeParentLocator, decodeRegionTable, readCreator, readGuid, validateHeader, validateMetadataTable, validateRegionTable,
} from './vhdx-layout.js'

export type Severity = 'error' | 'warning'

/** One finding about a file: which structure, where, what. */
export interface Problem {
  structure: string
  offset: number | null
  message: string
  severity: Severity
}

/** Receives problems; throwing from it aborts the read. */
export type Reporter = (p: Problem) => void

export function strictReporter(path: string): Reporter {
  return p => {
    if (p.severity === 'error') throw new FormatError(path, p.structure, p.offset, p.message)
  }
}

export interface VhdxHeaders {
  creator: string
  /** Index (0 or 1) of the current header. */
  current: 0 | 1
  header: VhdxHeader
  /** Both slots as read; null where invalid. */
  slots: [VhdxHeader | null, VhdxHeader | null]
}

export interface VhdxStructure extends VhdxHeaders {
  fileSize: number
  regions: RegionTableEntry[]
  batRegion: RegionTableEntry
  metadataRegion: RegionTableEntry
  metadataItems: MetadataTableEntry[]
  fileParameters: FileParameters
  virtualSize: number
  logicalSectorSize: number
  physicalSectorSize: number
  diskId: string
  parentLocator: ParentLocator | null
  geometry: BatGeometry
}

export async function readHeaders(io: VhdxIo, report: Reporter): Promise<VhdxHeaders> {
  const fail = (structure: string, offset: number, message: string): never => {
    report({ structure, offset, message, severity: 'error' })
    throw new FormatError(io.path, structure, offset, message)
  }
  if (io.fileSize < MiB) fail('file', 0, `file is ${io.fileSize} bytes, shorter than the 1 MiB header section`)
  const id = await io.readNew(0, 8 + 512)
  if (!hasSignature(id, 0, FILE_IDENTIFIER_SIGNATURE)) fail('file identifier', 0, `signature ${showBytes(id, 0, 8)} is not "vhdxfile"`)
  const slots: [VhdxHeader | null, VhdxHeader | null] = [null, null]
  const images: Uint8Array[] = []
  for (const i of [0, 1] as const) {
    const b = await io.readNew(HEADER_OFFSETS[i], HEADER_SIZE)
    images.push(b)
    const problems = validateHeader(b)
    if (problems.length === 0) slots[i] = decodeHeader(b)
    for (const m of problems) report({ structure: `header ${i + 1}`, offset: HEADER_OFFSETS[i], message: m, severity: 'warning' })
  }
  const [a, b] = slots
  let current: 0 | 1
  if (a && b) {
    if (a.sequenceNumber === b.sequenceNumber && !Buffer.from(images[0]!).equals(Buffer.from(images[1]!))) {
      // Two different valid headers with one sequence number: the spec gives no way to choose.
      fail('header 2', HEADER_OFFSETS[1], `headers differ but share SequenceNumber ${a.sequenceNumber}`)
    }
    current = b.sequenceNumber > a.sequenceNumber ? 1 : 0
  } else if (a) current = 0
  else if (b) current = 1
  else return fail('header 1', HEADER_OFFSETS[0], 'neither header is valid (signature, CRC-32C, version or log fields)')
  const header = slots[current]!
  // The log must lie inside the file even when empty: the next writer puts entries there.
  if (!(header.logOffset + header.logLength <= io.fileSize)) {
    fail(`header ${current + 1}`, HEADER_OFFSETS[current], `log ${header.logOffset}+${header.logLength} ends past the end of the file (${io.fileSize} bytes)`)
  }
  return { creator: readCreator(id), current, header, slots }
}

export async function readRegionsAndMetadata(io: VhdxIo, hdr: VhdxHeaders, report: Reporter): Promise<VhdxStructure> {
  const err = (structure: string, offset: number | null, message: string) => report({ structure, offset, message, severity: 'error' })
  const fatal = (structure: string, offset: number | null, message: string): never => {
    err(structure, offset, message)
    throw new FormatError(io.path, structure, offset, message)
  }
  // Region tables: use the first valid copy; the copies must be identical.
  const tables: Array<Uint8Array | null> = []
  for (const i of [0, 1] as const) {
    const b = await io.readNew(REGION_TABLE_OFFSETS[i], REGION_TABLE_SIZE)
    const problems = validateRegionTable(b)
    // One bad copy is survivable (the other is used) but reported; both bad is fatal below.
    for (const m of problems) report({ structure: `region table ${i + 1}`, offset: REGION_TABLE_OFFSETS[i], message: m, severity: 'warning' })
    tables.push(problems.length === 0 ? b : null)
  }
  const table = tables[0] ?? tables[1]
  if (!table) return fatal('region table 1', REGION_TABLE_OFFSETS[0], 'neither region table copy is valid')
  if (tables[0] && tables[1] && !Buffer.from(tables[0]).equals(Buffer.from(tables[1]))) {
    report({ structure: 'region table 2', offset: REGION_TABLE_OFFSETS[1], message: 'the two region table copies differ (the first is used)', severity: 'warning' })
  }
  const rtOffset = table === tables[0] ? REGION_TABLE_OFFSETS[0] : REGION_TABLE_OFFSETS[1]
  const regions = decodeRegionTable(table).entries
  const bat = regions.find(r => r.guid === GUID_BAT_REGION)
  const meta = regions.find(r => r.guid === GUID_METADATA_REGION)
  for (const r of regions) {
    if (r !== bat && r !== meta && r.required) fatal('region table', rtOffset, `unknown required region ${r.guid}`)
    if (r.fileOffset + r.length > io.fileSize) err('region table', rtOffset, `region ${r.guid} (${r.fileOffset}+${r.length}) ends past the end of the file (${io.fileSize} bytes)`)
  }
  if (!bat) return fatal('region table', rtOffset, 'no BAT region')
  if (!meta) return fatal('region table', rtOffset, 'no metadata region')
  // Regions and the log must not overlap each other or the header section.
  const spans: Array<[number, number, string]> = regions.map(r => [r.fileOffset, r.length, `region ${r.guid}`])
  spans.push([hdr.header.logOffset, hdr.header.logLength, 'log'])
  for (let i = 0; i < spans.length; i++) {
    for (let j = i + 1; j < spans.length; j++) {
      const [s1, l1, n1] = spans[i]!
      const [s2, l2, n2] = spans[j]!
      if (s1 < s2 + l2 && s2 < s1 + l1) err('region table', rtOffset, `${n1} (${s1}+${l1}) overlaps ${n2} (${s2}+${l2})`)
    }
  }
  if (meta.fileOffset + meta.length > io.fileSize) fatal('metadata region', meta.fileOffset, 'region lies past the end of the file')

  // Metadata table and items.
  const metaBytes = await io.readNew(meta.fileOffset, Math.min(meta.length, 64 * MiB))
  for (const m of validateMetadataTable(metaBytes, metaBytes.length)) err('metadata table', meta.fileOffset, m)
  const items = decodeMetadataTable(metaBytes)
  const known = new Set([GUID_FILE_PARAMETERS, GUID_VIRTUAL_DISK_SIZE, GUID_VIRTUAL_DISK_ID, GUID_LOGICAL_SECTOR_SIZE, GUID_PHYSICAL_SECTOR_SIZE, GUID_PARENT_LOCATOR])
  for (const it of items) {
    if (it.isRequired && !it.isUser && !known.has(it.itemId)) fatal('metadata table', meta.fileOffset, `unknown required item ${it.itemId}`)
  }
  const item = (id: string, minLen: number, name: string): Uint8Array => {
    const e = items.find(x => x.itemId === id && !x.isUser)
    if (!e) return fatal('metadata table', meta.fileOffset, `required item ${name} (${id}) is missing`)
    if (e.length < minLen || e.offset < METADATA_TABLE_SIZE || e.offset + e.length > metaBytes.length) {
      return fatal(`metadata item ${name}`, meta.fileOffset + e.offset, `Offset ${e.offset} / Length ${e.length} invalid (need >= ${minLen} bytes inside the region)`)
    }
    return metaBytes.subarray(e.offset, e.offset + e.length)
  }
  const itemOffset = (id: string) => meta.fileOffset + (items.find(x => x.itemId === id)?.offset ?? 0)
  const fp = decodeFileParameters(item(GUID_FILE_PARAMETERS, 8, 'File Parameters'))
  const bs = fp.blockSizeBytes
  if (bs < MIN_BLOCK_SIZE || bs > MAX_BLOCK_SIZE || (bs & (bs - 1)) !== 0) {
    fatal('metadata item File Parameters', itemOffset(GUID_FILE_PARAMETERS), `BlockSize ${bs} is not a power of two between 1 MiB and 256 MiB`)
  }
  if (fp.rawFlags & ~3) err('metadata item File Parameters', itemOffset(GUID_FILE_PARAMETERS), `reserved flag bits 0x${(fp.rawFlags & ~3).toString(16)} set`)
  const lss = readU32(item(GUID_LOGICAL_SECTOR_SIZE, 4, 'Logical Sector Size'), 0)
  if (lss !== 512 && lss !== 4096) fatal('metadata item Logical Sector Size', itemOffset(GUID_LOGICAL_SECTOR_SIZE), `${lss} is neither 512 nor 4096`)
  const pss = readU32(item(GUID_PHYSICAL_SECTOR_SIZE, 4, 'Physical Sector Size'), 0)
  if (pss !== 512 && pss !== 4096) fatal('metadata item Physical Sector Size', itemOffset(GUID_PHYSICAL_SECTOR_SIZE), `${pss} is neither 512 nor 4096`)
  const size = readU64(item(GUID_VIRTUAL_DISK_SIZE, 8, 'Virtual Disk Size'), 0)
  if (!(size > 0 && size <= MAX_VIRTUAL_DISK_SIZE) || size % lss !== 0) {
    fatal('metadata item Virtual Disk Size', itemOffset(GUID_VIRTUAL_DISK_SIZE), `size ${size} is not a multiple of ${lss} between ${lss} bytes and 64 TiB`)
  }
  const diskId = readGuid(item(GUID_VIRTUAL_DISK_ID, 16, 'Virtual Disk ID'), 0)
  let parentLocator: ParentLocator | null = null
  if (fp.hasParent) {
    const { locator, problems } = decodeParentLocator(item(GUID_PARENT_LOCATOR, 20, 'Parent Locator'))
    for (const m of problems) err('metadata item Parent Locator', itemOffset(GUID_PARENT_LOCATOR), m)
    if (!locator.entries.has('parent_linkage')) err('metadata item Parent Locator', itemOffset(GUID_PARENT_LOCATOR), 'required key parent_linkage is missing')
    parentLocator = locator
  }
  const geometry = batGeometry(size, bs, lss, fp.hasParent)
  if (geometry.totalBatEntries * 8 > bat.length) {
    fatal('BAT region', bat.fileOffset, `region is ${bat.length} bytes, smaller than the ${geometry.totalBatEntries} entries (${geometry.totalBatEntries * 8} bytes) the disk needs`)
  }
  if (bat.fileOffset + geometry.totalBatEntries * 8 > io.fileSize) fatal('BAT region', bat.fileOffset, `BAT ends past the end of the file (${io.fileSize} bytes)`)
  return {
    ...hdr, fileSize: io.fileSize, regions, batRegion: bat, metadataRegion: meta, metadataItems: items, fileParameters: fp,
    virtualSize: size, logicalSectorSize: lss, physicalSectorSize: pss, diskId, parentLocator, geometry,
  }
}

/** Parent path as recorded: relative_path, then absolute_win32_path, then volume_path (null if none). */
export function recordedParentPath(loc: ParentLocator | null): string | null {
  if (!loc) return null
  return loc.entries.get('relative_path') ?? loc.entries.get('absolute_win32_path') ?? loc.entries.get('volume_path') ?? null
}
