// TypeBox schemas of every reply: the success bodies and the one error envelope, whose types and
// documented responses are read from the error classes (errors/index.ts), the one catalogue.
import { Type, type Static, type TSchema } from '@sinclair/typebox'
import * as errors from '../errors/index.js'
import { ServiceError, type ErrorCase, type ErrorClass } from '../errors/index.js'

type ErrorExports = typeof errors

/** The name of every error class: the envelope's `type`. A new class is a new name. */
export type ErrorType = { [K in keyof ErrorExports]: ErrorExports[K] extends ErrorClass ? K : never }[keyof ErrorExports]

function isErrorClass (value: unknown): value is ErrorClass {
  // A base (ServiceError, ThreatStackError) has no cases of its own and is never sent.
  return typeof value === 'function' && value.prototype instanceof ServiceError && Object.hasOwn(value, 'cases')
}

const firstStatus = (c: ErrorClass): number => c.cases[0]?.status ?? 0

/** Every error class of errors/index.ts, by first status, then name. */
export const ERROR_CLASSES: readonly ErrorClass[] = (Object.values(errors) as unknown[]).filter(isErrorClass)
  .sort((a, b) => firstStatus(a) - firstStatus(b) || (a.name < b.name ? -1 : 1))

const CLASS_BY_NAME = new Map(ERROR_CLASSES.map((c) => [c.name, c]))

/** An error class, or the name of one of errors/index.ts. */
export type ErrorRef = ErrorType | ErrorClass

function errorClass (ref: ErrorRef): ErrorClass {
  if (typeof ref !== 'string') return ref
  const found = CLASS_BY_NAME.get(ref)
  if (found === undefined) throw new Error(`no error class ${ref}`)
  return found
}

export const ErrorEnvelopeSchema = Type.Object({
  success: Type.Literal(false),
  error: Type.Object({
    type: Type.Unsafe<ErrorType>({
      type: 'string',
      enum: ERROR_CLASSES.map((c) => c.name),
      description: 'Which error: each response lists the types sent with its status',
      examples: ['AlertNotFoundError']
    }),
    message: Type.String(),
    requestId: Type.String(),
    details: Type.Optional(Type.Array(Type.String(), { description: 'Which input broke which rule' }))
  })
}, { $id: 'ErrorEnvelope', description: 'Every error, from any layer' })

export type ErrorEnvelope = Static<typeof ErrorEnvelopeSchema>

/** The shared envelope by reference: registered by the errors plugin, a component of the OpenAPI document. */
export const ErrorEnvelopeRef = Type.Unsafe<ErrorEnvelope>({ $ref: 'ErrorEnvelope#' })

const ALERT_ID = '587c0159a907346eccb84004'
const REQUEST_ID = '5f0e5b1c-2a4e-4c1e-9a8e-3b7d1f6c2e90'

const PENDING_ID = '587c0159a907346eccb84005'

export const PendingAlertSchema = Type.Object({
  id: Type.String(),
  error: Type.Optional(Type.Object({
    type: Type.String({ description: 'the error type the envelope would show for the fetch', examples: ['ThreatStackRequestError'] }),
    message: Type.String({ description: 'its fixed message' })
  }, { description: 'how fetching the full alert has failed so far; absent when it has not finished within ENRICH_WAIT_MS' }))
})

export const ArchiveReplySchema = Type.Object({
  success: Type.Literal(true),
  archived: Type.Array(Type.String(), { description: 'ids of the alerts whose webhook record and full alert are both stored' }),
  pending: Type.Array(PendingAlertSchema, {
    description: 'alerts whose webhook record is stored and whose full alert the service still owes: fetched in the background, then by the sweeper'
  })
}, {
  description: 'Every webhook record of the body is stored: the sender has nothing to resend',
  examples: [{
    success: true,
    archived: [ALERT_ID],
    pending: [{ id: PENDING_ID, error: { type: 'ThreatStackRequestError', message: 'Failure to communicate with Threat Stack' } }]
  }]
})

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

const RETRY_AFTER = { 'Retry-After': { type: 'integer', description: 'seconds to wait before retrying' } }
const WWW_AUTHENTICATE = { 'WWW-Authenticate': { type: 'string', description: 'Bearer realm="threatstack-to-s3"' } }

export interface ErrorResponse<S extends TSchema = typeof ErrorEnvelopeRef> {
  description: string
  headers?: Record<string, { type: string, description: string }>
  content: { 'application/json': { schema: S, example: unknown } }
}

/** The cases of `classes` a route can answer with: those sent once a route is found. */
function routeCases (classes: readonly ErrorClass[]): Array<ErrorCase & { type: string }> {
  return classes.flatMap((c) => c.cases.filter((k) => k.beforeRouting !== true).map((k) => ({ type: c.name, ...k })))
}

/**
 * A response of `status` that is the error envelope, or, with `schema`, either that schema or
 * the envelope. Its description lists the error types sent with that status and when.
 */
export function errorResponse<S extends TSchema = typeof ErrorEnvelopeRef> (
  status: number, types: readonly ErrorRef[], options: { schema?: S, description?: string, example?: unknown } = {}
): ErrorResponse<S> {
  const cases = routeCases(types.map(errorClass)).filter((c) => c.status === status)
  const first = cases[0]
  if (first === undefined) throw new Error(`no error type of status ${status} among ${types.map((t) => errorClass(t).name).join(', ')}`)
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
 * The error responses of a route that can fail with `types`, one per status; the errors every
 * route can meet (`everyRoute`: UnexpectedException, ServiceUnavailableError) are added.
 */
export function errorResponses (...types: ErrorRef[]): Record<number, ErrorResponse> {
  const all = [...new Set([...types.map(errorClass), ...ERROR_CLASSES.filter((c) => c.everyRoute)])]
  const statuses = [...new Set(routeCases(all).map((c) => c.status))].sort((a, b) => a - b)
  return Object.fromEntries(statuses.map((status) => [status, errorResponse(status, all)]))
}

/** The catalogue as the README's error table shows it: one line per case. */
export function errorTable (): string {
  const rows = ERROR_CLASSES.flatMap((c) => c.cases.map((k) =>
    `| \`${c.name}\` | ${k.status} | ${k.when}${k.beforeRouting === true ? ' (before routing)' : ''} | ${k.message} |`))
  return ['| type | status | when | message (fixed, or typical) |', '|---|---|---|---|', ...rows].join('\n')
}

export const SearchReplySchema = Type.Object({
  success: Type.Literal(true),
  alerts: Type.Array(Type.Object({}, { additionalProperties: true }), { description: 'full alerts, ascending created_at' }),
  nextCursor: Type.Union([Type.String(), Type.Null()], { description: 'pass as `cursor` for the next page; null on the last page' }),
  missing: Type.Array(Type.String(), { description: 'ids whose webhook record is archived but whose full alert is not (yet)' }),
  partial: Type.Optional(Type.Boolean({
    description: 'filtered searches only: true when the page stopped at its read budget (2 × limit reads) before it held limit alerts; continue with nextCursor'
  })),
  scannedUntil: Type.Optional(Type.Union([Type.String({ format: 'date-time' }), Type.Null()], {
    description: 'filtered searches only: created_at of the last alert the page examined (the next page continues after it); null once the range is exhausted'
  }))
}, {
  description: 'A page of the alerts in the range (matching the filters, if any)',
  examples: [{
    success: true,
    alerts: [{ id: ALERT_ID, created_at: 1484521800000, severity: 2, title: 'Unexpected login' }],
    nextCursor: null,
    missing: []
  }]
})

const SHA256 = Type.String({ pattern: '^[0-9a-f]{64}$', description: 'SHA-256 of the stored bytes, hex' })
const DIGEST_KEY_EXAMPLE = 'digests/2017/01/15/23.json'

export const DigestStatusSchema = Type.Union([
  Type.Object({
    status: Type.Literal('covered'),
    digest: Type.String({ description: 'key of the digest (or supplement digest) that lists the object with this SHA-256 and size', examples: [DIGEST_KEY_EXAMPLE] })
  }),
  Type.Object({ status: Type.Literal('not-yet') }),
  Type.Object({
    status: Type.Literal('mismatch'),
    digest: Type.String({ description: 'key of the digest that lists the object otherwise' }),
    listed: Type.Object({ sha256: SHA256, size: Type.Integer({ minimum: 0 }) }, { description: 'what that digest lists for the key' })
  })
], {
  description: '`covered`: a digest of the hour lists the key with the object\'s SHA-256 and size. `not-yet`: no digest of the hour ' +
    'lists it yet (the hour is not closed, the sweeper and its digests are off, or the object came after the hour\'s digests: ' +
    'a supplement follows). `mismatch`: a digest lists the key with another SHA-256 or size, or lists an object no longer stored: ' +
    'the object changed after it was digested. Signatures and the chain are not checked here: `npm run verify` does, with the public key.'
})

const StoredObjectProperties = {
  key: Type.String({ description: 'the S3 key, under the archive\'s prefix (not shown)' }),
  sha256: SHA256,
  size: Type.Integer({ minimum: 0, description: 'bytes' }),
  digest: DigestStatusSchema
}

export const EvidenceReplySchema = Type.Object({
  success: Type.Literal(true),
  id: Type.String(),
  hour: Type.String({ description: 'the UTC hour of the record\'s key, whose digests cover both objects', examples: ['2017-01-15T23:00:00Z'] }),
  webhook: Type.Object({
    ...StoredObjectProperties,
    text: Type.String({ description: 'the record exactly as stored: the alert\'s JSON text as the webhook posted it (its SHA-256 is `sha256`)' }),
    record: Type.Unknown({ description: 'the same, parsed' })
  }, { description: 'the webhook record' }),
  alert: Type.Union([
    Type.Object({ ...StoredObjectProperties, stored: Type.Literal(true) }),
    Type.Object({ key: Type.String(), stored: Type.Literal(false), digest: DigestStatusSchema })
  ], { description: 'the full alert: `stored: false` while it is pending (its body is at GET /alert/:alert_id once stored)' })
}, {
  description: 'The alert\'s evidence: its webhook record, its full alert\'s hash, and what the hour\'s digests say of each',
  examples: [{
    success: true,
    id: ALERT_ID,
    hour: '2017-01-15T23:00:00Z',
    webhook: {
      key: `webhooks/2017/01/15/23/10/${ALERT_ID}`,
      sha256: '9f2c0a5e7b1d3c4f6a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f',
      size: 97,
      digest: { status: 'covered', digest: DIGEST_KEY_EXAMPLE },
      text: `{"id":"${ALERT_ID}","created_at":"1484521800000","severity":2,"title":"Unexpected login"}`,
      record: { id: ALERT_ID, created_at: '1484521800000', severity: 2, title: 'Unexpected login' }
    },
    alert: { key: `alerts/58/7c/${ALERT_ID}`, stored: true, sha256: '0e1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a7f8e9d0c1b2a3f4e5d6c7b8a9f0e1d', size: 412, digest: { status: 'not-yet' } }
  }]
})
