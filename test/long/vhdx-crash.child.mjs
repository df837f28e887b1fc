// Crash-test writer: node vhdx-crash.child.mjs <bundle.mjs> <disk.vhdx> <seed>
// Opens the disk read-write and runs the deterministic operation list of `seed` (writes that allocate blocks,
// writes into allocated blocks, writeZeroes over whole and partial blocks), flushing every few operations.
// Protocol on stdout, one line each: "S i" before operation i starts, "F n" after a flush that made operations
// 0..n-1 durable. The parent SIGKILLs this process at a random moment.
import { fileURLToPath, pathToFileURL } from 'node:url'

export const CRASH_DISK_SIZE = 64 * 1024 * 1024
export const CRASH_BLOCK_SIZE = 1024 * 1024
export const CRASH_OPS = 3000

/** xorshift32 in [0, 1). */
function rng(seed) {
  let x = seed >>> 0 || 1
  return () => {
    x ^= x << 13; x >>>= 0
    x ^= x >>> 17
    x ^= x << 5; x >>>= 0
    return x / 0x1_0000_0000
  }
}

/** The operation list of a seed: { kind: 'write' | 'zero', offset, length, fill, flushAfter }. */
export function genOps(seed, count = CRASH_OPS) {
  const r = rng(seed)
  const ops = []
  for (let i = 0; i < count; i++) {
    const m = r()
    let length
    if (m < 0.6) length = (1 + Math.floor(r() * 64)) * 512
    else if (m < 0.9) length = (1 + Math.floor(r() * 4096)) * 512
    else length = CRASH_BLOCK_SIZE * (1 + Math.floor(r() * 3))
    const aligned = m >= 0.9
    const unit = aligned ? CRASH_BLOCK_SIZE : 512
    const offset = Math.floor(r() * ((CRASH_DISK_SIZE - length) / unit + 1)) * unit
    ops.push({ kind: r() < 0.12 ? 'zero' : 'write', offset, length, fill: 1 + (i % 254), flushAfter: r() < 0.2 })
  }
  return ops
}

async function main() {
  const [bundle, disk, seedArg] = process.argv.slice(2)
  const { openVhdx } = await import(pathToFileURL(bundle).href)
  const d = await openVhdx(disk, {})
  const ops = genOps(Number(seedArg))
  const say = s => process.stdout.write(`${s}\n`)
  say('READY')
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]
    say(`S ${i}`)
    if (op.kind === 'write') await d.write(op.offset, Buffer.alloc(op.length, op.fill))
    else await d.writeZeroes(op.offset, op.length)
    if (op.flushAfter) {
      await d.flush()
      say(`F ${i + 1}`)
    }
  }
  await d.flush()
  say(`F ${ops.length}`)
  await d.close()
  say('DONE')
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main()
