/**
 * IPv4/IPv6 text <-> network-order bytes, as MS-SWN carries them (WITNESS_INTERFACE_INFO and IPADDR_INFO).
 */
import { isIPv4, isIPv6 } from 'node:net'

export function ipv4ToBytes(ip: string): Uint8Array {
  if (!isIPv4(ip)) throw new RangeError(`not an IPv4 address: ${ip}`)
  return Uint8Array.from(ip.split('.').map(Number))
}

export function ipv4FromBytes(b: Uint8Array): string {
  return Array.from(b).join('.')
}

export function ipv6ToBytes(ip: string): Uint8Array {
  if (!isIPv6(ip)) throw new RangeError(`not an IPv6 address: ${ip}`)
  let text = ip
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)
  if (v4) {
    const b = ipv4ToBytes(v4[1]!)
    text = text.slice(0, -v4[1]!.length) + `${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined]
  const hs = head ? head.split(':') : []
  const ts = tail ? tail.split(':') : []
  const groups = tail === undefined ? hs : [...hs, ...Array(8 - hs.length - ts.length).fill('0'), ...ts]
  const out = new Uint8Array(16)
  groups.forEach((g, i) => {
    const n = parseInt(g, 16)
    out[2 * i] = n >> 8
    out[2 * i + 1] = n & 0xff
  })
  return out
}

/** Compressed RFC 5952 text. */
export function ipv6FromBytes(b: Uint8Array): string {
  const g: number[] = []
  for (let i = 0; i < 16; i += 2) g.push((b[i]! << 8) | b[i + 1]!)
  let bestAt = -1
  let bestLen = 1
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) { i++; continue }
    let j = i
    while (j < 8 && g[j] === 0) j++
    if (j - i > bestLen) { bestAt = i; bestLen = j - i }
    i = j
  }
  const hex = g.map(n => n.toString(16))
  if (bestAt < 0) return hex.join(':')
  return `${hex.slice(0, bestAt).join(':')}::${hex.slice(bestAt + bestLen).join(':')}`
}
