/** JSON-RPC 2.0 message shapes and the standard error codes (https://www.jsonrpc.org/specification). */
export type Id = string | number | null

export interface Request {
  jsonrpc: '2.0'
  id?: Id
  method: string
  params?: unknown
}

export interface ErrorObject {
  code: number
  message: string
  data?: unknown
}

export type Response = { jsonrpc: '2.0'; id: Id; result: unknown } | { jsonrpc: '2.0'; id: Id; error: ErrorObject }

export interface Notification {
  jsonrpc: '2.0'
  method: string
  params: unknown
}

export const ErrorCodes = {
  ParseError: -32700,
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  InvalidParams: -32602,
  InternalError: -32603,
} as const

/** Notifications the engine sends. */
export const ProgressNotification = '$/progress'
export const LogNotification = '$/log'
/** Notification a client sends to cancel one of its requests: params {id}. */
export const CancelNotification = '$/cancelRequest'
