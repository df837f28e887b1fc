/**
 * Framing: cut a TCP byte stream into PDUs by the frag_length of each common header. A PDU larger than the
 * negotiated receive size (or, before bind, than the largest size we would ever accept) is a protocol error: the
 * connection is closed rather than buffering an attacker-chosen amount. At most one partial PDU is buffered.
 */
import { ProtocolError } from '../../engine/errors.js'
import { HeaderBytes, decodeHeader } from './pdu.js'

export class PduFramer {
  private chunks: Buffer[] = []
  private buffered = 0

  /** `maxFragment` may be lowered after bind to the negotiated max_recv_frag. */
  constructor(public maxFragment: number) {}

  /** Feed bytes; returns the complete PDUs they finish (each exactly frag_length bytes). Throws ProtocolError. */
  push(data: Buffer): Buffer[] {
    this.chunks.push(data)
    this.buffered += data.length
    const out: Buffer[] = []
    for (;;) {
      if (this.buffered < HeaderBytes) break
      const head = this.peek(HeaderBytes)
      const h = decodeHeader(head)
      if (h.fragLength > this.maxFragment) {
        throw new ProtocolError('DCE/RPC', `fragment of ${h.fragLength} bytes exceeds the limit of ${this.maxFragment}`)
      }
      if (this.buffered < h.fragLength) break
      out.push(this.take(h.fragLength))
    }
    return out
  }

  /** Bytes of an incomplete PDU held. */
  get pending(): number {
    return this.buffered
  }

  private peek(n: number): Buffer {
    if (this.chunks[0]!.length >= n) return this.chunks[0]!.subarray(0, n)
    const all = Buffer.concat(this.chunks)
    this.chunks = [all]
    return all.subarray(0, n)
  }

  private take(n: number): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks)
    const pdu = Buffer.from(all.subarray(0, n))
    const rest = all.subarray(n)
    this.chunks = rest.length ? [rest] : []
    this.buffered = rest.length
    return pdu
  }
}
