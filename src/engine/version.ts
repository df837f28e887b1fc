/** Engine identity. test/engine/version.test.ts keeps `version` equal to package.json's. */
export const engineName = 'hvcbt'
export const version = '0.1.0'
/** Bumped when the JSON-RPC contract with the PowerShell module changes incompatibly. */
export const protocolVersion = 1
