/**
 * NBD export methods: `nbd.serve` (`hvcbt serve nbd <disk>`), `nbd.stop`, `nbd.list`.
 *
 * nbd.serve opens the disk, starts an NbdServer on the listen address and registers it as a Service, so the engine
 * stops it on shutdown (and the CLI stops it on Ctrl+C). Loopback only unless --allow-remote: the export has no
 * authentication and no TLS. Other domains (tracking) attach metadata contexts and a write observer to every export
 * through registerNbdExportHook, so this file does not import them and they do not import it.
 *
 * The disk is opened with openDisk (raw, VHD, VHDX, differencing chains). For a differencing disk the export's
 * extents are resolved through the chain, so base:allocation and structured reads describe what the whole chain
 * reads as, not just the top layer.
 */
import { basename, extname, resolve } from 'node:path'
import { Type, type Static } from 'typebox'
import { EngineError } from '../errors.js'
import { defineMethod } from '../method.js'
import { addService, getService, stopService } from '../services.js'
import { openDisk, parentOf, resolvedExtents } from '../../formats/open.js'
import type { VirtualDisk } from '../../formats/virtual-disk.js'
import { NbdServer, type NbdExport } from '../../nbd/server.js'

/** What a hook adds to an export: metadata contexts, a write observer, or a wrapping disk; `close` runs at stop. */
export type NbdExportAddition = Partial<Pick<NbdExport, 'disk' | 'metaContexts' | 'metaContextListers' | 'writeObserver'>> & {
  close?(): Promise<void>
}
export type NbdExportHook = (diskPath: string, disk: VirtualDisk, readOnly: boolean) => Promise<NbdExportAddition | null>

const hooks: NbdExportHook[] = []

/** Called for every export nbd.serve starts, in registration order; each sees the disk the previous one returned. */
export function registerNbdExportHook(hook: NbdExportHook): void {
  hooks.push(hook)
}

const DEFAULT_PORT = 10809

interface Running {
  id: string
  uri: string
  listen: string
  name: string
  path: string
  size: number
  readOnly: boolean
  server: NbdServer
}

const running = new Map<string, Running>()

const ExportInfo = Type.Object({
  id: Type.String({ description: 'service id, for nbd.stop' }),
  uri: Type.String({ description: 'nbd:// URI for qemu-img, nbdinfo, nbdcopy' }),
  listen: Type.String({ description: 'bound address host:port' }),
  name: Type.String({ description: 'export name' }),
  path: Type.String({ description: 'disk file' }),
  sizeBytes: Type.Integer({ minimum: 0 }),
  readOnly: Type.Boolean(),
  connections: Type.Integer({ minimum: 0 }),
})

/** "127.0.0.1:10809", "[::1]:10809", "localhost", ":10809", "10809" -> host and port. */
export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*))(?::(\d+))?$/.exec(listen.trim())
  const bare = /^\d+$/.test(listen.trim())
  if (!m && !bare) throw new EngineError(`--listen '${listen}' is not host:port`, 'InvalidArgument')
  const host = bare ? '127.0.0.1' : (m![1] ?? m![2]) || '127.0.0.1'
  const port = bare ? Number(listen) : m![3] === undefined ? DEFAULT_PORT : Number(m![3])
  if (!(port >= 0 && port <= 65535)) throw new EngineError(`--listen port ${port} is out of range`, 'InvalidArgument')
  return { host, port }
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host) || /^::ffff:127\./.test(host)
}

/** The same disk with extents() resolved through its parents ('parent' ranges become what the parent holds). */
function chainResolved(disk: VirtualDisk): VirtualDisk {
  return {
    size: disk.size,
    logicalSectorSize: disk.logicalSectorSize,
    physicalSectorSize: disk.physicalSectorSize,
    readOnly: disk.readOnly,
    read: (offset, into) => disk.read(offset, into),
    write: (offset, data, flags) => disk.write(offset, data, flags),
    writeZeroes: (offset, length, flags) => disk.writeZeroes(offset, length, flags),
    trim: (offset, length) => disk.trim(offset, length),
    extents: (offset, length) => resolvedExtents(disk, offset, length),
    flush: () => disk.flush(),
    close: () => disk.close(),
  }
}

function info(r: Running): Static<typeof ExportInfo> {
  return {
    id: r.id,
    uri: r.uri,
    listen: r.listen,
    name: r.name,
    path: r.path,
    sizeBytes: r.size,
    readOnly: r.readOnly,
    connections: r.server.connectionCount,
  }
}

export const nbdMethods = [
  defineMethod({
    name: 'nbd.serve',
    summary: 'Export a virtual disk over NBD (qemu-img, nbdcopy, nbdinfo and the Linux nbd driver can use it)',
    description:
      'Serves the disk until stopped (nbd.stop, Ctrl+C, engine shutdown). Fixed newstyle NBD with structured ' +
      'replies, block status (base:allocation), several connections. Listens on loopback unless --allow-remote.',
    params: Type.Object(
      {
        disk: Type.String({ minLength: 1, description: 'disk file to export' }),
        listen: Type.Optional(Type.String({ description: `host:port to listen on (default 127.0.0.1:${DEFAULT_PORT}; port 0 picks one)` })),
        name: Type.Optional(Type.String({ maxLength: 4096, description: 'export name (default: the file name without extension)' })),
        readOnly: Type.Optional(Type.Boolean({ description: 'refuse writes' })),
        allowRemote: Type.Optional(Type.Boolean({ description: 'allow a non-loopback listen address (no authentication!)' })),
      },
      { additionalProperties: false },
    ),
    result: ExportInfo,
    cli: {
      command: ['serve', 'nbd'],
      positional: ['disk'],
      service: true,
      examples: [
        ['hvcbt serve nbd disk.raw', 'serve on nbd://127.0.0.1:10809/disk until Ctrl+C'],
        ['hvcbt serve nbd disk.raw --listen 127.0.0.1:0 --read-only --json', 'read-only, on a free port, details as JSON'],
      ],
    },
    async handler(p, ctx) {
      const { host, port } = parseListen(p.listen ?? `127.0.0.1:${DEFAULT_PORT}`)
      if (!isLoopback(host) && !p.allowRemote) {
        throw new EngineError(
          `refusing to listen on ${host}: the NBD export has no authentication; pass --allow-remote to do it anyway`,
          'SecurityError',
        )
      }
      const path = resolve(p.disk)
      const name = p.name ?? basename(path, extname(path))
      const readOnly = p.readOnly === true
      const opened = await openDisk(path, { readOnly, onNote: m => ctx.log('warning', m) })
      const base = parentOf(opened) ? chainResolved(opened) : opened
      const closers: (() => Promise<void>)[] = [() => base.close()]
      let server: NbdServer | null = null
      try {
        let exp: NbdExport = { name, disk: base, readOnly, description: path }
        for (const hook of hooks) {
          const add = await hook(path, exp.disk, readOnly)
          if (!add) continue
          if (add.close) closers.unshift(add.close)
          exp = {
            ...exp,
            ...(add.disk ? { disk: add.disk } : {}),
            metaContexts: [...(exp.metaContexts ?? []), ...(add.metaContexts ?? [])],
            metaContextListers: [...(exp.metaContextListers ?? []), ...(add.metaContextListers ?? [])],
            writeObserver: add.writeObserver ?? exp.writeObserver,
          }
        }
        server = new NbdServer([exp], { log: (level, m) => ctx.log(level === 'debug' ? 'debug' : level, m) })
        const addr = await server.listen(port, host)
        const hostPart = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address
        const listen = `${hostPart}:${addr.port}`
        const id = `nbd:${listen}`
        const srv = server
        const r: Running = { id, uri: `nbd://${listen}/${encodeURIComponent(name)}`, listen, name, path, size: exp.disk.size, readOnly: readOnly || exp.disk.readOnly, server: srv }
        addService({
          id,
          kind: 'nbd',
          description: `NBD export '${name}' of ${path} on ${listen}`,
          stop: async () => {
            running.delete(id)
            await srv.close()
            for (const close of closers) await close()
          },
        })
        running.set(id, r)
        ctx.log('info', `serving ${path} as ${r.uri}${r.readOnly ? ' (read-only)' : ''}`)
        return info(r)
      } catch (err) {
        await server?.close()
        for (const close of closers) await close().catch(() => undefined)
        throw err
      }
    },
  }),
  defineMethod({
    name: 'nbd.stop',
    summary: 'Stop an NBD export started by nbd.serve (in-flight requests are answered first)',
    params: Type.Object({ id: Type.String({ minLength: 1, description: 'id from nbd.serve or nbd.list' }) }, { additionalProperties: false }),
    result: Type.Object({ id: Type.String(), stopped: Type.Boolean() }),
    cli: { positional: ['id'] },
    async handler({ id }) {
      if (!running.has(id) || getService(id)?.kind !== 'nbd') {
        throw new EngineError(`no NBD export with id '${id}'`, 'ObjectNotFound', -32001, { id })
      }
      return { id, stopped: await stopService(id) }
    },
  }),
  defineMethod({
    name: 'nbd.list',
    summary: 'NBD exports running in this engine',
    params: Type.Object({}, { additionalProperties: false }),
    result: Type.Array(ExportInfo),
    async handler() {
      return [...running.values()].map(info)
    },
  }),
]
