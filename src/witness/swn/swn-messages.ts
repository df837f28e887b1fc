/**
 * The notification messages carried in RESP_ASYNC_NOTIFY.MessageBuffer (MS-SWN 2.2.2.4-2.2.2.6). These are packed
 * little-endian blobs, not NDR, so they have this hand-written codec. Several messages of one type are
 * concatenated; each starts with its own Length, which includes its header.
 *
 *   RESP_RESOURCE_CHANGE: u32 Length | u32 ChangeType | UTF-16LE ResourceName + NUL        (Length = 8 + 2*(n+1))
 *   IPADDR_INFO_LIST:     u32 Length | u32 Reserved (0) | u32 IPAddrInstances | n x IPADDR_INFO   (12 + 24n)
 *   IPADDR_INFO:          u32 Flags | IPV4 (4 B, network order) | IPV6 (16 B, network order)
 */
import { ProtocolError } from '../../engine/errors.js'
import { Reader, Writer } from '../dcerpc/bytes.js'
import { ipv4FromBytes, ipv4ToBytes, ipv6FromBytes, ipv6ToBytes } from './ip-address.js'
import { MessageType } from './swn-idl.js'

/** RESP_RESOURCE_CHANGE.ChangeType. */
export const ChangeType = { unknown: 0, available: 1, unavailable: 0xff } as const

/** IPADDR_INFO.Flags. */
export const IpAddrFlag = { v4: 0x1, v6: 0x2, online: 0x8, offline: 0x10 } as const

export interface ResourceChange {
  changeType: number
  resourceName: string
}

export interface IpAddrInfo {
  flags: number
  ipv4: string
  ipv6: string
}

/** A decoded notification: the message type and its messages. */
export type Notification =
  | { type: typeof MessageType.resourceChange; changes: ResourceChange[] }
  | { type: typeof MessageType.clientMove | typeof MessageType.shareMove | typeof MessageType.ipChange; lists: IpAddrInfo[][] }

export function encodeResourceChange(m: ResourceChange): Buffer {
  const name = Buffer.from(m.resourceName + '\0', 'utf16le')
  return new Writer(8 + name.length).u32(8 + name.length).u32(m.changeType).bytes(name).finish()
}

export function encodeIpAddrInfoList(list: IpAddrInfo[]): Buffer {
  const w = new Writer(12 + 24 * list.length).u32(12 + 24 * list.length).u32(0).u32(list.length)
  for (const a of list) w.u32(a.flags).bytes(ipv4ToBytes(a.ipv4)).bytes(ipv6ToBytes(a.ipv6))
  return w.finish()
}

/** Encode a notification into MessageType, NumberOfMessages and the message buffer. */
export function encodeNotification(n: Notification): { messageType: number; numberOfMessages: number; buffer: Buffer } {
  if (n.type === MessageType.resourceChange) {
    return { messageType: n.type, numberOfMessages: n.changes.length, buffer: Buffer.concat(n.changes.map(encodeResourceChange)) }
  }
  return { messageType: n.type, numberOfMessages: n.lists.length, buffer: Buffer.concat(n.lists.map(encodeIpAddrInfoList)) }
}

/** Decode a message buffer; every Length is checked against the buffer and the declared message count. */
export function decodeNotification(messageType: number, numberOfMessages: number, buffer: Uint8Array): Notification {
  const r = new Reader(buffer, 'MS-SWN')
  const msgs: Reader[] = []
  for (let i = 0; i < numberOfMessages; i++) {
    const start = r.pos
    const len = r.u32('message Length')
    if (len < 8 || start + len > buffer.length) {
      throw new ProtocolError('MS-SWN', `message ${i}: Length ${len} does not fit the ${buffer.length}-byte buffer`)
    }
    msgs.push(new Reader(buffer.subarray(start + 4, start + len), 'MS-SWN'))
    r.pos = start + len
  }
  if (r.remaining !== 0) throw new ProtocolError('MS-SWN', `${r.remaining} bytes after ${numberOfMessages} messages`)
  if (messageType === MessageType.resourceChange) {
    return {
      type: messageType,
      changes: msgs.map(m => {
        const changeType = m.u32('ChangeType')
        const name = Buffer.from(m.bytes(m.remaining & ~1, 'ResourceName')).toString('utf16le')
        return { changeType, resourceName: name.replace(/\0.*$/s, '') }
      }),
    }
  }
  if (messageType === MessageType.clientMove || messageType === MessageType.shareMove || messageType === MessageType.ipChange) {
    return {
      type: messageType,
      lists: msgs.map(m => {
        m.u32('Reserved')
        const n = m.u32('IPAddrInstances')
        if (n * 24 !== m.remaining) throw new ProtocolError('MS-SWN', `IPADDR_INFO_LIST: ${n} instances in ${m.remaining} bytes`)
        const list: IpAddrInfo[] = []
        for (let i = 0; i < n; i++) {
          list.push({ flags: m.u32('Flags'), ipv4: ipv4FromBytes(m.bytes(4)), ipv6: ipv6FromBytes(m.bytes(16)) })
        }
        return list
      }),
    }
  }
  throw new ProtocolError('MS-SWN', `unknown MessageType ${messageType}`)
}
