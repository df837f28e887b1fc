#!/usr/bin/env node
// VHD throughput: node bench/vhd-read.mjs [sizeMiB=1024]
// 1. sequential read of a fully written dynamic VHD through HvCbt (4 MiB requests) vs `qemu-img convert -O raw`
//    of the same file to a raw file on the same disk (page cache dropped neither time: both read warm data);
// 2. `hvcbt vhd convert` VHD -> VHDX and VHD -> raw throughput (convertDisk), vs `qemu-img convert -O vhdx`.
// Writes a JSON line and bench/results/vhd-read.json.
import { build } from 'esbuild'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const sizeMiB = Number(process.argv[2] ?? 1024)
const MiB = 1024 * 1024
const dir = mkdtempSync(join(tmpdir(), 'hvcbt-vhd-bench-'))
const time = async fn => { const t0 = performance.now(); await fn(); return (performance.now() - t0) / 1000 }
try {
  const outfile = join(dir, 'b.mjs')
  await build({
    stdin: {
      contents: [
        `export { createVhd } from ${JSON.stringify(join(root, 'src/formats/vhd/vhd-create.ts'))}`,
        `export { openVhd } from ${JSON.stringify(join(root, 'src/formats/vhd/vhd-disk.ts'))}`,
        `export { convertDisk } from ${JSON.stringify(join(root, 'src/formats/convert.ts'))}`,
      ].join('\n'),
      resolveDir: root, loader: 'ts',
    },
    bundle: true, platform: 'node', format: 'esm', target: 'node20', outfile, logLevel: 'error',
    banner: { js: 'import { createRequire as __cr } from "module"; const require = __cr(import.meta.url);' },
  })
  const { createVhd, openVhd, convertDisk } = await import(pathToFileURL(outfile).href)
  const src = join(dir, 'src.vhd')
  await createVhd(src, { sizeBytes: sizeMiB * MiB, type: 'dynamic' })
  const buf = Buffer.alloc(4 * MiB)
  for (let i = 0; i < buf.length; i += 4) buf.writeUInt32LE((i * 2654435761) >>> 0, i)
  let d = await openVhd(src)
  const writeSecs = await time(async () => { for (let at = 0; at < d.size; at += buf.length) await d.write(at, buf); await d.flush() })
  await d.close()
  d = await openVhd(src, { readOnly: true })
  const readSecs = await time(async () => { const b = Buffer.alloc(4 * MiB); for (let at = 0; at < d.size; at += b.length) await d.read(at, b) })
  await d.close()
  const qemuRawSecs = await time(async () => execFileSync('qemu-img', ['convert', '-f', 'vpc', '-O', 'raw', src, join(dir, 'q.raw')]))
  rmSync(join(dir, 'q.raw'))
  const toVhdxSecs = await time(() => convertDisk(src, join(dir, 'h.vhdx'), { format: 'vhdx' }))
  rmSync(join(dir, 'h.vhdx'))
  const toRawSecs = await time(() => convertDisk(src, join(dir, 'h.raw'), { format: 'raw' }))
  rmSync(join(dir, 'h.raw'))
  const qemuVhdxSecs = await time(async () => execFileSync('qemu-img', ['convert', '-f', 'vpc', '-O', 'vhdx', src, join(dir, 'q.vhdx')]))
  const mibs = s => Math.round(sizeMiB / s)
  const result = {
    date: new Date().toISOString(), sizeMiB,
    hvcbtWriteMiBs: mibs(writeSecs), hvcbtSequentialReadMiBs: mibs(readSecs), qemuConvertToRawMiBs: mibs(qemuRawSecs),
    hvcbtConvertToVhdxMiBs: mibs(toVhdxSecs), hvcbtConvertToRawMiBs: mibs(toRawSecs), qemuConvertToVhdxMiBs: mibs(qemuVhdxSecs),
  }
  console.log(JSON.stringify(result))
  writeFileSync(join(root, 'bench/results/vhd-read.json'), JSON.stringify(result, null, 2) + '\n')
} finally {
  rmSync(dir, { recursive: true, force: true })
}
