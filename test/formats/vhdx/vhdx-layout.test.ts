import t from 'tap'
import { crc32c, crc32cWithZeroedField } from '../../../src/formats/crc32c.js'
import {
  GUID_BAT_REGION, batEncode, batFileOffsetMB, batGeometry, bitmapBatIndex, decodeHeader, decodeParentLocator,
  decodeRegionTable, encodeHeader, encodeParentLocator, encodeRegionTable, normalizeGuid, payloadBatIndex, readGuid,
  validateHeader, validateRegionTable, writeGuid,
} from '../../../src/formats/vhdx/vhdx-layout.js'
import { readU64, writeU64 } from '../../../src/formats/vhdx/byte-cursor.js'

t.test('CRC-32C matches the RFC 3720 vectors', async t => {
  t.equal(crc32c(new Uint8Array(32)), 0x8a9136aa)
  t.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43)
  t.equal(crc32c(Buffer.from('123456789')), 0xe3069283)
  const inc = Uint8Array.from({ length: 32 }, (_, i) => i)
  t.equal(crc32c(inc), 0x46dd794e)
  // Incremental computation equals one pass, at every split point.
  const data = Uint8Array.from({ length: 100 }, (_, i) => (i * 37) & 0xff)
  for (let k = 0; k <= data.length; k++) t.equal(crc32c(data.subarray(k), crc32c(data.subarray(0, k))), crc32c(data))
  const withField = Buffer.from(data)
  withField.writeUInt32LE(0xdeadbeef, 4)
  const zeroed = Buffer.from(withField)
  zeroed.writeUInt32LE(0, 4)
  t.equal(crc32cWithZeroedField(withField, 4), crc32c(zeroed))
})

t.test('GUIDs are stored Microsoft-style', async t => {
  const b = new Uint8Array(16)
  writeGuid(b, 0, GUID_BAT_REGION)
  t.same([...b.subarray(0, 4)], [0x66, 0x77, 0xc2, 0x2d], 'Data1 little-endian')
  t.equal(readGuid(b, 0), GUID_BAT_REGION)
  t.equal(normalizeGuid('{2DC27766-F623-4200-9D64-115E9BFD4A08}'), GUID_BAT_REGION)
  t.equal(normalizeGuid('nope'), null)
  t.throws(() => writeGuid(b, 0, 'xyz'))
})

t.test('headers and region tables round-trip and validate', async t => {
  const h = {
    sequenceNumber: 0xffff_ffff_ffffn, fileWriteGuid: '11111111-2222-3333-4444-555555555555',
    dataWriteGuid: '66666666-7777-8888-9999-aaaaaaaaaaaa', logGuid: '00000000-0000-0000-0000-000000000000',
    logVersion: 0, version: 1, logLength: 1 << 20, logOffset: 1 << 20,
  }
  const img = encodeHeader(h)
  t.same(validateHeader(img), [])
  t.match(decodeHeader(img), h)
  img[200] = 1
  t.match(validateHeader(img), [/CRC-32C mismatch/])
  const rt = encodeRegionTable([{ guid: GUID_BAT_REGION, fileOffset: 3 << 20, length: 1 << 20, required: true }])
  t.same(validateRegionTable(rt), [])
  t.match(decodeRegionTable(rt).entries, [{ guid: GUID_BAT_REGION, fileOffset: 3 << 20, length: 1 << 20, required: true }])
})

t.test('parent locator round-trips and rejects entries outside the item', async t => {
  const img = encodeParentLocator([['parent_linkage', '{abc}'], ['relative_path', '..\\base.vhdx']])
  const { locator, problems } = decodeParentLocator(img)
  t.same(problems, [])
  t.equal(locator.entries.get('relative_path'), '..\\base.vhdx')
  const bad = Buffer.from(img)
  bad.writeUInt32LE(100000, 20) // KeyOffset of entry 0
  t.match(decodeParentLocator(bad).problems, [/outside the item/])
  t.match(decodeParentLocator(bad.subarray(0, 10)).problems, [/shorter/])
})

t.test('BAT geometry and interleave follow the spec examples', async t => {
  t.equal(batGeometry(1 << 30, 32 << 20, 512, false).chunkRatio, 128)
  t.equal(batGeometry(1 << 30, 1 << 20, 512, false).chunkRatio, 4096)
  t.equal(batGeometry(1 << 30, 1 << 20, 4096, false).chunkRatio, 32768)
  const g = batGeometry(10 * 2 ** 30, 32 << 20, 512, false) // 320 blocks, ratio 128
  t.equal(g.payloadBlocks, 320)
  t.equal(g.totalBatEntries, 320 + 2)
  t.equal(batGeometry(10 * 2 ** 30, 32 << 20, 512, true).totalBatEntries, 3 * 129)
  t.equal(payloadBatIndex(127, 128), 127)
  t.equal(payloadBatIndex(128, 128), 129)
  t.equal(bitmapBatIndex(0, 128), 128)
  t.equal(bitmapBatIndex(1, 128), 257)
  const [lo, hi] = batEncode(6, 5000)
  t.equal(lo & 7, 6)
  t.equal(batFileOffsetMB(lo, hi), 5000)
  const [lo2, hi2] = batEncode(6, 2 ** 40)
  t.equal(batFileOffsetMB(lo2, hi2), 2 ** 40)
})

t.test('u64 fields past 2^53 read as NaN so range checks fail closed', async t => {
  const b = new Uint8Array(8)
  writeU64(b, 0, 2 ** 52 + 3)
  t.equal(readU64(b, 0), 2 ** 52 + 3)
  b.fill(0xff)
  t.ok(Number.isNaN(readU64(b, 0)))
})
