// Child process of bench/nbd-throughput.mjs: serve one disk with HvCbt's NBD server on a free loopback port and
// print {"port": N} on stdout; exits on SIGTERM after draining. Usage: node bench/nbd-serve-child.mjs DISK NAME [ro]
import { loadNbd } from './nbd-bundle.mjs'

const [file, name, mode] = process.argv.slice(2)
const { NbdServer, openDisk, sparseSupport } = await loadNbd()
const disk = await openDisk(file, { readOnly: mode === 'ro' })
// HVCBT_NBD_READ_HOLES=0/1 forces OFFSET_HOLE detection in reads off/on (default: auto), to compare its cost
const holes = process.env.HVCBT_NBD_READ_HOLES
const server = new NbdServer([{ name, disk }], { readHoles: holes === '0' ? false : holes === '1' ? true : 'auto' })
const { port } = await server.listen(0, '127.0.0.1')
process.stdout.write(JSON.stringify({ port, native: sparseSupport().native }) + '\n')
process.on('SIGTERM', async () => {
  await server.close()
  await disk.close()
  process.exit(0)
})
