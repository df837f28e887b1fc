import t from 'tap'
import { formatSize, parseSize } from '../../src/formats/size.js'

t.test('suffixes are powers of 1024', async t => {
  t.equal(parseSize('512'), 512)
  t.equal(parseSize('64K'), 65536)
  t.equal(parseSize('64k'), 65536)
  t.equal(parseSize('10G'), 10 * 2 ** 30)
  t.equal(parseSize('10GiB'), 10 * 2 ** 30)
  t.equal(parseSize('10GB'), 10 * 2 ** 30)
  t.equal(parseSize('1.5T'), 1.5 * 2 ** 40)
  t.equal(parseSize('2M'), 2 * 2 ** 20)
  t.equal(parseSize(4096), 4096)
})

t.test('bad sizes give clear errors', async t => {
  t.throws(() => parseSize('ten'), /invalid size 'ten': expected a number/)
  t.throws(() => parseSize('1.5'), /not a whole number/)
  t.throws(() => parseSize('-5'), /invalid size/)
  t.throws(() => parseSize('5X'), /invalid size/)
  t.throws(() => parseSize('5iB'), /needs a unit letter/)
  t.throws(() => parseSize('99999E'), /too large/)
  t.throws(() => parseSize(1.5), /whole number/)
  t.throws(() => parseSize('', 'block size'), /invalid block size ''/)
})

t.test('formatSize', async t => {
  t.equal(formatSize(100), '100 bytes')
  t.equal(formatSize(1536), '1.5 KiB')
  t.equal(formatSize(2 ** 30), '1 GiB')
})
