/**
 * A gate writers pass through, which a coordinator can close to get a moment with no write in flight (to freeze a
 * bitmap or start a copy-before-write checkpoint atomically with respect to every write).
 *
 * enter() costs one counter increment while the gate is open; close() stops new writers at the gate and resolves
 * when the writers already inside have left; open() lets the waiting writers in.
 */
export class WriteGate {
  private inside = 0
  private barrier: Promise<void> | null = null
  private release: (() => void) | null = null
  private drained: (() => void) | null = null

  /** Number of writers inside the gate. */
  get active(): number {
    return this.inside
  }

  async enter(): Promise<void> {
    while (this.barrier) await this.barrier
    this.inside++
  }

  leave(): void {
    this.inside--
    if (this.inside === 0 && this.drained) {
      const d = this.drained
      this.drained = null
      d()
    }
  }

  /** Stop new writers and wait for the ones inside to leave. Only one close at a time. */
  async close(): Promise<void> {
    while (this.barrier) await this.barrier
    this.barrier = new Promise<void>(res => { this.release = res })
    if (this.inside > 0) await new Promise<void>(res => { this.drained = res })
  }

  open(): void {
    const r = this.release
    this.barrier = null
    this.release = null
    r?.()
  }
}
