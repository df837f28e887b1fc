/** `vhd.info`: header-level facts about a disk file (Get-VhdFileInfo, `hvcbt vhd info`). */
import { resolve } from 'node:path'
import { Type } from 'typebox'
import { defineMethod } from '../method.js'
import { inspectDisk } from '../../formats/inspect.js'
import { formatBytes } from '../../cli/format.js'

export const DiskInfoSchema = Type.Object({
  path: Type.String({ description: 'absolute path of the file' }),
  format: Type.Union([Type.Literal('vhdx'), Type.Literal('vhd'), Type.Literal('raw')]),
  type: Type.Union([Type.Literal('fixed'), Type.Literal('dynamic'), Type.Literal('differencing')]),
  virtualSizeBytes: Type.Integer({ minimum: 0 }),
  blockSizeBytes: Type.Integer({ minimum: 0, description: '0 for raw and fixed VHD' }),
  logicalSectorSizeBytes: Type.Integer(),
  physicalSectorSizeBytes: Type.Integer(),
  fileSizeBytes: Type.Integer({ minimum: 0 }),
  diskId: Type.Union([Type.String(), Type.Null()], { description: 'VHDX Virtual Disk ID / VHD unique id' }),
  parentPath: Type.Union([Type.String(), Type.Null()], { description: 'differencing disks only' }),
})

export const vhdMethods = [
  defineMethod({
    name: 'vhd.info',
    summary: 'Show format, type, sizes, identity and parent of a VHD, VHDX or raw disk file',
    params: Type.Object(
      { path: Type.String({ minLength: 1, description: 'disk file' }) },
      { additionalProperties: false },
    ),
    result: DiskInfoSchema,
    cli: {
      positional: ['path'],
      examples: [
        ['hvcbt vhd info disk.vhdx', 'show the disk as a list'],
        ['hvcbt vhd info disk.vhdx --json', 'the same as JSON, for scripts'],
      ],
      human: r =>
        [
          ['Path', r.path],
          ['Format', r.format.toUpperCase()],
          ['Type', r.type],
          ['Virtual size', formatBytes(r.virtualSizeBytes)],
          ['File size', formatBytes(r.fileSizeBytes)],
          ['Block size', r.blockSizeBytes ? formatBytes(r.blockSizeBytes) : '-'],
          ['Logical sector size', `${r.logicalSectorSizeBytes} bytes`],
          ['Physical sector size', `${r.physicalSectorSizeBytes} bytes`],
          ['Disk id', r.diskId ?? '-'],
          ['Parent', r.parentPath ?? '-'],
        ]
          .map(([k, v]) => `${k!.padEnd(21)}: ${v}`)
          .join('\n'),
    },
    async handler({ path }) {
      return inspectDisk(resolve(path))
    },
  }),
]
