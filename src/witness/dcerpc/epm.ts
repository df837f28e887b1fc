/**
 * Endpoint mapper (C706 appendix O, MS-RPCE 2.2.1.2): interface e1af8308-5d1f-11c9-91a4-08002b14a0fa v3.0 on TCP
 * 135, bound without authentication. Clients (rpcclient always, Windows when no port is known) send ept_map with
 * a tower naming the interface and get back a tower with the TCP port and IPv4 address of the server.
 *
 * A tower is not NDR: u16 floor_count, then per floor u16 lhs_length | lhs | u16 rhs_length | rhs, little-endian
 * lengths, with the port and address in network order:
 *   floor 1: 0x0d + interface UUID + u16 major | u16 minor      floor 2: 0x0d + NDR20 UUID + u16 2 | u16 0
 *   floor 3: 0x0b (connection-oriented RPC) | u16 0             floor 4: 0x07 (TCP) | u16 port (big-endian)
 *   floor 5: 0x09 (IP) | 4-byte IPv4 (big-endian)
 */
import { isIPv4 } from 'node:net'
import { ProtocolError } from '../../engine/errors.js'
import { Reader, Writer, guidFromBytes, guidToBytes } from './bytes.js'
import * as ndr from './ndr.js'
import { Ndr20Syntax, FaultStatus, type SyntaxId } from './pdu.js'
import { RpcFault, type RpcInterface } from './server.js'

export const EpmSyntax: SyntaxId = { uuid: 'e1af8308-5d1f-11c9-91a4-08002b14a0fa', major: 3, minor: 0 }
export const EptStatus = { ok: 0, notRegistered: 0x16c9a0d6 } as const

const Protocol = { uuid: 0x0d, ncacn: 0x0b, tcp: 0x07, ip: 0x09 } as const

export interface Tower {
  interface: SyntaxId
  transfer: SyntaxId
  /** TCP port (0 in a query). */
  port: number
  /** IPv4 address ('0.0.0.0' in a query). */
  address: string
}

export function encodeTower(t: Tower): Buffer {
  const w = new Writer(75).u16(5)
  const uuidFloor = (s: SyntaxId) => w.u16(19).u8(Protocol.uuid).bytes(guidToBytes(s.uuid)).u16(s.major).u16(2).u16(s.minor)
  uuidFloor(t.interface)
  uuidFloor(t.transfer)
  w.u16(1).u8(Protocol.ncacn).u16(2).u16(0)
  w.u16(1).u8(Protocol.tcp).u16(2).bytes(Uint8Array.of(t.port >> 8, t.port & 0xff))
  w.u16(1).u8(Protocol.ip).u16(4).bytes(Uint8Array.from(t.address.split('.').map(Number)))
  return w.finish()
}

/** Decode a tower; only the floors the witness uses are interpreted, others are skipped. */
export function decodeTower(b: Uint8Array): Tower {
  const r = new Reader(b, 'EPM tower')
  const floors = r.u16('floor_count')
  if (floors > 16) throw new ProtocolError('EPM tower', `${floors} floors`)
  const t: Tower = { interface: { uuid: '', major: 0, minor: 0 }, transfer: { uuid: '', major: 0, minor: 0 }, port: 0, address: '0.0.0.0' }
  for (let i = 0; i < floors; i++) {
    const lhs = new Reader(r.bytes(r.u16('lhs_length'), 'lhs'), 'EPM tower')
    const rhs = r.bytes(r.u16('rhs_length'), 'rhs')
    const proto = lhs.u8('protocol id')
    if (proto === Protocol.uuid) {
      const s = { uuid: guidFromBytes(lhs.bytes(16, 'floor uuid')), major: lhs.u16('major'), minor: new Reader(rhs).u16('minor') }
      if (i === 0) t.interface = s
      else t.transfer = s
    } else if (proto === Protocol.tcp && rhs.length === 2) t.port = (rhs[0]! << 8) | rhs[1]!
    else if (proto === Protocol.ip && rhs.length === 4) t.address = Array.from(rhs).join('.')
  }
  return t
}

/** twr_t: a conformant struct (tower_length + [size_is(tower_length)] octets). */
const twr = ndr.struct({ towerLength: ndr.u32, towerOctets: ndr.conformantBytes(4096) })
const twrPtr = ndr.full(twr)
const handle = ndr.contextHandle

export const EptLookup = ndr.operation({
  name: 'ept_lookup',
  opnum: 2,
  in: {
    inquiryType: ndr.u32,
    object: ndr.full(ndr.guid),
    interfaceId: ndr.full(ndr.struct({ uuid: ndr.guid, major: ndr.u16, minor: ndr.u16 })),
    versOption: ndr.u32,
    entryHandle: handle,
    maxEntries: ndr.u32,
  },
  out: {
    entryHandle: handle,
    numEntries: ndr.u32,
    entries: ndr.conformantVaryingArray(ndr.struct({ object: ndr.guid, tower: twrPtr, annotation: ndr.varyingAnsiString(64) }), 500),
    status: ndr.u32,
  },
})

export const EptMap = ndr.operation({
  name: 'ept_map',
  opnum: 3,
  in: { object: ndr.full(ndr.guid), mapTower: twrPtr, entryHandle: handle, maxTowers: ndr.u32 },
  out: { entryHandle: handle, numTowers: ndr.u32, towers: ndr.conformantVaryingArray(twrPtr, 500), status: ndr.u32 },
})

export interface EndpointEntry {
  syntax: SyntaxId
  port: number
  /** IPv4 addresses the interface listens on ('0.0.0.0' = all: answer with the address the client used). */
  addresses: string[]
  annotation: string
}

const NilGuid = '00000000-0000-0000-0000-000000000000'
/** Marks an ept_lookup entry handle as ours (bytes 4..8), followed by the next entry index. */
const LookupMagic = 0x48564342

/** The endpoint mapper's registry and its RPC interface. */
export class EndpointMapper {
  private readonly entries: EndpointEntry[] = []

  add(e: EndpointEntry): () => void {
    this.entries.push(e)
    return () => {
      const i = this.entries.indexOf(e)
      if (i >= 0) this.entries.splice(i, 1)
    }
  }

  private towersFor(syntax: SyntaxId | null, localAddress: string): { tower: Tower; annotation: string }[] {
    const out: { tower: Tower; annotation: string }[] = []
    for (const e of this.entries) {
      if (syntax && (e.syntax.uuid.toLowerCase() !== syntax.uuid.toLowerCase() || e.syntax.major !== syntax.major)) continue
      const local = localAddress.replace(/^::ffff:/, '')
      const addrs = e.addresses.includes(local) || e.addresses.includes('0.0.0.0') ? [isIPv4(local) ? local : '0.0.0.0'] : e.addresses.filter(isIPv4)
      for (const address of addrs) {
        out.push({ tower: { interface: e.syntax, transfer: Ndr20Syntax, port: e.port, address }, annotation: e.annotation })
      }
    }
    return out
  }

  rpcInterface(): RpcInterface {
    const towerValue = (t: Tower) => {
      const b = encodeTower(t)
      return { towerLength: b.length, towerOctets: b }
    }
    return {
      name: 'epmapper',
      syntax: EpmSyntax,
      dispatch: async (opnum, stub, call) => {
        if (opnum === EptMap.opnum) {
          const p = EptMap.decodeIn(stub)
          if (!p.mapTower) throw new RpcFault(FaultStatus.ndrError, 'ept_map without a tower')
          const q = decodeTower(p.mapTower.towerOctets)
          const found = q.transfer.uuid.toLowerCase() === Ndr20Syntax.uuid ? this.towersFor(q.interface, call.localAddress) : []
          const items = found.slice(0, p.maxTowers).map(f => towerValue(f.tower))
          return EptMap.encodeOut({
            entryHandle: new Uint8Array(20), numTowers: items.length, towers: { maxCount: p.maxTowers, items },
            status: items.length ? EptStatus.ok : EptStatus.notRegistered,
          })
        }
        if (opnum === EptLookup.opnum) {
          // Iteration: the entry handle carries the index of the next entry (stateless; no server memory per
          // client). An exhausted lookup answers EPT_S_NOT_REGISTERED with a NULL handle, which ends the client's
          // loop.
          const p = EptLookup.decodeIn(stub)
          const syntax = p.interfaceId && p.interfaceId.uuid !== NilGuid ? p.interfaceId : null
          const all = this.towersFor(syntax, call.localAddress)
          const h = Buffer.from(p.entryHandle)
          const start = h.readUInt32LE(4) === LookupMagic ? h.readUInt32LE(8) : 0
          const items = all.slice(start, start + Math.max(0, p.maxEntries)).map(f => ({
            object: NilGuid, tower: towerValue(f.tower), annotation: f.annotation.slice(0, 63),
          }))
          const next = Buffer.alloc(20)
          if (items.length) {
            next.writeUInt32LE(LookupMagic, 4)
            next.writeUInt32LE(start + items.length, 8)
          }
          return EptLookup.encodeOut({
            entryHandle: next, numEntries: items.length, entries: { maxCount: p.maxEntries, items },
            status: items.length ? EptStatus.ok : EptStatus.notRegistered,
          })
        }
        throw new RpcFault(FaultStatus.opRangeError)
      },
    }
  }
}
