// TypeBox schemas of every reply: the success bodies and the one error envelope.
import { Type, type Static, type TSchema } from '@sinclair/typebox'

interface ErrorCase { status: number, when: string, message: string }

/**
 * Every error type of the envelope: the status(es) it is sent with, when, and its message
 * (or a typical one). The source of the error responses routes declare.
 */
export const ERROR_TYPES = {
  WebhookDataError: [{ status: 400, when: 'the webhook body is unparseable, empty, or fails the schema', message: 'Webhook body is invalid' }],
  DateParseError: [{ status: 400, when: '`start`/`end` missing, unparseable, or start ≥ end', message: 'start must be before end' }],
  RequestValidationError: [{ status: 400, when: 'another parameter is invalid (alert id, limit, cursor, token)', message: 'Request parameters are invalid' }],
  SNSMessageInvalidError: [{ status: 400, when: 'an SNS envelope is malformed, of an unknown type, or SNS is switched off', message: 'SNS message is malformed' }],
  AuthenticationError: [{ status: 401, when: 'no token, or an unknown one', message: 'A valid bearer token is required' }],
  AuthorizationError: [{ status: 403, when: 'a token of the other scope (ingest vs read)', message: 'This token is not allowed to use this route' }],
  SNSSignatureError: [{ status: 403, when: 'an SNS message not signed by SNS, or from a topic not allowed', message: 'SNS message signature is invalid' }],
  AlertNotFoundError: [{ status: 404, when: 'the alert is not in the archive', message: 'Alert not found in the archive' }],
  RouteNotFoundError: [{ status: 404, when: 'no such route (or method)', message: 'Route not found' }],
  PayloadTooLargeError: [{ status: 413, when: 'the body is over the limit', message: 'Request body is too large' }],
  UnsupportedMediaTypeError: [{ status: 415, when: 'a content type other than application/json or text/plain', message: 'Content type must be application/json or text/plain' }],
  UnexpectedException: [{ status: 500, when: 'anything not anticipated', message: 'An unexpected error has occurred.' }],
  ThreatStackRequestError: [
    { status: 502, when: 'Threat Stack could not be reached, or answered a non-JSON failure', message: 'Failure to communicate with Threat Stack' },
    { status: 504, when: 'Threat Stack did not answer in time', message: 'Threat Stack did not answer in time' }
  ],
  ThreatStackAPIError: [
    { status: 502, when: 'Threat Stack answered with a JSON error', message: 'Failure to communicate with Threat Stack (status 500)' },
    { status: 503, when: 'Threat Stack throttles (429); retry after `Retry-After` seconds', message: 'Threat Stack is throttling requests (status 429)' }
  ],
  S3ClientError: [
    { status: 502, when: 'any failure talking to S3', message: 'Failure to communicate with S3' },
    { status: 503, when: 'S3 throttles; retry after `Retry-After` seconds', message: 'S3 is throttling requests' }
  ],
  ArchiveIntegrityError: [{ status: 502, when: 'a stored object failed its checksum (changed or damaged in the bucket)', message: 'A stored object failed its integrity check' }],
  ServiceUnavailableError: [{ status: 503, when: 'the process is overloaded or shutting down, or (SNS deliveries) SNS could not be reached; retry after `Retry-After` seconds', message: 'The service is overloaded; retry later' }]
} satisfies Record<string, ErrorCase[]>

export type ErrorType = keyof typeof ERROR_TYPES

export const ErrorEnvelopeSchema = Type.Object({
  success: Type.Literal(false),
  error: Type.Object({
    type: Type.Unsafe<ErrorType>({
      type: 'string',
      enum: Object.keys(ERROR_TYPES),
      description: 'Which error: each response lists the types sent with its status',
      examples: ['AlertNotFoundError']
    }),
    message: Type.String(),
    requestId: Type.String(),
    details: Type.Optional(Type.Array(Type.String(), { description: 'Which input broke which rule' }))
  })
}, { $id: 'ErrorEnvelope', description: 'Every error, from any layer' })

export type ErrorEnvelope = Static<typeof ErrorEnvelopeSchema>

/** The shared envelope by reference: registered once with addSchema, a component of the OpenAPI document. */
export const ErrorEnvelopeRef = Type.Unsafe<ErrorEnvelope>({ $ref: 'ErrorEnvelope#' })

const ALERT_ID = '587c0159a907346eccb84004'
const REQUEST_ID = '5f0e5b1c-2a4e-4c1e-9a8e-3b7d1f6c2e90'

export const ArchiveReplySchema = Type.Object({
  success: Type.Literal(true),
  archived: Type.Array(Type.String(), { description: 'ids of the alerts now archived' })
}, { description: 'Every alert of the body is archived', examples: [{ success: true, archived: [ALERT_ID] }] })

export const AlertReplySchema = Type.Object({
  success: Type.Literal(true),
  alert: Type.Object({}, { additionalProperties: true, description: 'the full alert as Threat Stack returned it' })
}, {
  description: 'The archived alert',
  examples: [{ success: true, alert: { id: ALERT_ID, created_at: 1484521800000, severity: 2, title: 'Unexpected login' } }]
})

const DependencySchema = Type.Object({ success: Type.Boolean() })

export const StatusReplySchema = Type.Object({
  success: Type.Boolean(),
  s3: DependencySchema,
  threatstack: DependencySchema
}, {
  description: 'Whether each dependency is reachable',
  examples: [{ success: true, s3: { success: true }, threatstack: { success: true } }]
})

export const HealthReplySchema = Type.Object({ status: Type.Literal('ok') }, {
  description: 'The process serves',
  examples: [{ status: 'ok' }]
})

/** Any route can fail unexpectedly, and any route can be shed or meet a process shutting down. */
const EVERY_ROUTE: ErrorType[] = ['UnexpectedException', 'ServiceUnavailableError']

const RETRY_AFTER = { 'Retry-After': { type: 'integer', description: 'seconds to wait before retrying' } }
const WWW_AUTHENTICATE = { 'WWW-Authenticate': { type: 'string', description: 'Bearer realm="threatstack-to-s3"' } }

export interface ErrorResponse<S extends TSchema = typeof ErrorEnvelopeRef> {
  description: string
  headers?: Record<string, { type: string, description: string }>
  content: { 'application/json': { schema: S, example: unknown } }
}

/**
 * A response of `status` that is the error envelope, or, with `schema`, either that schema or
 * the envelope. Its description lists the error types sent with that status and when.
 */
export function errorResponse<S extends TSchema = typeof ErrorEnvelopeRef> (
  status: number, types: readonly ErrorType[], options: { schema?: S, description?: string, example?: unknown } = {}
): ErrorResponse<S> {
  const cases = types.flatMap((type) => ERROR_TYPES[type].filter((c) => c.status === status).map((c) => ({ type, ...c })))
  const first = cases[0]
  if (first === undefined) throw new Error(`no error type of status ${status} among ${types.join(', ')}`)
  const lines = cases.map((c) => `\`${c.type}\`: ${c.when}.`)
  return {
    description: [options.description, ...lines].filter((l) => l !== undefined).join(' '),
    ...(status === 503 && { headers: RETRY_AFTER }),
    ...(status === 401 && { headers: WWW_AUTHENTICATE }),
    content: {
      'application/json': {
        schema: options.schema ?? ErrorEnvelopeRef as unknown as S,
        example: options.example ?? { success: false, error: { type: first.type, message: first.message, requestId: REQUEST_ID } }
      }
    }
  }
}

/**
 * The error responses of a route that can fail with `types` (UnexpectedException and
 * ServiceUnavailableError are added: every route can meet them), one per status.
 */
export function errorResponses (...types: ErrorType[]): Record<number, ErrorResponse> {
  const all = [...new Set([...types, ...EVERY_ROUTE])]
  const statuses = [...new Set(all.flatMap((type) => ERROR_TYPES[type].map((c) => c.status)))].sort((a, b) => a - b)
  return Object.fromEntries(statuses.map((status) => [status, errorResponse(status, all)]))
}

export const SearchReplySchema = Type.Object({
  success: Type.Literal(true),
  alerts: Type.Array(Type.Object({}, { additionalProperties: true }), { description: 'full alerts, ascending created_at' }),
  nextCursor: Type.Union([Type.String(), Type.Null()], { description: 'pass as `cursor` for the next page; null on the last page' }),
  missing: Type.Array(Type.String(), { description: 'ids whose webhook record is archived but whose full alert is not (yet)' })
}, {
  description: 'A page of the alerts in the range',
  examples: [{
    success: true,
    alerts: [{ id: ALERT_ID, created_at: 1484521800000, severity: 2, title: 'Unexpected login' }],
    nextCursor: null,
    missing: []
  }]
})
