import t from 'tap'
import * as swn from '../../src/witness/swn/swn-idl.js'
import { decodeNotification, encodeNotification } from '../../src/witness/swn/swn-messages.js'
import { ipv6FromBytes, ipv6ToBytes } from '../../src/witness/swn/ip-address.js'

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex')
const u16 = (s: string) => Buffer.from(s, 'utf16le').toString('hex')

// Real Windows captures from the reference (stub bytes).
const registerIn = hex(
  '01000100' + '00000200 05000000 00000000 05000000' + u16('sofs\0') + '0000' +
  '04000200 0d000000 00000000 0d000000' + u16('192.168.3.45\0') + '0000' +
  '08000200 09000000 00000000 09000000' + u16('MTHELENA\0'),
)
const registerOut = hex('00000000 3386b83a 571e1a4c 856cd1bc 4b15bbb1 00000000')
const notifyResourceChange = hex(
  '00000200 01000000 12000000 01000000 04000200 12000000' + '12000000 ff000000' + u16('SOFS\0') + '0000 00000000',
)
const notifyClientMove = hex(
  '00000200 02000000 24000000 01000000 04000200 24000000' +
  '24000000 00000000 01000000 01000000 c0a8032d' + '00'.repeat(16) + '00000000',
)

t.test('Register IN capture decodes and re-encodes byte-identically', async t => {
  const v = swn.Register.decodeIn(registerIn)
  t.same(v, { version: swn.WitnessVersion.v1, netName: 'sofs', ipAddress: '192.168.3.45', clientComputerName: 'MTHELENA' })
  t.equal(swn.Register.encodeIn(v).toString('hex'), registerIn.toString('hex'))
})

t.test('Register OUT capture', async t => {
  const v = swn.Register.decodeOut(registerOut)
  t.equal(v.status, 0)
  t.equal(Buffer.from(v.contextHandle).toString('hex'), '000000003386b83a571e1a4c856cd1bc4b15bbb1')
  t.equal(swn.Register.encodeOut(v).toString('hex'), registerOut.toString('hex'))
})

t.test('AsyncNotify OUT captures (resource change, client move)', async t => {
  const rc = swn.AsyncNotify.decodeOut(notifyResourceChange)
  t.equal(rc.status, 0)
  t.equal(rc.response!.messageType, swn.MessageType.resourceChange)
  const n1 = decodeNotification(rc.response!.messageType, rc.response!.numberOfMessages, rc.response!.messageBuffer!)
  t.same(n1, { type: 1, changes: [{ changeType: 0xff, resourceName: 'SOFS' }] })
  t.equal(swn.AsyncNotify.encodeOut(rc).toString('hex'), notifyResourceChange.toString('hex'))
  const e1 = encodeNotification(n1)
  t.equal(e1.buffer.toString('hex'), Buffer.from(rc.response!.messageBuffer!).toString('hex'))

  const cm = swn.AsyncNotify.decodeOut(notifyClientMove)
  const n2 = decodeNotification(cm.response!.messageType, cm.response!.numberOfMessages, cm.response!.messageBuffer!)
  t.same(n2, { type: 2, lists: [[{ flags: 1, ipv4: '192.168.3.45', ipv6: '::' }]] })
  t.equal(encodeNotification(n2).buffer.toString('hex'), Buffer.from(cm.response!.messageBuffer!).toString('hex'))
  t.equal(swn.AsyncNotify.encodeOut(cm).toString('hex'), notifyClientMove.toString('hex'))
})

t.test('interface list: 552-byte entries, network-order addresses', async t => {
  const info = {
    interfaceGroupName: 'NODE1', version: swn.WitnessVersion.v2, state: swn.InterfaceState.available,
    ipv4: '10.0.0.1', ipv6: 'fe80::1', flags: swn.InterfaceFlag.ipv4 | swn.InterfaceFlag.ipv6 | swn.InterfaceFlag.interfaceWitness,
  }
  const out = swn.GetInterfaceList.encodeOut({ interfaceList: { numberOfInterfaces: 2, interfaces: [info, info] }, status: 0 })
  // referent, count, referent, max_count, 2 x 552, status
  t.equal(out.length, 4 + 4 + 4 + 4 + 2 * 552 + 4)
  t.equal(out.subarray(16 + 528, 16 + 532).toString('hex'), '0a000001')
  t.equal(out.subarray(16 + 532, 16 + 548).toString('hex'), 'fe800000000000000000000000000001')
  t.same(swn.GetInterfaceList.decodeOut(out).interfaceList!.interfaces![1], info)
})

t.test('hostile stubs are rejected without large allocations', async t => {
  t.throws(() => swn.Register.decodeIn(registerIn.subarray(0, 30)), /truncated/)
  const big = Buffer.from(registerIn)
  big.writeUInt32LE(0x7fffffff, 8) // NetName max_count
  big.writeUInt32LE(0x7fffffff, 16) // NetName actual_count
  t.throws(() => swn.Register.decodeIn(big), /NDR/)
  const list = hex('00000200 ffffffff 04000200 ffffff0f')
  t.throws(() => swn.GetInterfaceList.decodeOut(list), /exceeds/)
  t.throws(() => decodeNotification(1, 1, hex('ff000000 01000000')), /Length/)
  t.throws(() => decodeNotification(2, 1, hex('10000000 00000000 05000000 00000000')), /instances/)
})

t.test('IPv6 text round trip', async t => {
  for (const ip of ['::', '::1', 'fe80::1', '2001:db8::8:800:200c:417a', '1:2:3:4:5:6:7:8', '::ffff:10.0.0.1']) {
    const back = ipv6FromBytes(ipv6ToBytes(ip))
    t.same(ipv6ToBytes(back), ipv6ToBytes(ip), ip)
  }
})
