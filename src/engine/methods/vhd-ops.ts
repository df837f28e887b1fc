/**
 * Disk-file operations beyond vhd.info: create, check, map, read, write, convert, merge. Each is declared once
 * for JSON-RPC and the CLI (`hvcbt vhd <verb>`); the work is in src/formats/ (format-neutral layer).
 *
 * Sizes and offsets accept suffixes ("64K", "10G", "1.5T") on the CLI and either a string or an integer over
 * JSON-RPC. `vhd read` / `vhd write` move raw bytes: over JSON-RPC they need an output / input file; the CLI
 * defaults those to stdout / stdin (cli.stdio).
 */
import { open } from 'node:fs/promises'
import { resolve } from 'node:path'
import { Type } from 'typebox'
import { AppErrorCode, EngineError } from '../errors.js'
import { openDiskForWrite } from '../../tracking/open-for-write.js'
import { defineMethod } from '../method.js'
import { resolvedExtents } from '../../formats/chain.js'
import { checkDisk } from '../../formats/check.js'
import { convertDisk } from '../../formats/convert.js'
import { createDisk } from '../../formats/create.js'
import { inspectDisk } from '../../formats/inspect.js'
import { mergeDisk } from '../../formats/merge.js'
import { openDisk } from '../../formats/open.js'
import { formatSize, parseSize } from '../../formats/size.js'
import { checkRange, type VirtualDisk } from '../../formats/virtual-disk.js'
import { DiskInfoSchema } from './vhd.js'

const Size = (description: string) => Type.Union([Type.Integer({ minimum: 0 }), Type.String({ minLength: 1 })], { description })
const Format = Type.Union([Type.Literal('vhdx'), Type.Literal('vhd'), Type.Literal('raw')])
const ExtentSchema = Type.Object({
  offset: Type.Integer({ minimum: 0 }),
  length: Type.Integer({ minimum: 0 }),
  state: Type.Union([Type.Literal('data'), Type.Literal('zero'), Type.Literal('unallocated'), Type.Literal('parent')]),
})
const ProblemSchema = Type.Object({
  structure: Type.String(),
  offset: Type.Union([Type.Integer(), Type.Null()]),
  message: Type.String(),
  severity: Type.Union([Type.Literal('error'), Type.Literal('warning')]),
})
/** Bytes moved per request by read and write. */
const IO_CHUNK = 4 * 1024 * 1024

const optSize = (v: string | number | undefined, what: string): number | undefined => (v === undefined ? undefined : parseSize(v, what))

export const vhdOpsMethods = [
  defineMethod({
    name: 'vhd.create',
    summary: 'Create a VHDX, VHD or raw disk: fixed, dynamic or differencing',
    params: Type.Object({
      path: Type.String({ minLength: 1, description: 'new disk file (must not exist)' }),
      size: Type.Optional(Size('virtual size, e.g. 10G (differencing: taken from the parent)')),
      format: Type.Optional(Type.Union([Format], { description: 'default: from the extension (.vhd, .vhdx/.avhdx, .img/.raw), else vhdx' })),
      type: Type.Optional(Type.Union([Type.Literal('dynamic'), Type.Literal('fixed'), Type.Literal('differencing')], { description: 'default dynamic (differencing with --parent)' })),
      parent: Type.Optional(Type.String({ minLength: 1, description: 'parent disk of a differencing disk' })),
      blockSize: Type.Optional(Size('block size (VHDX 1-256 MiB, default 32 MiB; VHD default 2 MiB)')),
      logicalSectorSize: Type.Optional(Type.Union([Type.Literal(512), Type.Literal(4096)], { description: 'VHDX only' })),
    }, { additionalProperties: false }),
    result: DiskInfoSchema,
    cli: {
      positional: ['path'],
      examples: [
        ['hvcbt vhd create disk.vhdx --size 10G', 'dynamic VHDX, 32 MiB blocks'],
        ['hvcbt vhd create disk.vhd --size 1G --type fixed', 'fixed VHD'],
        ['hvcbt vhd create snap.avhdx --parent disk.vhdx', 'differencing child of disk.vhdx'],
      ],
    },
    async handler(p) {
      const path = resolve(p.path)
      await createDisk(path, {
        format: p.format,
        type: p.type,
        sizeBytes: optSize(p.size, 'size'),
        blockSizeBytes: optSize(p.blockSize, 'block size'),
        logicalSectorSize: p.logicalSectorSize,
        parentPath: p.parent === undefined ? undefined : resolve(p.parent),
      })
      return inspectDisk(path)
    },
  }),

  defineMethod({
    name: 'vhd.check',
    summary: 'Validate every structure of a disk file and list each problem (exit 0 clean, 1 problems, 2 unreadable)',
    params: Type.Object({ path: Type.String({ minLength: 1, description: 'disk file' }) }, { additionalProperties: false }),
    result: Type.Object({
      path: Type.String(),
      format: Type.Union([Format, Type.Null()]),
      status: Type.Union([Type.Literal('clean'), Type.Literal('problems'), Type.Literal('unreadable')]),
      errors: Type.Integer({ minimum: 0 }),
      warnings: Type.Integer({ minimum: 0 }),
      problems: Type.Array(ProblemSchema),
    }),
    cli: {
      positional: ['path'],
      exitCode: r => (r.status === 'clean' ? 0 : r.status === 'problems' ? 1 : 2),
      errorExitCode: 2,
      human: r => {
        const head = `${r.path}: ${r.status}${r.format ? ` (${r.format.toUpperCase()})` : ''}, ${r.errors} error(s), ${r.warnings} warning(s)`
        const lines = r.problems.map(p => `  ${p.severity}: ${p.structure}${p.offset === null ? '' : ` at offset ${p.offset}`}: ${p.message}`)
        return [head, ...lines].join('\n')
      },
    },
    async handler({ path }) {
      return checkDisk(resolve(path))
    },
  }),

  defineMethod({
    name: 'vhd.map',
    summary: 'Allocation map: extents with their state (data, zero, unallocated, parent)',
    description: 'By default the top layer only ("parent" = read from the parent disk); --resolve follows the chain.',
    params: Type.Object({
      path: Type.String({ minLength: 1, description: 'disk file' }),
      offset: Type.Optional(Size('start of the range (default 0)')),
      length: Type.Optional(Size('length of the range (default: to the end)')),
      resolve: Type.Optional(Type.Boolean({ description: 'resolve "parent" ranges through the differencing chain' })),
    }, { additionalProperties: false }),
    result: Type.Object({
      path: Type.String(),
      virtualSizeBytes: Type.Integer({ minimum: 0 }),
      extents: Type.Array(ExtentSchema),
    }),
    cli: {
      positional: ['path'],
      human: r => {
        const rows = r.extents.map(e => `${String(e.offset).padStart(16)}  ${String(e.length).padStart(16)}  ${e.state}`)
        return [`${'Offset'.padStart(16)}  ${'Length'.padStart(16)}  State`, ...rows].join('\n')
      },
    },
    async handler(p) {
      const path = resolve(p.path)
      const disk = await openDisk(path, { readOnly: true })
      try {
        const offset = optSize(p.offset, 'offset') ?? 0
        const length = optSize(p.length, 'length') ?? Math.max(0, disk.size - offset)
        rangeOrThrow(disk, offset, length)
        const extents = p.resolve ? await resolvedExtents(disk, offset, length) : await disk.extents(offset, length)
        return { path, virtualSizeBytes: disk.size, extents }
      } finally {
        await disk.close()
      }
    },
  }),

  defineMethod({
    name: 'vhd.read',
    summary: 'Read virtual-disk bytes (chain resolved) to a file, or to stdout in the CLI',
    params: Type.Object({
      path: Type.String({ minLength: 1, description: 'disk file' }),
      offset: Type.Optional(Size('start (default 0), a multiple of the logical sector size')),
      length: Type.Optional(Size('bytes to read (default: to the end), a multiple of the logical sector size')),
      output: Type.String({ minLength: 1, description: 'file to write the bytes to (CLI default: stdout)' }),
    }, { additionalProperties: false }),
    result: Type.Object({ path: Type.String(), offset: Type.Integer(), length: Type.Integer(), output: Type.String() }),
    cli: {
      positional: ['path'],
      stdio: { output: 'output' },
      examples: [['hvcbt vhd read disk.vhdx --offset 1M --length 4K | xxd', 'dump 4 KiB at 1 MiB']],
    },
    async handler(p, ctx) {
      const path = resolve(p.path)
      const disk = await openDisk(path, { readOnly: true })
      try {
        const offset = optSize(p.offset, 'offset') ?? 0
        const length = optSize(p.length, 'length') ?? Math.max(0, disk.size - offset)
        rangeOrThrow(disk, offset, length)
        const out = await open(p.output, p.output.startsWith('/dev/') ? 'a' : 'w')
        try {
          const buf = new Uint8Array(Math.min(IO_CHUNK, Math.max(length, 1)))
          for (let done = 0; done < length; ) {
            if (ctx.signal.aborted) throw new EngineError('read cancelled', 'OperationStopped', AppErrorCode.Cancelled)
            const n = Math.min(buf.length, length - done)
            const part = buf.subarray(0, n)
            await disk.read(offset + done, part)
            await writeAll(out, part)
            done += n
            ctx.progress(done, length)
          }
        } finally {
          await out.close()
        }
        return { path, offset, length, output: p.output }
      } finally {
        await disk.close()
      }
    },
  }),

  defineMethod({
    name: 'vhd.write',
    summary: 'Write bytes from a file (stdin in the CLI) into a virtual disk at an offset',
    description: 'The offset must be a multiple of the logical sector size; a last partial sector is merged with the bytes on disk.',
    params: Type.Object({
      path: Type.String({ minLength: 1, description: 'disk file (its differencing parents are not written)' }),
      offset: Size('where to write, a multiple of the logical sector size'),
      input: Type.String({ minLength: 1, description: 'file to read the bytes from (CLI default: stdin)' }),
      length: Type.Optional(Size('write at most this many bytes')),
    }, { additionalProperties: false }),
    result: Type.Object({ path: Type.String(), offset: Type.Integer(), bytesWritten: Type.Integer() }),
    cli: {
      positional: ['path'],
      stdio: { input: 'input' },
      examples: [['head -c 1M /dev/urandom | hvcbt vhd write disk.vhdx --offset 64K', 'write 1 MiB at 64 KiB']],
    },
    async handler(p, ctx) {
      const path = resolve(p.path)
      const offset = parseSize(p.offset, 'offset')
      const limit = optSize(p.length, 'length') ?? Infinity
      const disk = await openDiskForWrite(path)
      try {
        const s = disk.logicalSectorSize
        if (offset % s !== 0 || offset > disk.size) rangeOrThrow(disk, offset, 0)
        const input = await open(p.input, 'r')
        let written = 0
        try {
          const buf = new Uint8Array(IO_CHUNK)
          let fill = 0
          for (;;) {
            if (ctx.signal.aborted) throw new EngineError('write cancelled', 'OperationStopped', AppErrorCode.Cancelled)
            const want = Math.min(buf.length - fill, limit - written - fill)
            const n = want > 0 ? (await input.read(buf, fill, want, null)).bytesRead : 0
            fill += n
            const eof = n === 0
            if (fill === buf.length || eof) {
              const whole = fill - (fill % s)
              if (whole > 0) {
                rangeOrThrow(disk, offset + written, whole)
                await disk.write(offset + written, buf.subarray(0, whole))
                buf.copyWithin(0, whole, fill)
                fill -= whole
                written += whole
                ctx.progress(written, Number.isFinite(limit) ? limit : written)
              }
              if (eof) break
            }
          }
          if (fill > 0) {
            // Last partial sector: read-modify-write.
            const sector = new Uint8Array(s)
            rangeOrThrow(disk, offset + written, s)
            await disk.read(offset + written, sector)
            sector.set(buf.subarray(0, fill))
            await disk.write(offset + written, sector)
            written += fill
          }
        } finally {
          await input.close()
        }
        await disk.flush()
        return { path, offset, bytesWritten: written }
      } finally {
        await disk.close()
      }
    },
  }),

  defineMethod({
    name: 'vhd.convert',
    summary: 'Copy a disk into a new file of any format, sparsely (unallocated and zero ranges are not written)',
    params: Type.Object({
      source: Type.String({ minLength: 1, description: 'disk to read (differencing chains are resolved)' }),
      destination: Type.String({ minLength: 1, description: 'new file (must not exist)' }),
      format: Type.Optional(Type.Union([Format], { description: 'default: from the extension, else vhdx' })),
      type: Type.Optional(Type.Union([Type.Literal('dynamic'), Type.Literal('fixed')], { description: 'default dynamic' })),
      blockSize: Type.Optional(Size('block size of a VHD/VHDX destination')),
      logicalSectorSize: Type.Optional(Type.Union([Type.Literal(512), Type.Literal(4096)], { description: 'VHDX destination only' })),
    }, { additionalProperties: false }),
    result: Type.Object({
      source: Type.String(),
      destination: Type.String(),
      format: Format,
      type: Type.String(),
      virtualSizeBytes: Type.Integer(),
      bytesRead: Type.Integer(),
      bytesWritten: Type.Integer(),
      seconds: Type.Number(),
    }),
    cli: {
      positional: ['source', 'destination'],
      examples: [['hvcbt vhd convert old.vhd new.vhdx', 'VHD to dynamic VHDX'], ['hvcbt vhd convert disk.vhdx disk.img --format raw', 'to a sparse raw image']],
      human: r => `${r.source} -> ${r.destination} (${r.format.toUpperCase()} ${r.type}): ${formatSize(r.virtualSizeBytes)} virtual, ${formatSize(r.bytesWritten)} written in ${r.seconds.toFixed(1)} s`,
    },
    async handler(p, ctx) {
      return convertDisk(resolve(p.source), resolve(p.destination), {
        format: p.format,
        type: p.type,
        blockSizeBytes: optSize(p.blockSize, 'block size'),
        logicalSectorSize: p.logicalSectorSize,
        progress: (done, total) => ctx.progress(done, total),
        signal: ctx.signal,
      })
    },
  }),

  defineMethod({
    name: 'vhd.merge',
    summary: 'Merge a differencing disk into its parent (like Merge-VHD); the child is removed afterwards',
    params: Type.Object({
      path: Type.String({ minLength: 1, description: 'differencing disk (a leaf: merge from the leaf upwards)' }),
      keepChild: Type.Optional(Type.Boolean({ description: 'keep the child file (it is stale after the merge)' })),
    }, { additionalProperties: false }),
    result: Type.Object({
      child: Type.String(),
      parent: Type.String(),
      bytesMerged: Type.Integer(),
      bytesZeroed: Type.Integer(),
      childRemoved: Type.Boolean(),
      seconds: Type.Number(),
    }),
    cli: {
      positional: ['path'],
      human: r => `merged ${r.child} into ${r.parent}: ${formatSize(r.bytesMerged)} of data, ${formatSize(r.bytesZeroed)} of zeros${r.childRemoved ? '; child removed' : '; child kept (stale)'}`,
    },
    async handler(p, ctx) {
      return mergeDisk(resolve(p.path), {
        keepChild: p.keepChild,
        progress: (done, total) => ctx.progress(done, total),
        signal: ctx.signal,
        onNote: m => ctx.log('warning', m),
      })
    },
  }),
]

function rangeOrThrow(disk: VirtualDisk, offset: number, length: number): void {
  try {
    checkRange(disk, offset, length)
  } catch (err) {
    throw new EngineError((err as Error).message, 'InvalidArgument', AppErrorCode.Generic, { offset, length, sizeBytes: disk.size })
  }
}

async function writeAll(out: Awaited<ReturnType<typeof open>>, data: Uint8Array): Promise<void> {
  for (let done = 0; done < data.length; ) {
    const { bytesWritten } = await out.write(data, done, data.length - done)
    done += bytesWritten
  }
}
