/** The VHDX engine's public surface: inspect, open, create, check, and the parent-locator view. */
export { inspectVhdx } from './vhdx-inspect.js'
export { openVhdx, readParentLocator, type OpenVhdxOptions, type ParentResolver, type ResolvedParent, type VhdxParentLocatorInfo } from './vhdx-open.js'
export { VhdxDisk } from './vhdx-disk.js'
export { createVhdx, type CreateVhdxOptions, type CreateVhdxParent } from './vhdx-create.js'
export { checkVhdx } from './vhdx-check.js'
export { mergeVhdx, type MergeResult } from './vhdx-merge.js'
export type { Problem, Severity } from './vhdx-structure.js'
