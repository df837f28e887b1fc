/**
 * `vhd check` for VHD: validate every structure and report each problem with its structure and file offset.
 * The checker never writes and never stops at the first problem when it can go on.
 *
 * Order: footer at the end (cookie, checksum, type, version, size) and, for dynamic/differencing files, the copy
 * at offset 0 (valid and identical to the end footer); the dynamic header (cookie, checksum, version, block size,
 * table size and place); parent locators (inside the file, not overlapping other structures); the BAT entry by
 * entry (inside the data area, sector-aligned, not over the footer copy / header / BAT / locators, no two blocks
 * sharing space); for a differencing disk, the parent (found, and with the unique id the child records).
 *
 * Unreadable (no valid footer anywhere, no usable dynamic header) throws the FormatError, which callers report as
 * "unreadable" (exit 2).
 */
import { open } from 'node:fs/promises'
import type { Problem } from '../vhdx/index.js'
import { readParentSpec, resolveParent } from '../chain.js'
import {
  BAT_UNALLOCATED,
  DYNAMIC_HEADER_SIZE,
  FOOTER_SIZE,
  SECTOR,
  VhdDiskType,
  bitmapBytesFor,
  decodeFooter,
} from './vhd-layout.js'
import { footerProblems, loadVhdMetadata, readExact } from './vhd-metadata.js'

/** How many BAT problems to list before summarizing. */
const MAX_BAT_PROBLEMS = 200

export async function checkVhd(path: string): Promise<Problem[]> {
  const problems: Problem[] = []
  const error = (structure: string, offset: number | null, message: string): void => void problems.push({ structure, offset, message, severity: 'error' })
  const warning = (structure: string, offset: number | null, message: string): void => void problems.push({ structure, offset, message, severity: 'warning' })
  const fh = await open(path, 'r')
  let meta
  try {
    meta = await loadVhdMetadata(fh, path)
    const f = meta.footer
    const endOffset = meta.fileSize - FOOTER_SIZE
    if (meta.footerSource === 'copy') {
      const raw = await readExact(fh, path, endOffset, FOOTER_SIZE, 'VHD footer')
      error('VHD footer', endOffset, `the end of the file holds no valid footer (${footerProblems(decodeFooter(raw), raw).join('; ')}); the copy at offset 0 is valid (a block append was interrupted; opening read-write repairs it)`)
    }
    if ((f.features & 2) === 0) warning('VHD footer', endOffset + 8, `features 0x${f.features.toString(16)} lack the reserved bit 0x2 that must always be set`)
    if (f.savedState !== 0) warning('VHD footer', endOffset + 84, 'saved-state flag is set: a virtual machine was saved with this disk attached')
    if (f.diskType === VhdDiskType.Fixed) {
      if (meta.fileSize !== f.currentSize + FOOTER_SIZE) {
        warning('VHD footer', endOffset, `fixed disk of ${f.currentSize} bytes in a ${meta.fileSize}-byte file (expected ${f.currentSize + FOOTER_SIZE})`)
      }
      return problems
    }
    if (meta.footerSource === 'end') {
      const copyRaw = await readExact(fh, path, 0, FOOTER_SIZE, 'VHD footer copy')
      const copyProblems = footerProblems(decodeFooter(copyRaw), copyRaw)
      if (copyProblems.length > 0) error('VHD footer copy', 0, copyProblems.join('; '))
      else {
        const endRaw = await readExact(fh, path, endOffset, FOOTER_SIZE, 'VHD footer')
        if (!endRaw.equals(copyRaw)) error('VHD footer copy', 0, 'differs from the footer at the end of the file')
      }
    }
    const dh = meta.dynamicHeader!
    const dhOffset = f.dataOffset
    // Fixed-position structures that blocks must not overlap.
    const structures: [number, number, string][] = [
      [0, FOOTER_SIZE, 'footer copy'],
      [dhOffset, DYNAMIC_HEADER_SIZE, 'dynamic header'],
      [dh.tableOffset, Math.ceil((Math.ceil(f.currentSize / dh.blockSize) * 4) / SECTOR) * SECTOR, 'BAT'],
    ]
    dh.locators.forEach((l, i) => {
      if (l.platformCode === 0) return
      const at = dhOffset + 576 + i * 24
      if (!(l.platformDataOffset >= FOOTER_SIZE && l.platformDataOffset + l.platformDataLength <= meta!.dataEnd)) {
        error(`VHD parent locator ${i}`, at, `data at offset ${l.platformDataOffset} (+${l.platformDataLength}) lies outside the data area`)
        return
      }
      structures.push([l.platformDataOffset, Math.max(l.platformDataLength, SECTOR), `parent locator ${i} data`])
    })
    for (let i = 0; i < structures.length; i++) {
      for (let j = i + 1; j < structures.length; j++) {
        const [a, al, an] = structures[i]!
        const [b, bl, bn] = structures[j]!
        if (a < b + bl && b < a + al) error('VHD layout', a, `${an} (${a}+${al}) overlaps ${bn} (${b}+${bl})`)
      }
    }
    if (f.diskType === VhdDiskType.Dynamic && dh.locators.some(l => l.platformCode !== 0)) {
      warning('VHD dynamic header', dhOffset + 576, 'a dynamic (non-differencing) disk has parent locators')
    }

    // BAT entries.
    const count = Math.ceil(f.currentSize / dh.blockSize)
    const raw = await readExact(fh, path, dh.tableOffset, count * 4, 'VHD BAT')
    const blockBytes = bitmapBytesFor(dh.blockSize) + dh.blockSize
    const blocks: [number, number][] = []
    let batProblems = 0
    const batError = (i: number, message: string): void => {
      if (++batProblems <= MAX_BAT_PROBLEMS) error(`VHD BAT entry ${i}`, dh.tableOffset + i * 4, message)
    }
    for (let i = 0; i < count; i++) {
      const e = raw.readUInt32BE(i * 4)
      if (e === BAT_UNALLOCATED) continue
      const start = e * SECTOR
      if (start + blockBytes > meta.dataEnd) {
        batError(i, `block at offset ${start} (+${blockBytes}) ends past the data area (${meta.dataEnd})`)
        continue
      }
      for (const [s, l, name] of structures) {
        if (start < s + l && s < start + blockBytes) batError(i, `block at offset ${start} (+${blockBytes}) overlaps the ${name} at ${s}`)
      }
      blocks.push([start, i])
    }
    blocks.sort((a, b) => a[0] - b[0])
    for (let k = 1; k < blocks.length; k++) {
      const [prev, pi] = blocks[k - 1]!
      const [cur, ci] = blocks[k]!
      if (cur === prev) batError(ci, `block offset ${cur} is also used by entry ${pi}`)
      else if (cur < prev + blockBytes) batError(ci, `block at ${cur} overlaps the block of entry ${pi} at ${prev}`)
    }
    if (batProblems > MAX_BAT_PROBLEMS) error('VHD BAT', dh.tableOffset, `${batProblems - MAX_BAT_PROBLEMS} more BAT problems not listed`)
    for (let i = count; i < Math.min(dh.maxTableEntries, count + 1024); i++) {
      if ((i + 1) * 4 + dh.tableOffset > meta.fileSize) break
      const b = await readExact(fh, path, dh.tableOffset + i * 4, 4, 'VHD BAT')
      if (b.readUInt32BE(0) !== BAT_UNALLOCATED) {
        warning(`VHD BAT entry ${i}`, dh.tableOffset + i * 4, 'entry past the end of the virtual disk is allocated')
        break
      }
    }
  } finally {
    await fh.close()
  }

  if (meta.footer.diskType === VhdDiskType.Differencing) {
    try {
      const spec = await readParentSpec(path, 'vhd')
      if (spec) {
        const found = await resolveParent(path, spec)
        if (found.note) warning('VHD parent', null, found.note)
      }
    } catch (err) {
      error('VHD parent', null, (err as Error).message)
    }
  }
  return problems
}
