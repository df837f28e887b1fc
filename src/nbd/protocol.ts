/**
 * NBD wire constants, from the NBD protocol specification (NetworkBlockDevice/nbd, doc/proto.md). Every integer on
 * the wire is big-endian. Only the fixed newstyle handshake is implemented; the experimental EXTENDED_HEADERS,
 * RESIZE and the withdrawn PEEK_EXPORT extensions are listed so their numbers are recognised and refused cleanly.
 *
 * Message layouts (byte sizes in brackets):
 *   server greeting   NBDMAGIC[8] IHAVEOPT[8] handshake-flags[2]
 *   client flags      client-flags[4]
 *   option request    IHAVEOPT[8] option[4] length[4] data[length]
 *   option reply      REPLY_MAGIC[8] option[4] reply-type[4] length[4] data[length]
 *   request           REQUEST_MAGIC[4] command-flags[2] type[2] cookie[8] offset[8] length[4] (write data)
 *   simple reply      SIMPLE_REPLY_MAGIC[4] error[4] cookie[8] (read data)
 *   structured chunk  STRUCTURED_REPLY_MAGIC[4] flags[2] type[2] cookie[8] length[4] payload[length]
 */

// ---- magic numbers -------------------------------------------------------------------------------------------

/** "NBDMAGIC": first 8 bytes the server sends. */
export const NBD_MAGIC = 0x4e42444d41474943n
/** "IHAVEOPT": follows NBDMAGIC in the newstyle greeting and starts every option request. */
export const NBD_OPTS_MAGIC = 0x49484156454f5054n
/** Starts every option reply in fixed newstyle negotiation. */
export const NBD_OPTION_REPLY_MAGIC = 0x0003e889045565a9n
/** Starts every transmission request. */
export const NBD_REQUEST_MAGIC = 0x25609513
/** Starts a simple reply. */
export const NBD_SIMPLE_REPLY_MAGIC = 0x67446698
/** Starts a structured reply chunk. */
export const NBD_STRUCTURED_REPLY_MAGIC = 0x668e33ef

// ---- sizes of fixed parts ------------------------------------------------------------------------------------

/** Server greeting: NBDMAGIC + IHAVEOPT + handshake flags. */
export const GREETING_BYTES = 18
/** Client flags word after the greeting. */
export const CLIENT_FLAGS_BYTES = 4
/** Option request header: IHAVEOPT + option + length. */
export const OPTION_HEADER_BYTES = 16
/** Option reply header: magic + option + reply type + length. */
export const OPTION_REPLY_HEADER_BYTES = 20
/** Transmission request header. */
export const REQUEST_HEADER_BYTES = 28
/** Simple reply header. */
export const SIMPLE_REPLY_HEADER_BYTES = 16
/** Structured reply chunk header. */
export const STRUCTURED_REPLY_HEADER_BYTES = 20
/** Zero padding after the NBD_OPT_EXPORT_NAME reply unless NO_ZEROES was negotiated. */
export const EXPORT_NAME_PADDING_BYTES = 124

// ---- handshake flags (server, u16) ---------------------------------------------------------------------------

/** Server supports the fixed newstyle protocol. */
export const NBD_FLAG_FIXED_NEWSTYLE = 1 << 0
/** Server can omit the 124 zero bytes after NBD_OPT_EXPORT_NAME. */
export const NBD_FLAG_NO_ZEROES = 1 << 1

// ---- client flags (u32) --------------------------------------------------------------------------------------

/** Client speaks fixed newstyle. */
export const NBD_FLAG_C_FIXED_NEWSTYLE = 1 << 0
/** Client asks the server to omit the 124 zero bytes after NBD_OPT_EXPORT_NAME. */
export const NBD_FLAG_C_NO_ZEROES = 1 << 1
/** Every client flag this server understands; any other bit set makes the server close the connection. */
export const KNOWN_CLIENT_FLAGS = NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES

// ---- option types (u32) --------------------------------------------------------------------------------------

/** Choose an export and enter transmission; no error reply possible (failure closes the connection). */
export const NBD_OPT_EXPORT_NAME = 1
/** Client aborts negotiation; server replies ACK and closes. */
export const NBD_OPT_ABORT = 2
/** List exports: one NBD_REP_SERVER each, then ACK. */
export const NBD_OPT_LIST = 3
/** Withdrawn PEEK_EXPORT extension; not in use. */
export const NBD_OPT_PEEK_EXPORT = 4
/** Upgrade to TLS (not supported: answered with NBD_REP_ERR_UNSUP). */
export const NBD_OPT_STARTTLS = 5
/** Describe an export (NBD_REP_INFO items, then ACK) without entering transmission. */
export const NBD_OPT_INFO = 6
/** Like NBD_OPT_INFO, then enter transmission on ACK. */
export const NBD_OPT_GO = 7
/** Use structured replies in transmission. */
export const NBD_OPT_STRUCTURED_REPLY = 8
/** List metadata contexts matching queries. */
export const NBD_OPT_LIST_META_CONTEXT = 9
/** Select metadata contexts for NBD_CMD_BLOCK_STATUS. */
export const NBD_OPT_SET_META_CONTEXT = 10
/** Experimental EXTENDED_HEADERS extension (not supported). */
export const NBD_OPT_EXTENDED_HEADERS = 11

// ---- option reply types (u32) --------------------------------------------------------------------------------

/** The option succeeded (final reply). */
export const NBD_REP_ACK = 1
/** One export in reply to NBD_OPT_LIST: u32 name length, name, optional description. */
export const NBD_REP_SERVER = 2
/** One information item in reply to NBD_OPT_INFO / NBD_OPT_GO: u16 info type, then its data. */
export const NBD_REP_INFO = 3
/** One metadata context: u32 context id, then its name. */
export const NBD_REP_META_CONTEXT = 4
/** Bit 31 marks error replies; the data, if any, is a UTF-8 message for a person. */
export const NBD_REP_FLAG_ERROR = 0x80000000
/** The option is not known or not supported. */
export const NBD_REP_ERR_UNSUP = (NBD_REP_FLAG_ERROR | 1) >>> 0
/** Forbidden by server policy. */
export const NBD_REP_ERR_POLICY = (NBD_REP_FLAG_ERROR | 2) >>> 0
/** Syntactically or semantically invalid option (e.g. data where none is allowed). */
export const NBD_REP_ERR_INVALID = (NBD_REP_FLAG_ERROR | 3) >>> 0
/** Platform does not support the option. */
export const NBD_REP_ERR_PLATFORM = (NBD_REP_FLAG_ERROR | 4) >>> 0
/** TLS is required first. */
export const NBD_REP_ERR_TLS_REQD = (NBD_REP_FLAG_ERROR | 5) >>> 0
/** The named export does not exist. */
export const NBD_REP_ERR_UNKNOWN = (NBD_REP_FLAG_ERROR | 6) >>> 0
/** The server is shutting down. */
export const NBD_REP_ERR_SHUTDOWN = (NBD_REP_FLAG_ERROR | 7) >>> 0
/** The client must request NBD_INFO_BLOCK_SIZE before NBD_OPT_GO. */
export const NBD_REP_ERR_BLOCK_SIZE_REQD = (NBD_REP_FLAG_ERROR | 8) >>> 0
/** The request or the reply is too large. */
export const NBD_REP_ERR_TOO_BIG = (NBD_REP_FLAG_ERROR | 9) >>> 0

// ---- NBD_REP_INFO item types (u16) ---------------------------------------------------------------------------

/** u64 export size, u16 transmission flags (mandatory on success). */
export const NBD_INFO_EXPORT = 0
/** The export's canonical name (string). */
export const NBD_INFO_NAME = 1
/** A description for people (string). */
export const NBD_INFO_DESCRIPTION = 2
/** u32 minimum block size, u32 preferred block size, u32 maximum payload size. */
export const NBD_INFO_BLOCK_SIZE = 3

// ---- transmission flags (u16, in NBD_INFO_EXPORT and the EXPORT_NAME reply) ---------------------------------

/** Always set: the other flags are valid. */
export const NBD_FLAG_HAS_FLAGS = 1 << 0
/** The export is read-only. */
export const NBD_FLAG_READ_ONLY = 1 << 1
/** NBD_CMD_FLUSH is supported. */
export const NBD_FLAG_SEND_FLUSH = 1 << 2
/** NBD_CMD_FLAG_FUA is supported. */
export const NBD_FLAG_SEND_FUA = 1 << 3
/** The export has rotational characteristics (elevator hint). */
export const NBD_FLAG_ROTATIONAL = 1 << 4
/** NBD_CMD_TRIM is supported. */
export const NBD_FLAG_SEND_TRIM = 1 << 5
/** NBD_CMD_WRITE_ZEROES is supported. */
export const NBD_FLAG_SEND_WRITE_ZEROES = 1 << 6
/** NBD_CMD_FLAG_DF on reads is supported (only with structured replies). */
export const NBD_FLAG_SEND_DF = 1 << 7
/** FLUSH and FUA on one connection are visible on every connection to the export at reply time. */
export const NBD_FLAG_CAN_MULTI_CONN = 1 << 8
/** Experimental RESIZE extension. */
export const NBD_FLAG_SEND_RESIZE = 1 << 9
/** NBD_CMD_CACHE is understood. */
export const NBD_FLAG_SEND_CACHE = 1 << 10
/** NBD_CMD_FLAG_FAST_ZERO is supported. */
export const NBD_FLAG_SEND_FAST_ZERO = 1 << 11

// ---- commands (u16) ------------------------------------------------------------------------------------------

/** Read `length` bytes at `offset`. */
export const NBD_CMD_READ = 0
/** Write the `length` bytes that follow the header. */
export const NBD_CMD_WRITE = 1
/** Soft disconnect: no reply; the server closes after in-flight requests. */
export const NBD_CMD_DISC = 2
/** Make every completed write durable. */
export const NBD_CMD_FLUSH = 3
/** The range is no longer needed (may be deallocated). */
export const NBD_CMD_TRIM = 4
/** Prefetch hint (this server answers it as a no-op). */
export const NBD_CMD_CACHE = 5
/** Make the range read as zeros (may punch a hole unless NO_HOLE). */
export const NBD_CMD_WRITE_ZEROES = 6
/** Metadata (allocation, dirtiness) of a range, per selected context. */
export const NBD_CMD_BLOCK_STATUS = 7
/** Experimental RESIZE extension (not supported). */
export const NBD_CMD_RESIZE = 8

// ---- command flags (u16) -------------------------------------------------------------------------------------

/** Force unit access: durable before the reply (valid on every command once SEND_FUA is advertised). */
export const NBD_CMD_FLAG_FUA = 1 << 0
/** WRITE_ZEROES: keep the range allocated. */
export const NBD_CMD_FLAG_NO_HOLE = 1 << 1
/** READ: reply with at most one content chunk. */
export const NBD_CMD_FLAG_DF = 1 << 2
/** BLOCK_STATUS: one descriptor per context, no longer than the request. */
export const NBD_CMD_FLAG_REQ_ONE = 1 << 3
/** WRITE_ZEROES: fail fast with ENOTSUP unless zeroing is faster than writing. */
export const NBD_CMD_FLAG_FAST_ZERO = 1 << 4
/** Experimental EXTENDED_HEADERS: the length field is a payload length. */
export const NBD_CMD_FLAG_PAYLOAD_LEN = 1 << 5

// ---- structured reply flags and types ------------------------------------------------------------------------

/** Last chunk of this reply. */
export const NBD_REPLY_FLAG_DONE = 1 << 0
/** No payload; ends a reply successfully (with DONE). */
export const NBD_REPLY_TYPE_NONE = 0
/** u64 offset, then data. */
export const NBD_REPLY_TYPE_OFFSET_DATA = 1
/** u64 offset, u32 hole size: the range reads as zeros. */
export const NBD_REPLY_TYPE_OFFSET_HOLE = 2
/** u32 context id, then (u32 length, u32 flags) descriptors. */
export const NBD_REPLY_TYPE_BLOCK_STATUS = 5
/** Bit 15 marks error chunks. */
export const NBD_REPLY_TYPE_ERROR_BIT = 1 << 15
/** u32 error, u16 message length, message. */
export const NBD_REPLY_TYPE_ERROR = NBD_REPLY_TYPE_ERROR_BIT | 1
/** u32 error, u16 message length, message, u64 offset of the failure. */
export const NBD_REPLY_TYPE_ERROR_OFFSET = NBD_REPLY_TYPE_ERROR_BIT | 2

// ---- base:allocation flags -----------------------------------------------------------------------------------

/** base:allocation: the extent is not allocated (writing may fail with ENOSPC). */
export const NBD_STATE_HOLE = 1 << 0
/** base:allocation: the extent reads as zeros. */
export const NBD_STATE_ZERO = 1 << 1
/** qemu:dirty-bitmap:NAME: the extent changed since the bitmap's point. */
export const NBD_STATE_DIRTY = 1 << 0

// ---- error values (u32) --------------------------------------------------------------------------------------

/** Operation not permitted (write to a read-only export). */
export const NBD_EPERM = 1
/** Input/output error. */
export const NBD_EIO = 5
/** Cannot allocate memory. */
export const NBD_ENOMEM = 12
/** Invalid argument (bad range, alignment, flag or command). */
export const NBD_EINVAL = 22
/** No space left (write beyond the end, or the backing store is full). */
export const NBD_ENOSPC = 28
/** Value too large (DF read too long, payload-less command over the maximum). */
export const NBD_EOVERFLOW = 75
/** Operation not supported (only for FAST_ZERO). */
export const NBD_ENOTSUP = 95
/** The server is shutting down. */
export const NBD_ESHUTDOWN = 108

// ---- limits of this server -----------------------------------------------------------------------------------

/** Longest string the spec allows (export names, context names, messages). */
export const NBD_MAX_STRING_BYTES = 4096
/** Most descriptors one BLOCK_STATUS chunk should carry (spec: SHOULD NOT send more than 2^20). */
export const NBD_MAX_BLOCK_STATUS_DESCRIPTORS = 1 << 20
/** Default maximum payload of READ/WRITE (2^25, the size every client must be allowed). */
export const DEFAULT_MAX_PAYLOAD_BYTES = 32 * 1024 * 1024
/** Default preferred block size advertised in NBD_INFO_BLOCK_SIZE. */
export const DEFAULT_PREFERRED_BLOCK_BYTES = 4096

/** Name of an option, for logs and messages. */
export function optionName(option: number): string {
  return OPTION_NAMES[option] ?? `option ${option}`
}

/** Name of a command, for logs and messages. */
export function commandName(type: number): string {
  return COMMAND_NAMES[type] ?? `command ${type}`
}

const OPTION_NAMES: Record<number, string> = {
  [NBD_OPT_EXPORT_NAME]: 'NBD_OPT_EXPORT_NAME',
  [NBD_OPT_ABORT]: 'NBD_OPT_ABORT',
  [NBD_OPT_LIST]: 'NBD_OPT_LIST',
  [NBD_OPT_PEEK_EXPORT]: 'NBD_OPT_PEEK_EXPORT',
  [NBD_OPT_STARTTLS]: 'NBD_OPT_STARTTLS',
  [NBD_OPT_INFO]: 'NBD_OPT_INFO',
  [NBD_OPT_GO]: 'NBD_OPT_GO',
  [NBD_OPT_STRUCTURED_REPLY]: 'NBD_OPT_STRUCTURED_REPLY',
  [NBD_OPT_LIST_META_CONTEXT]: 'NBD_OPT_LIST_META_CONTEXT',
  [NBD_OPT_SET_META_CONTEXT]: 'NBD_OPT_SET_META_CONTEXT',
  [NBD_OPT_EXTENDED_HEADERS]: 'NBD_OPT_EXTENDED_HEADERS',
}

const COMMAND_NAMES: Record<number, string> = {
  [NBD_CMD_READ]: 'NBD_CMD_READ',
  [NBD_CMD_WRITE]: 'NBD_CMD_WRITE',
  [NBD_CMD_DISC]: 'NBD_CMD_DISC',
  [NBD_CMD_FLUSH]: 'NBD_CMD_FLUSH',
  [NBD_CMD_TRIM]: 'NBD_CMD_TRIM',
  [NBD_CMD_CACHE]: 'NBD_CMD_CACHE',
  [NBD_CMD_WRITE_ZEROES]: 'NBD_CMD_WRITE_ZEROES',
  [NBD_CMD_BLOCK_STATUS]: 'NBD_CMD_BLOCK_STATUS',
  [NBD_CMD_RESIZE]: 'NBD_CMD_RESIZE',
}
