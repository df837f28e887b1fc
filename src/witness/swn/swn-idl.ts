/**
 * MS-SWN (SMB Witness) declared once with the NDR combinators: the interface, its types and its six operations.
 * Encoders and decoders for the server and the client are derived from these declarations. The notification
 * message buffers inside RESP_ASYNC_NOTIFY are packed little-endian blobs, not NDR; they live in
 * swn-messages.ts.
 */
import * as ndr from '../dcerpc/ndr.js'
import type { SyntaxId } from '../dcerpc/pdu.js'
import { ipv4FromBytes, ipv4ToBytes, ipv6FromBytes, ipv6ToBytes } from './ip-address.js'

export const WitnessSyntax: SyntaxId = { uuid: 'ccd8c074-d0e5-4a40-92b4-d074faa6ba28', major: 1, minor: 1 }

/** Protocol versions (MS-SWN 2.2.2.x). */
export const WitnessVersion = { v1: 0x00010001, v2: 0x00020000, unspecified: 0xffffffff } as const

/** WITNESS_INTERFACE_INFO.State. */
export const InterfaceState = { unknown: 0, available: 1, unavailable: 0xff } as const

/** WITNESS_INTERFACE_INFO.Flags. */
export const InterfaceFlag = { ipv4: 0x1, ipv6: 0x2, interfaceWitness: 0x4 } as const

/** RESP_ASYNC_NOTIFY.MessageType. */
export const MessageType = { resourceChange: 1, clientMove: 2, shareMove: 3, ipChange: 4 } as const

/** WitnessrRegisterEx Flags. */
export const RegisterExFlag = { none: 0, ipNotification: 0x1 } as const

/** Win32 status codes the witness returns (MS-SWN 3.1.4). */
export const WitnessStatus = {
  success: 0,
  accessDenied: 0x5,
  invalidParameter: 0x57,
  noMoreItems: 0x103,
  notFound: 0x490,
  revisionMismatch: 0x51a,
  timeout: 0x5b4,
  invalidState: 0x139f,
} as const

/** IPV4 address: 4 bytes in network order, 4-aligned (a big-endian ULONG). */
const ipv4 = ndr.mapped(ndr.fixedBytes(4, 4), ipv4ToBytes, ipv4FromBytes)
/** IPV6 address: 16 bytes in network order. */
const ipv6 = ndr.mapped(ndr.fixedBytes(16, 2), ipv6ToBytes, ipv6FromBytes)

/** WITNESS_INTERFACE_INFO: 552 bytes. */
export const WitnessInterfaceInfo = ndr.struct({
  /** InterfaceGroupName: WCHAR[260], NUL-terminated, zero-filled. */
  interfaceGroupName: ndr.fixedWideString(260),
  /** Version: the witness protocol version this interface supports (0xFFFFFFFF from Windows). */
  version: ndr.u32,
  /** State: InterfaceState. */
  state: ndr.u16,
  /** IPV4: '0.0.0.0' when absent. */
  ipv4,
  /** IPV6: '::' when absent. */
  ipv6,
  /** Flags: InterfaceFlag bits. */
  flags: ndr.u32,
})
export type WitnessInterfaceInfo = ndr.Infer<typeof WitnessInterfaceInfo>

/** WITNESS_INTERFACE_LIST. */
export const WitnessInterfaceList = ndr.struct({
  numberOfInterfaces: ndr.u32,
  /** [size_is(NumberOfInterfaces), unique] */
  interfaces: ndr.unique(ndr.conformantArray(WitnessInterfaceInfo, 4096)),
})

/** RESP_ASYNC_NOTIFY. */
export const RespAsyncNotify = ndr.struct({
  /** MessageType. */
  messageType: ndr.u32,
  /** Length: bytes in messageBuffer. */
  length: ndr.u32,
  /** NumberOfMessages in the buffer. */
  numberOfMessages: ndr.u32,
  /** [size_is(Length), unique] BYTE* MessageBuffer: packed messages (swn-messages.ts). */
  messageBuffer: ndr.unique(ndr.conformantBytes(1 << 20)),
})
export type RespAsyncNotify = ndr.Infer<typeof RespAsyncNotify>

const str = ndr.unique(ndr.wideString(1024))

export const GetInterfaceList = ndr.operation({
  name: 'WitnessrGetInterfaceList',
  opnum: 0,
  in: {},
  out: { interfaceList: ndr.unique(WitnessInterfaceList), status: ndr.u32 },
})

export const Register = ndr.operation({
  name: 'WitnessrRegister',
  opnum: 1,
  in: { version: ndr.u32, netName: str, ipAddress: str, clientComputerName: str },
  out: { contextHandle: ndr.contextHandle, status: ndr.u32 },
})

export const UnRegister = ndr.operation({
  name: 'WitnessrUnRegister',
  opnum: 2,
  in: { contextHandle: ndr.contextHandle },
  out: { status: ndr.u32 },
})

export const AsyncNotify = ndr.operation({
  name: 'WitnessrAsyncNotify',
  opnum: 3,
  in: { contextHandle: ndr.contextHandle },
  out: { response: ndr.unique(RespAsyncNotify), status: ndr.u32 },
})

export const RegisterEx = ndr.operation({
  name: 'WitnessrRegisterEx',
  opnum: 4,
  in: {
    version: ndr.u32,
    netName: str,
    shareName: str,
    ipAddress: str,
    clientComputerName: str,
    /** RegisterExFlag bits. */
    flags: ndr.u32,
    /** KeepAliveTimeout: seconds (Samba and Windows behaviour; the spec says milliseconds); 0 = none. */
    keepAliveTimeout: ndr.u32,
  },
  out: { contextHandle: ndr.contextHandle, status: ndr.u32 },
})

/** Opnum 5 (Windows Server 2025): [in, out] context handle, set to NULL on success. */
export const UnRegisterEx = ndr.operation({
  name: 'WitnessrUnRegisterEx',
  opnum: 5,
  in: { contextHandle: ndr.contextHandle },
  out: { contextHandle: ndr.contextHandle, status: ndr.u32 },
})
