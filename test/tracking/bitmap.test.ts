import t from 'tap'
import { BitmapFormatError, DenseBitmap } from '../../src/tracking/bitmap.js'

/** Deterministic PRNG so a failing seed can be replayed. */
function rng(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6d2b79f5) >>> 0
    let x = s
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

function modelRuns(set: Set<number>, from: number, to: number): Array<[number, number]> {
  const out: Array<[number, number]> = []
  let start = -1
  for (let b = from; b <= to; b++) {
    const on = b < to && set.has(b)
    if (on && start < 0) start = b
    if (!on && start >= 0) { out.push([start, b - start]); start = -1 }
  }
  return out
}

t.test('set, clear, test, count on word boundaries', async t => {
  const bm = new DenseBitmap(100)
  bm.setRange(30, 40) // crosses two word boundaries
  t.equal(bm.count(), 40)
  t.ok(bm.test(30)); t.ok(bm.test(69)); t.notOk(bm.test(29)); t.notOk(bm.test(70))
  t.ok(bm.allSet(30, 40)); t.notOk(bm.allSet(29, 2))
  bm.clearRange(32, 32)
  t.same(bm.runs(), [[30, 2], [64, 6]])
  bm.setRange(90, 1000) // clipped to the end
  t.equal(bm.count(), 2 + 6 + 10)
  t.equal(bm.words[3]! >>> 4, 0, 'bits past the end stay zero')
  t.notOk(bm.test(-1)); t.notOk(bm.test(100))
})

t.test('runs across all-ones and all-zero words, and sub-ranges', async t => {
  const bm = new DenseBitmap(32 * 10)
  bm.setRange(5, 32 * 4) // spans full words
  bm.setRange(32 * 8, 32 * 2) // ends exactly at the end
  t.same(bm.runs(), [[5, 128], [256, 64]])
  t.same(bm.runs(10, 20), [[10, 10]])
  t.same(bm.runs(250, 300), [[256, 44]])
  t.same(bm.runs(300, 300), [])
})

t.test('randomized model check against a Set', async t => {
  for (let seed = 1; seed <= 60; seed++) {
    const r = rng(seed)
    const n = 1 + Math.floor(r() * 700)
    const bm = new DenseBitmap(n)
    const model = new Set<number>()
    for (let op = 0; op < 40; op++) {
      const start = Math.floor(r() * n)
      const len = Math.floor(r() * (r() < 0.3 ? 100 : 10)) + 1
      const set = r() < 0.7
      if (set) bm.setRange(start, len)
      else bm.clearRange(start, len)
      for (let b = start; b < Math.min(n, start + len); b++) set ? model.add(b) : model.delete(b)
    }
    const other = new DenseBitmap(n)
    const otherModel = new Set<number>()
    for (let k = 0; k < 20; k++) {
      const b = Math.floor(r() * n)
      other.setRange(b, 1)
      otherModel.add(b)
    }
    const from = Math.floor(r() * n)
    const to = from + Math.floor(r() * (n - from + 1))
    if (!t.same(bm.runs(from, to), modelRuns(model, from, to), `seed ${seed} runs [${from}, ${to})`)) break
    if (!t.equal(bm.count(), model.size, `seed ${seed} count`)) break
    bm.orWith(other)
    for (const b of otherModel) model.add(b)
    if (!t.same(bm.runs(), modelRuns(model, 0, n), `seed ${seed} after OR`)) break
    for (let b = 0; b < n; b++) if (bm.test(b) !== model.has(b)) { t.fail(`seed ${seed} bit ${b}`); break }
  }
})

t.test('serialize round trip and corruption detection', async t => {
  const bm = new DenseBitmap(1000)
  bm.setRange(3, 500)
  const data = bm.serialize()
  const back = DenseBitmap.deserialize(data, 1000)
  t.ok(back.equals(bm))
  t.throws(() => DenseBitmap.deserialize(data, 999), BitmapFormatError)
  const flipped = Uint8Array.from(data)
  flipped[40]! ^= 1
  t.throws(() => DenseBitmap.deserialize(flipped), /body checksum/)
  const hdr = Uint8Array.from(data)
  hdr[17]! ^= 1
  t.throws(() => DenseBitmap.deserialize(hdr), /header checksum/)
  t.throws(() => DenseBitmap.deserialize(data.subarray(0, 40)), BitmapFormatError)
  t.throws(() => DenseBitmap.deserialize(new Uint8Array(10)), /shorter/)
  t.throws(() => new DenseBitmap(-1), RangeError)
  t.throws(() => new DenseBitmap(2 ** 40), RangeError, 'no huge allocation on bad input')
  t.throws(() => bm.orWith(new DenseBitmap(10)), RangeError)
})

t.test('2 TiB at 64 KiB with 1% scattered changes: the run scan finds every run', async t => {
  // Its speed (target: well under 20 ms) is measured by bench/tracking-query.mjs, not asserted here.
  const bits = 2 ** 41 / 2 ** 16
  const bm = new DenseBitmap(bits)
  const r = rng(7)
  const target = Math.floor(bits / 100)
  const set = new Set<number>()
  for (let i = 0; i < target; i++) {
    const b = Math.floor(r() * bits)
    bm.setRange(b, 1)
    set.add(b)
  }
  let runs = 0
  let covered = 0
  bm.forEachRun((start: number, length: number) => {
    runs++
    covered += length
  })
  t.equal(covered, set.size, 'the runs cover exactly the set bits')
  t.ok(runs > target * 0.9 && runs <= set.size, `${runs} runs`)
})
