/**
 * Typed errors shared by every domain.
 *
 * EngineError is what crosses the JSON-RPC boundary: `code` is a JSON-RPC error code (application errors use
 * -32000..-32099), `category` is one of PowerShell's ErrorCategory names so the module can build an ErrorRecord
 * with the right category, and `data` carries machine-readable detail.
 *
 * FormatError and ProtocolError are raised inside the format and protocol layers; they carry the location of the
 * problem (file + offset + structure, or peer + message) and are mapped to EngineError at the boundary.
 */

/** PowerShell's System.Management.Automation.ErrorCategory names that the engine uses. */
export type ErrorCategory =
  | 'NotSpecified'
  | 'InvalidArgument'
  | 'InvalidData'
  | 'InvalidOperation'
  | 'InvalidResult'
  | 'ObjectNotFound'
  | 'PermissionDenied'
  | 'ResourceBusy'
  | 'ResourceExists'
  | 'ResourceUnavailable'
  | 'OperationTimeout'
  | 'OperationStopped'
  | 'NotImplemented'
  | 'ProtocolError'
  | 'ConnectionError'
  | 'AuthenticationError'
  | 'SecurityError'
  | 'ReadError'
  | 'WriteError'
  | 'DeviceError'
  | 'LimitsExceeded'

/** Application error codes (JSON-RPC reserves -32000..-32099 for these). */
export const AppErrorCode = {
  Generic: -32000,
  NotFound: -32001,
  InvalidData: -32002,
  Busy: -32003,
  Timeout: -32004,
  Denied: -32005,
  Cancelled: -32006,
  Unsupported: -32007,
  Io: -32008,
} as const

export class EngineError extends Error {
  override readonly name: string = 'EngineError'
  constructor(
    message: string,
    readonly category: ErrorCategory = 'NotSpecified',
    readonly code: number = AppErrorCode.Generic,
    readonly data: Record<string, unknown> = {},
  ) {
    super(message)
  }
}

/** A structure inside a disk (or other) file is invalid. */
export class FormatError extends EngineError {
  override readonly name = 'FormatError'
  constructor(
    readonly file: string,
    readonly structure: string,
    readonly offset: bigint | number | null,
    detail: string,
  ) {
    super(
      `${file}: ${structure}${offset === null ? '' : ` at offset ${offset}`}: ${detail}`,
      'InvalidData',
      AppErrorCode.InvalidData,
      { file, structure, offset: offset === null ? null : Number(offset) },
    )
  }
}

/** A network peer broke its protocol. Protocol layers map this to their own error (NBD errno, DCE/RPC fault). */
export class ProtocolError extends EngineError {
  override readonly name = 'ProtocolError'
  constructor(
    readonly protocol: string,
    detail: string,
    data: Record<string, unknown> = {},
  ) {
    super(`${protocol}: ${detail}`, 'ProtocolError', AppErrorCode.InvalidData, { protocol, ...data })
  }
}

const errnoCategories: Record<string, [ErrorCategory, number]> = {
  ENOENT: ['ObjectNotFound', AppErrorCode.NotFound],
  ENOTDIR: ['ObjectNotFound', AppErrorCode.NotFound],
  EACCES: ['PermissionDenied', AppErrorCode.Denied],
  EPERM: ['PermissionDenied', AppErrorCode.Denied],
  EROFS: ['PermissionDenied', AppErrorCode.Denied],
  EBUSY: ['ResourceBusy', AppErrorCode.Busy],
  EAGAIN: ['ResourceBusy', AppErrorCode.Busy],
  EEXIST: ['ResourceExists', AppErrorCode.Generic],
  EISDIR: ['InvalidArgument', AppErrorCode.Generic],
  ENOSPC: ['WriteError', AppErrorCode.Io],
  EIO: ['DeviceError', AppErrorCode.Io],
  ETIMEDOUT: ['OperationTimeout', AppErrorCode.Timeout],
  ECONNREFUSED: ['ConnectionError', AppErrorCode.Generic],
  EADDRINUSE: ['ResourceBusy', AppErrorCode.Busy],
}

/**
 * Turn anything thrown into an EngineError. Node system errors (ENOENT, EACCES, ...) keep their path and get the
 * matching category; anything else becomes an internal error with its message kept.
 */
export function toEngineError(err: unknown): EngineError {
  if (err instanceof EngineError) return err
  const e = err as NodeJS.ErrnoException
  if (e && typeof e === 'object' && typeof e.code === 'string' && e.code in errnoCategories) {
    const [category, code] = errnoCategories[e.code]!
    // link/rename/copyfile: EEXIST is about the destination (e.g. a disk created under a temporary name and linked
    // into place), the other errors about the source
    const dest = (e as { dest?: string }).dest
    const path = e.code === 'EEXIST' && dest ? dest : e.path
    const what = path ? `${path}: ` : ''
    return new EngineError(`${what}${describeErrno(e.code)}`, category, code, {
      errno: e.code,
      ...(path ? { path } : {}),
      ...(e.syscall ? { syscall: e.syscall } : {}),
    })
  }
  const message = e instanceof Error ? e.message : String(err)
  return new EngineError(message, 'NotSpecified', -32603, {})
}

function describeErrno(code: string): string {
  switch (code) {
    case 'ENOENT': return 'no such file or directory'
    case 'ENOTDIR': return 'a component of the path is not a directory'
    case 'EACCES': case 'EPERM': return 'permission denied'
    case 'EROFS': return 'read-only file system'
    case 'EBUSY': return 'resource busy'
    case 'EAGAIN': return 'resource temporarily unavailable'
    case 'EEXIST': return 'already exists'
    case 'EISDIR': return 'is a directory'
    case 'ENOSPC': return 'no space left on device'
    case 'EIO': return 'input/output error'
    case 'ETIMEDOUT': return 'timed out'
    case 'ECONNREFUSED': return 'connection refused'
    case 'EADDRINUSE': return 'address already in use'
    default: return code
  }
}
