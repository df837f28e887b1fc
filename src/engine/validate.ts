/**
 * Params validation for every transport. One ajv instance compiles each method's schema on first use (dev mode)
 * or takes the build-time standalone validator (single executable); either way the caller gets ajv's errors.
 */
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js'
import type { AnyMethod } from './method.js'
import { EngineError } from './errors.js'
import { validators as precompiled } from './precompiled-validators.js'

/** Options shared with build/gen-validators.mjs so both paths validate identically. */
export const ajvOptions = { strict: true, allErrors: true, useDefaults: true, coerceTypes: false } as const

let ajv: Ajv2020 | undefined
const cache = new Map<string, ValidateFunction>()

function compiled(method: AnyMethod): ValidateFunction {
  const pre = precompiled?.[method.name]
  if (pre) return pre
  let v = cache.get(method.name)
  if (!v) {
    ajv ??= new Ajv2020(ajvOptions)
    v = ajv.compile(method.params)
    cache.set(method.name, v)
  }
  return v
}

/** Error code and shape of JSON-RPC's "invalid params". */
export const InvalidParams = -32602

/**
 * Validates `params` in place (defaults applied) and returns them typed, or throws an EngineError with code -32602
 * whose data.errors holds ajv's error objects and whose message names every bad field.
 */
export function validateParams(method: AnyMethod, params: unknown): Record<string, unknown> {
  const p = params ?? {}
  const v = compiled(method)
  if (!v(p)) {
    const errors = v.errors ?? []
    throw new EngineError(`invalid params for ${method.name}: ${describeErrors(errors)}`, 'InvalidArgument', InvalidParams, {
      errors,
    })
  }
  return p as Record<string, unknown>
}

/** "path: must be string; size: must be >= 1" from ajv's errors, naming each field as the caller wrote it. */
export function describeErrors(errors: ErrorObject[], nameOf: (field: string) => string = f => f): string {
  return errors
    .map(e => {
      const path = e.instancePath.replace(/^\//, '').split('/')
      let where = [path[0] ? nameOf(path[0]) : '', ...path.slice(1)].filter(Boolean).join('.')
      if (e.keyword === 'required') where = nameOf(String(e.params.missingProperty))
      if (e.keyword === 'additionalProperties') return `unknown parameter '${nameOf(String(e.params.additionalProperty))}'`
      if (e.keyword === 'enum') return `${where || 'params'} must be one of ${(e.params.allowedValues as unknown[]).join(', ')}`
      if (e.keyword === 'required') return `${where} is required`
      return `${where || 'params'} ${e.message ?? 'is invalid'}`
    })
    .join('; ')
}
