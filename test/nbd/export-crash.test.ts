/**
 * The tracked NBD export SIGKILLed at random moments during client writes (a handful of trials; 200 and more with
 * bench/nbd-export-crash.mjs). See export-crash-core.ts for what each trial checks.
 */
import t from 'tap'
import { RpcProcess } from '../helpers/engine.js'
import { runExportCrashTrial } from './export-crash-core.js'
import { tempDir } from './helpers.js'

t.test('killing the export never loses a change or an acknowledged write', async t => {
  const dir = tempDir(t)
  const rpc = new RpcProcess()
  t.teardown(() => rpc.close())
  const base = Number(process.env.HVCBT_CRASH_SEED ?? 4100)
  let reported = 0
  for (let seed = base; seed < base + 3; seed++) {
    const r = await runExportCrashTrial(dir, rpc, seed)
    t.ok(r.ok, `seed ${seed}: killed after ${r.killedAfterMs} ms, ${r.writesAcked}/${r.writesSent} writes acknowledged, ` +
      `${r.differingSectors} sectors differ, ${r.reportedBytes} bytes reported${r.ok ? '' : `: ${r.detail}`}`)
    t.ok(r.writesAcked > 0, `seed ${seed}: the kill came during a stream of acknowledged writes`)
    reported += r.reportedBytes
  }
  t.ok(reported < 3 * 32 * 1024 * 1024, 'the reports are not simply "everything changed" (the coverage checks mean something)')
})
