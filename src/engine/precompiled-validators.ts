/**
 * Placeholder for the params validators generated at build time (build/gen-validators.mjs). The single-executable
 * build resolves this module to the generated one, so the bundled engine does not compile schemas at start-up;
 * running unbundled from the checkout it is null and validate.ts compiles with ajv on first use.
 */
import type { ValidateFunction } from 'ajv'

export const validators: Record<string, ValidateFunction> | null = null
