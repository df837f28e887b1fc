/** A short fuzz run of the NBD parsers in the suite; bench/nbd-fuzz.mjs runs long ones. */
import t from 'tap'
import { fuzzNbd } from './nbd-fuzz-core.js'

t.test('mutated sessions never crash, hang or break the server for others', async t => {
  const seed = Number(process.env.HVCBT_FUZZ_SEED ?? 20261125)
  const stats = await fuzzNbd(400, seed)
  t.equal(stats.iterations, 400)
  t.same(stats.findings, [], `no findings (seed ${seed})`)
  t.ok(stats.closedEarly > 0, `the server closed ${stats.closedEarly} sessions that broke the protocol`)
  t.ok(stats.closedEarly < stats.iterations, 'and not every session')
})
