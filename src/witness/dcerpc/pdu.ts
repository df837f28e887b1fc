/**
 * DCE/RPC connection-oriented PDUs (C706 chapter 12, MS-RPCE 2.2.2): one layout file for every PDU the witness
 * runtime sends or accepts, with an encoder and a decoder per PDU type.
 *
 *   0        1        2        3        4            8          10         12         16
 *   +--------+--------+--------+--------+------------+----------+----------+----------+--------------
 *   |rpc_vers| minor  | ptype  | flags  | drep (4 B) | frag_len | auth_len | call_id  | body ...
 *   +--------+--------+--------+--------+------------+----------+----------+----------+--------------
 *   ... body | auth pad (auth_pad_length bytes) | sec_trailer (8 B) | auth_value (auth_len bytes)
 *
 * Only little-endian, ASCII, IEEE data representation (drep 10 00 00 00) is accepted: every client of the witness
 * (Windows, Samba) sends it, and NDR big-endian support would double the decoder for no user.
 *
 * Decoding is strict about lengths (frag_len matches the buffer, auth trailer inside the PDU, counts inside the
 * body) and lenient about reserved fields, which are kept so a captured PDU re-encodes byte-identically.
 */
import { ProtocolError } from '../../engine/errors.js'
import { Reader, Writer, guidFromBytes, guidToBytes } from './bytes.js'

export const PType = {
  request: 0,
  response: 2,
  fault: 3,
  bind: 11,
  bindAck: 12,
  bindNak: 13,
  alterContext: 14,
  alterContextResp: 15,
  auth3: 16,
  shutdown: 17,
  coCancel: 18,
  orphaned: 19,
} as const
export type PTypeValue = (typeof PType)[keyof typeof PType]

/** pfc_flags bits. */
export const Pfc = {
  first: 0x01,
  last: 0x02,
  /** In request/response: pending cancel. In bind/bind_ack (MS-RPCE 2.2.2.3): header signing supported. */
  pendingCancelOrHeaderSign: 0x04,
  /** Concurrent multiplexing: several calls may be in progress on the connection at once. */
  concMpx: 0x10,
  didNotExecute: 0x20,
  maybe: 0x40,
  objectUuid: 0x80,
} as const

/** Size of the common header and of the sec_trailer that precedes an auth_value. */
export const HeaderBytes = 16
export const SecTrailerBytes = 8

/** Data representation we speak: little-endian integers, ASCII characters, IEEE floats. */
export const DrepLittleEndian = Uint8Array.of(0x10, 0, 0, 0)

/** An abstract or transfer syntax: interface UUID and version. On the wire: UUID, u16 major, u16 minor. */
export interface SyntaxId {
  uuid: string
  major: number
  minor: number
}

export const Ndr20Syntax: SyntaxId = { uuid: '8a885d04-1ceb-11c9-9fe8-08002b104860', major: 2, minor: 0 }
export const Ndr64Syntax: SyntaxId = { uuid: '71710533-beba-4937-8319-b5dbef9ccc36', major: 1, minor: 0 }
/** Bind-time feature negotiation (MS-RPCE 3.3.1.5.3): the first 12 bytes fixed, then a u16 feature bitmask. */
export const BindTimeFeaturePrefix = '6cb71c2c-9812-4540-'
export const NullSyntax: SyntaxId = { uuid: '00000000-0000-0000-0000-000000000000', major: 0, minor: 0 }

/** Feature bits of the bind-time feature negotiation syntax. */
export const BindTimeFeature = { securityContextMultiplexing: 0x1, keepConnectionOnOrphan: 0x2 } as const

/** p_cont_elem_t: one presentation context offered in bind / alter_context. */
export interface PresentationContext {
  contextId: number
  abstractSyntax: SyntaxId
  transferSyntaxes: SyntaxId[]
  /** Reserved byte after n_transfer_syn (kept for byte-identical re-encoding). */
  reserved?: number
}

/** p_result_t result values. */
export const ContextResult = { acceptance: 0, userRejection: 1, providerRejection: 2, negotiateAck: 3 } as const
/** p_provider_reason_t values. */
export const ProviderReason = {
  notSpecified: 0,
  abstractSyntaxNotSupported: 1,
  proposedTransferSyntaxesNotSupported: 2,
  localLimitExceeded: 3,
} as const
/** bind_nak provider_reject_reason values. */
export const BindNakReason = {
  notSpecified: 0,
  temporaryCongestion: 1,
  localLimitExceeded: 2,
  protocolVersionNotSupported: 4,
  authenticationTypeNotRecognized: 8,
  invalidChecksum: 9,
} as const

export interface PresentationResult {
  result: number
  /** Provider reason; for negotiate_ack, the bitmask of accepted bind-time features. */
  reason: number
  transferSyntax: SyntaxId
}

/** sec_trailer + auth_value. */
export interface AuthVerifier {
  /** 0 none, 9 SPNEGO, 10 NTLMSSP, 16 Kerberos. */
  authType: number
  /** 1 none .. 5 packet integrity, 6 packet privacy. */
  authLevel: number
  /** Bytes of padding between the body and the sec_trailer (counted in frag_len, part of the body region). */
  padLength: number
  reserved: number
  contextId: number
  value: Uint8Array
  /** The auth padding bytes as received (encrypted at privacy level); zeros are written when absent. */
  pad?: Uint8Array
}

export const AuthType = { none: 0, spnego: 9, ntlmssp: 10, kerberos: 16 } as const
export const AuthLevel = { none: 1, connect: 2, call: 3, packet: 4, integrity: 5, privacy: 6 } as const

interface Common {
  /** pfc_flags. */
  flags: number
  callId: number
  auth?: AuthVerifier
  /** drep; decoders check it is little-endian, encoders default to DrepLittleEndian. */
  drep?: Uint8Array
  /** rpc_vers_minor (0 or 1; answers echo 0 like Windows). */
  minorVersion?: number
}

export interface BindPdu extends Common {
  ptype: typeof PType.bind | typeof PType.alterContext
  maxXmitFrag: number
  maxRecvFrag: number
  assocGroupId: number
  contexts: PresentationContext[]
}

export interface BindAckPdu extends Common {
  ptype: typeof PType.bindAck | typeof PType.alterContextResp
  maxXmitFrag: number
  maxRecvFrag: number
  assocGroupId: number
  /** Secondary address: the port as decimal ASCII ('' in alter_context_resp). */
  secondaryAddress: string
  results: PresentationResult[]
}

export interface BindNakPdu extends Common {
  ptype: typeof PType.bindNak
  rejectReason: number
  /** Protocol versions supported: [major, minor] pairs. */
  versions: [number, number][]
  /** Bytes after the version list (padding, MS-RPCE signature); zero-filled to 4 when encoding if absent. */
  trailing?: Uint8Array
}

export interface RequestPdu extends Common {
  ptype: typeof PType.request
  allocHint: number
  contextId: number
  opnum: number
  /** Object UUID, present when flags has Pfc.objectUuid. */
  object?: string
  stub: Uint8Array
}

export interface ResponsePdu extends Common {
  ptype: typeof PType.response
  allocHint: number
  contextId: number
  cancelCount: number
  reserved?: number
  stub: Uint8Array
}

export interface FaultPdu extends Common {
  ptype: typeof PType.fault
  allocHint: number
  contextId: number
  cancelCount: number
  /** MS-RPCE: fault flags (0x1 extended error info present). */
  faultFlags?: number
  status: number
  /** Anything after status (reserved u32, extended error); 4 zero bytes when encoding if absent. */
  trailing?: Uint8Array
}

/** auth3, co_cancel, orphaned, shutdown: no body beyond optional padding. */
export interface BarePdu extends Common {
  ptype: typeof PType.auth3 | typeof PType.coCancel | typeof PType.orphaned | typeof PType.shutdown
  /** auth3 carries 4 pad bytes before the verifier (C706 rpcconn_auth3_hdr_t); kept as read. */
  body?: Uint8Array
}

export type Pdu = BindPdu | BindAckPdu | BindNakPdu | RequestPdu | ResponsePdu | FaultPdu | BarePdu

/** Fault status codes (C706 appendix E, MS-RPCE 2.2.2.11 / 3.1.1.5.5). */
export const FaultStatus = {
  accessDenied: 0x00000005,
  contextMismatch: 0x1c00001a,
  opRangeError: 0x1c010002,
  unknownInterface: 0x1c010003,
  protoError: 0x1c01000b,
  unspecifiedReject: 0x1c000009,
  serverTooBusy: 0x000006bb,
  cannotSupport: 0x000006e4,
  /** nca_s_fault_ndr: the stub could not be unmarshalled. */
  ndrError: 0x000006f7,
  remoteDisabled: 0x1c00001c,
} as const

function readSyntax(r: Reader, what: string): SyntaxId {
  const uuid = guidFromBytes(r.bytes(16, what))
  const major = r.u16(what)
  const minor = r.u16(what)
  return { uuid, major, minor }
}

function writeSyntax(w: Writer, s: SyntaxId): void {
  w.bytes(guidToBytes(s.uuid)).u16(s.major).u16(s.minor)
}

/** The 16-byte common header as read from the start of a buffer (used by framing before a PDU is complete). */
export interface CommonHeader {
  rpcVers: number
  minorVersion: number
  ptype: number
  flags: number
  drep: Uint8Array
  fragLength: number
  authLength: number
  callId: number
}

export function decodeHeader(buf: Uint8Array): CommonHeader {
  const r = new Reader(buf)
  const h: CommonHeader = {
    rpcVers: r.u8('rpc_vers'),
    minorVersion: r.u8('rpc_vers_minor'),
    ptype: r.u8('ptype'),
    flags: r.u8('pfc_flags'),
    drep: r.bytes(4, 'drep'),
    fragLength: r.u16('frag_length'),
    authLength: r.u16('auth_length'),
    callId: r.u32('call_id'),
  }
  if (h.rpcVers !== 5 || h.minorVersion > 1) {
    throw new ProtocolError('DCE/RPC', `unsupported protocol version ${h.rpcVers}.${h.minorVersion}`)
  }
  if ((h.drep[0]! & 0xf0) !== 0x10 || h.drep[1] !== 0) {
    throw new ProtocolError('DCE/RPC', `unsupported data representation ${Buffer.from(h.drep).toString('hex')}`)
  }
  if (h.fragLength < HeaderBytes) throw new ProtocolError('DCE/RPC', `frag_length ${h.fragLength} < 16`)
  if (h.authLength > 0 && HeaderBytes + SecTrailerBytes + h.authLength > h.fragLength) {
    throw new ProtocolError('DCE/RPC', `auth_length ${h.authLength} does not fit in frag_length ${h.fragLength}`)
  }
  return h
}

/** Decode one complete PDU (exactly frag_length bytes). */
export function decodePdu(buf: Uint8Array): Pdu {
  const h = decodeHeader(buf)
  if (h.fragLength !== buf.length) {
    throw new ProtocolError('DCE/RPC', `frag_length ${h.fragLength} but PDU has ${buf.length} bytes`)
  }
  let bodyEnd = buf.length
  let auth: AuthVerifier | undefined
  if (h.authLength > 0) {
    const at = buf.length - h.authLength - SecTrailerBytes
    const t = new Reader(buf.subarray(at))
    auth = {
      authType: t.u8('auth_type'),
      authLevel: t.u8('auth_level'),
      padLength: t.u8('auth_pad_length'),
      reserved: t.u8('auth_reserved'),
      contextId: t.u32('auth_context_id'),
      value: buf.slice(at + SecTrailerBytes),
    }
    bodyEnd = at
    if (auth.padLength <= at - HeaderBytes) auth.pad = buf.slice(at - auth.padLength, at)
  }
  const common: Common = { flags: h.flags, callId: h.callId, drep: h.drep.slice(), minorVersion: h.minorVersion }
  if (auth) common.auth = auth
  const r = new Reader(buf.subarray(0, bodyEnd))
  r.pos = HeaderBytes
  const stubEnd = (): number => {
    const end = bodyEnd - (auth ? auth.padLength : 0)
    if (end < r.pos) throw new ProtocolError('DCE/RPC', `auth_pad_length ${auth?.padLength} exceeds the stub`)
    return end
  }
  switch (h.ptype) {
    case PType.bind:
    case PType.alterContext: {
      const maxXmitFrag = r.u16('max_xmit_frag')
      const maxRecvFrag = r.u16('max_recv_frag')
      const assocGroupId = r.u32('assoc_group_id')
      const n = r.u8('n_context_elem')
      r.bytes(3, 'p_cont_list reserved')
      const contexts: PresentationContext[] = []
      for (let i = 0; i < n; i++) {
        const contextId = r.u16('p_cont_id')
        const nTransfer = r.u8('n_transfer_syn')
        const reserved = r.u8('p_cont_elem reserved')
        const abstractSyntax = readSyntax(r, 'abstract_syntax')
        const transferSyntaxes: SyntaxId[] = []
        for (let j = 0; j < nTransfer; j++) transferSyntaxes.push(readSyntax(r, 'transfer_syntax'))
        contexts.push({ contextId, abstractSyntax, transferSyntaxes, reserved })
      }
      return { ...common, ptype: h.ptype, maxXmitFrag, maxRecvFrag, assocGroupId, contexts }
    }
    case PType.bindAck:
    case PType.alterContextResp: {
      const maxXmitFrag = r.u16('max_xmit_frag')
      const maxRecvFrag = r.u16('max_recv_frag')
      const assocGroupId = r.u32('assoc_group_id')
      const len = r.u16('sec_addr length')
      const addr = r.bytes(len, 'sec_addr port_spec')
      const secondaryAddress = Buffer.from(addr).toString('latin1').replace(/\0$/, '')
      r.align(4, 'sec_addr padding')
      const n = r.u8('n_results')
      r.bytes(3, 'p_result_list reserved')
      const results: PresentationResult[] = []
      for (let i = 0; i < n; i++) {
        results.push({ result: r.u16('result'), reason: r.u16('reason'), transferSyntax: readSyntax(r, 'transfer_syntax') })
      }
      return { ...common, ptype: h.ptype, maxXmitFrag, maxRecvFrag, assocGroupId, secondaryAddress, results }
    }
    case PType.bindNak: {
      const rejectReason = r.u16('provider_reject_reason')
      const versions: [number, number][] = []
      if (r.remaining > 0) {
        const n = r.u8('n_protocols')
        for (let i = 0; i < n; i++) versions.push([r.u8('rpc_vers'), r.u8('rpc_vers_minor')])
      }
      return { ...common, ptype: PType.bindNak, rejectReason, versions, trailing: r.bytes(r.remaining).slice() }
    }
    case PType.request: {
      const allocHint = r.u32('alloc_hint')
      const contextId = r.u16('p_cont_id')
      const opnum = r.u16('opnum')
      const pdu: RequestPdu = { ...common, ptype: PType.request, allocHint, contextId, opnum, stub: new Uint8Array() }
      if (h.flags & Pfc.objectUuid) pdu.object = guidFromBytes(r.bytes(16, 'object uuid'))
      pdu.stub = r.bytes(stubEnd() - r.pos, 'stub').slice()
      return pdu
    }
    case PType.response: {
      const allocHint = r.u32('alloc_hint')
      const contextId = r.u16('p_cont_id')
      const cancelCount = r.u8('cancel_count')
      const reserved = r.u8('reserved')
      const stub = r.bytes(stubEnd() - r.pos, 'stub').slice()
      return { ...common, ptype: PType.response, allocHint, contextId, cancelCount, reserved, stub }
    }
    case PType.fault: {
      const allocHint = r.u32('alloc_hint')
      const contextId = r.u16('p_cont_id')
      const cancelCount = r.u8('cancel_count')
      const faultFlags = r.u8('fault_flags')
      const status = r.u32('status')
      return {
        ...common, ptype: PType.fault, allocHint, contextId, cancelCount, faultFlags, status,
        trailing: r.bytes(r.remaining).slice(),
      }
    }
    case PType.auth3:
    case PType.coCancel:
    case PType.orphaned:
    case PType.shutdown:
      return { ...common, ptype: h.ptype, body: r.bytes(r.remaining).slice() }
    default:
      throw new ProtocolError('DCE/RPC', `unsupported PDU type ${h.ptype}`)
  }
}

/**
 * Encode one PDU. frag_length and auth_length are computed; with an auth verifier, `auth.padLength` zero bytes
 * follow the body (callers choose it so the sec_trailer is 16-aligned from the stub start) and `auth.value` is
 * written as given (signers write a placeholder, then patch the last bytes).
 */
export function encodePdu(p: Pdu): Buffer {
  const w = new Writer(64 + ('stub' in p ? p.stub.length : 0))
  const drep = p.drep ?? DrepLittleEndian
  w.u8(5).u8(p.minorVersion ?? 0).u8(p.ptype).u8(p.flags).bytes(drep).u16(0).u16(0).u32(p.callId)
  switch (p.ptype) {
    case PType.bind:
    case PType.alterContext:
      w.u16(p.maxXmitFrag).u16(p.maxRecvFrag).u32(p.assocGroupId).u8(p.contexts.length).u8(0).u16(0)
      for (const c of p.contexts) {
        w.u16(c.contextId).u8(c.transferSyntaxes.length).u8(c.reserved ?? 0)
        writeSyntax(w, c.abstractSyntax)
        for (const s of c.transferSyntaxes) writeSyntax(w, s)
      }
      break
    case PType.bindAck:
    case PType.alterContextResp: {
      w.u16(p.maxXmitFrag).u16(p.maxRecvFrag).u32(p.assocGroupId)
      const addr = p.secondaryAddress === '' ? new Uint8Array() : Buffer.from(p.secondaryAddress + '\0', 'latin1')
      w.u16(addr.length).bytes(addr).align(4)
      w.u8(p.results.length).u8(0).u16(0)
      for (const res of p.results) {
        w.u16(res.result).u16(res.reason)
        writeSyntax(w, res.transferSyntax)
      }
      break
    }
    case PType.bindNak:
      w.u16(p.rejectReason).u8(p.versions.length)
      for (const [maj, min] of p.versions) w.u8(maj).u8(min)
      if (p.trailing) w.bytes(p.trailing)
      else w.align(4)
      break
    case PType.request:
      w.u32(p.allocHint).u16(p.contextId).u16(p.opnum)
      if (p.flags & Pfc.objectUuid) w.bytes(guidToBytes(p.object ?? NullSyntax.uuid))
      w.bytes(p.stub)
      break
    case PType.response:
      w.u32(p.allocHint).u16(p.contextId).u8(p.cancelCount).u8(p.reserved ?? 0).bytes(p.stub)
      break
    case PType.fault:
      w.u32(p.allocHint).u16(p.contextId).u8(p.cancelCount).u8(p.faultFlags ?? 0).u32(p.status)
      w.bytes(p.trailing ?? new Uint8Array(4))
      break
    default:
      if (p.body) w.bytes(p.body)
  }
  if (p.auth) {
    const a = p.auth
    if (a.pad && a.pad.length === a.padLength) w.bytes(a.pad)
    else for (let i = 0; i < a.padLength; i++) w.u8(0)
    w.u8(a.authType).u8(a.authLevel).u8(a.padLength).u8(a.reserved).u32(a.contextId).bytes(a.value)
    w.patchU16(10, a.value.length)
  }
  if (w.length > 0xffff) throw new ProtocolError('DCE/RPC', `PDU of ${w.length} bytes exceeds 65535`)
  w.patchU16(8, w.length)
  return w.finish()
}
