/**
 * Long-running services started by methods (an NBD export, a witness server). The engine keeps them until they are
 * stopped by a method call or until shutdown, when every one is stopped in reverse order of start.
 */
export interface Service {
  /** Unique id, e.g. 'nbd:127.0.0.1:10809'. */
  id: string
  kind: string
  description: string
  stop(): Promise<void>
}

const running = new Map<string, Service>()

export function addService(s: Service): void {
  if (running.has(s.id)) throw new Error(`service ${s.id} is already running`)
  running.set(s.id, s)
}

export function getService(id: string): Service | undefined {
  return running.get(id)
}

export function listServices(): Service[] {
  return [...running.values()]
}

export async function stopService(id: string): Promise<boolean> {
  const s = running.get(id)
  if (!s) return false
  running.delete(id)
  await s.stop()
  return true
}

export async function stopAllServices(): Promise<void> {
  for (const s of [...running.values()].reverse()) {
    running.delete(s.id)
    try {
      await s.stop()
    } catch {
      // shutting down: nothing useful to do with a failure to stop one service
    }
  }
}
