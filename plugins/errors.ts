// The one error handler and not-found handler: every failure leaves as the JSON envelope,
// and only the envelope; the error and its cause chain go to the log. Also the envelope's
// shared schema, and the headers every reply carries, errors or not.
import fp from 'fastify-plugin'
import { inspect } from 'node:util'
import { randomUUID } from 'node:crypto'
import { STATUS_CODES } from 'node:http'
import type { Duplex } from 'node:stream'
import type { FastifyInstance, FastifyReply, FastifyRequest, FastifyError } from 'fastify'
import {
  AuthenticationError, DateParseError, PayloadTooLargeError, RequestTimeoutError, RequestValidationError,
  RouteNotFoundError, schemaDetails, ServiceError, UnexpectedException, UnsupportedMediaTypeError, WebhookDataError
} from '../errors/index.js'
import { ErrorEnvelopeSchema, type ErrorEnvelope, type ErrorType } from '../schemas/envelope.js'

interface ValidationIssue { instancePath?: string, message?: string }

function isFastifyError (err: unknown): err is FastifyError & { validation?: ValidationIssue[], validationContext?: string } {
  return err instanceof Error && typeof (err as { code?: unknown }).code === 'string'
}

function validationDetails (issues: ValidationIssue[]): string[] {
  return schemaDetails(issues.map((v) => ({ path: v.instancePath, message: v.message })))
}

/** Maps anything thrown anywhere to one of our errors. */
export function toServiceError (err: unknown): ServiceError {
  if (err instanceof ServiceError) return err
  // The log's error serializer drops a cause that is not an Error: wrap what was thrown.
  if (!(err instanceof Error)) return new UnexpectedException({ cause: new Error(`non-Error thrown: ${inspect(err, { depth: 2 }).slice(0, 500)}`) })
  if (!isFastifyError(err)) return new UnexpectedException({ cause: err })
  if (err.validation !== undefined) {
    const details = validationDetails(err.validation)
    if (err.validationContext === 'body') return new WebhookDataError(undefined, { cause: err, details })
    const aboutDates = err.validationContext === 'querystring' &&
      err.validation.every((v) => v.instancePath === '/start' || v.instancePath === '/end')
    return aboutDates
      ? new DateParseError('start and end are required: RFC 3339 date-times with offset, or dates', { cause: err, details })
      : new RequestValidationError(undefined, { cause: err, details })
  }
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new PayloadTooLargeError(undefined, { cause: err })
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new UnsupportedMediaTypeError(undefined, { cause: err })
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new WebhookDataError('Webhook body is empty', { cause: err })
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new WebhookDataError('Webhook body is not valid JSON, or holds a forbidden key (__proto__, constructor.prototype)', { cause: err })
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new RequestValidationError('Content-Length does not match the body', { cause: err })
    // These two carry the raw URL, query string and any token in it: they are not kept as causes.
    case 'FST_ERR_BAD_URL':
      return new RequestValidationError('URL is malformed')
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return new RequestValidationError('A path parameter is too long')
    default:
  }
  // Other 4xx from Fastify or its parsers (a poisoned JSON body, an aborted upload).
  if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
    return new RequestValidationError('Request is invalid', { cause: err })
  }
  return new UnexpectedException({ cause: err })
}

/** The request id (so a caller can quote it) and nosniff: on every reply. */
export function everyReplyHeaders (requestId: string): Record<string, string> {
  return { 'x-request-id': requestId, 'x-content-type-options': 'nosniff' }
}

export function envelope (err: ServiceError, requestId: string): ErrorEnvelope {
  return {
    success: false,
    error: {
      // The class name is the type; a class outside the catalogue is still sent by its name.
      type: err.name as ErrorType,
      message: err.message,
      requestId,
      ...(err.details !== undefined && { details: err.details })
    }
  }
}

/** Logs once (5xx as errors with the cause chain, 4xx at info) and sends the envelope. */
export function sendError (raw: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const err = toServiceError(raw)
  if (err.statusCode >= 500) request.log.error({ err }, err.message)
  else request.log.info({ err }, err.message)
  // Set here too: errors raised before routing (frameworkErrors) skip the onSend hooks.
  reply.headers(everyReplyHeaders(request.id))
  if (err.retryAfterSeconds !== undefined) reply.header('retry-after', String(err.retryAfterSeconds))
  if (err instanceof AuthenticationError) reply.header('www-authenticate', 'Bearer realm="threatstack-to-s3"')
  return reply.code(err.statusCode).type('application/json; charset=utf-8').send(envelope(err, request.id))
}

/** Fastify's `frameworkErrors` option: errors raised before routing (a malformed URL). */
export function frameworkErrors (err: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  sendError(err, request, reply)
}

/**
 * Fastify's `clientErrorHandler` option: what Node's HTTP parser refuses before there is a
 * request (headers over MAX_HEADER_BYTES, a malformed request line, a request too slow to
 * arrive) also gets the envelope, with an id that is in the log line too.
 */
export function clientErrorHandler (this: FastifyInstance, err: Error & { code?: string }, socket: Duplex): void {
  // A reset connection has no one left to answer.
  if (err.code === 'ECONNRESET' || socket.destroyed) return
  // The status line is the catalogued case's (431, 408), the envelope the usual one.
  const known = err.code === 'HPE_HEADER_OVERFLOW'
    ? new RequestValidationError(undefined, { status: 431, cause: err })
    : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? new RequestTimeoutError({ cause: err })
      : new RequestValidationError('Request is malformed', { cause: err })
  const requestId = randomUUID()
  this.log.info({ reqId: requestId, err: known }, known.message)
  const body = JSON.stringify(envelope(known, requestId))
  const headers = { 'content-type': 'application/json; charset=utf-8', 'content-length': String(Buffer.byteLength(body)), ...everyReplyHeaders(requestId), connection: 'close' }
  if (socket.writable) {
    socket.write(`HTTP/1.1 ${known.statusCode} ${STATUS_CODES[known.statusCode] ?? ''}\r\n` +
      Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join('') + `\r\n${body}`)
  }
  socket.destroy()
}

export default fp(async function errorsPlugin (app) {
  // Registered here, once, before any route refers to it as `ErrorEnvelope#`.
  app.addSchema(ErrorEnvelopeSchema)
  app.addHook('onSend', async (request, reply) => { reply.headers(everyReplyHeaders(request.id)) })
  app.setErrorHandler(async (err, request, reply) => sendError(err, request, reply))
  app.setNotFoundHandler(async (request, reply) => sendError(new RouteNotFoundError(), request, reply))
}, { name: 'errors', fastify: '5.x' })
