/**
 * GUIDs as VHDX stores them: Microsoft byte order (Data1 u32 LE, Data2 u16 LE, Data3 u16 LE, Data4 8 bytes as-is),
 * shown as lower-case "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" strings everywhere in the engine.
 */

/** Read a Microsoft-style GUID at `off` as a lower-case "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" string. */
export function readGuid(b: Uint8Array, off: number): string {
  const h = (i: number) => b[off + i]!.toString(16).padStart(2, '0')
  return (
    h(3) + h(2) + h(1) + h(0) + '-' + h(5) + h(4) + '-' + h(7) + h(6) + '-' + h(8) + h(9) + '-' +
    h(10) + h(11) + h(12) + h(13) + h(14) + h(15)
  )
}

/** Write a GUID string (with or without braces, any case) Microsoft-style at `off`. */
export function writeGuid(b: Uint8Array, off: number, guid: string): void {
  const hex = guid.replace(/[{}-]/g, '')
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new RangeError(`not a GUID: ${guid}`)
  const byte = (i: number) => parseInt(hex.slice(i * 2, i * 2 + 2), 16)
  const order = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15]
  for (let i = 0; i < 16; i++) b[off + order[i]!] = byte(i)
}

/** A random (version 4) GUID, lower-case. */
export function newGuid(): string {
  return crypto.randomUUID()
}

/** Normalize "{ABC...}" or "abc..." to the lower-case braceless form; null if it is not a GUID. */
export function normalizeGuid(s: string): string | null {
  const m = /^\{?([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\}?$/.exec(s.trim())
  return m ? m[1]!.toLowerCase() : null
}
