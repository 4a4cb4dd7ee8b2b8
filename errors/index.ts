// The error catalogue of the service: one class per error, each carrying its row (every status
// it is sent with, when, and its message). The OpenAPI error responses, the envelope's list of
// types and the README table are all read from these classes. The class name is the public
// `type` of the error envelope: renaming a class is an API change. Messages are fixed
// sentences; upstream text, hosts, keys and secrets only ever travel in `cause`, which is
// logged, never sent.

/** Used when an upstream throttles without saying for how long. */
export const DEFAULT_RETRY_AFTER_SECONDS = 5

/** One way an error is sent. */
export interface ErrorCase {
  readonly status: number
  /** A clause completing "sent when …", as the API documentation and the README show it. */
  readonly when: string
  /** The message it is sent with: fixed, or for input errors a typical one. */
  readonly message: string
  /**
   * Answered before any route is found (by the HTTP parser's handler), so it is not among
   * the responses each route documents.
   */
  readonly beforeRouting?: boolean
}

export interface ServiceErrorOptions {
  cause?: unknown
  details?: string[]
}

interface ConstructionOptions extends ServiceErrorOptions {
  retryAfterSeconds?: number | undefined
  /** Which of the class's cases this is; the first when not given. */
  status?: number
}

export abstract class ServiceError extends Error {
  /** This error's row of the catalogue, the first case being the usual one. Bases have none. */
  static readonly cases: readonly ErrorCase[] = []
  /** Whether every route can meet this error, and so documents it without naming it. */
  static readonly everyRoute: boolean = false

  readonly statusCode: number
  readonly details: string[] | undefined
  /** Seconds for a `Retry-After` header, when the caller should come back later. */
  readonly retryAfterSeconds: number | undefined

  /** @throws TypeError for a status that is not one of the class's cases: what is sent is what is documented. */
  constructor (message: string | undefined, options: ConstructionOptions = {}) {
    const { cases } = new.target
    const chosen = options.status === undefined ? cases[0] : cases.find((c) => c.status === options.status)
    if (chosen === undefined) throw new TypeError(`${new.target.name} is not catalogued with status ${String(options.status)}`)
    super(message ?? chosen.message, { cause: options.cause })
    this.name = new.target.name
    this.statusCode = chosen.status
    this.details = options.details
    this.retryAfterSeconds = options.retryAfterSeconds
  }
}

/** An error class of the catalogue: one that can be thrown (bases cannot). */
export interface ErrorClass {
  new (...args: never[]): ServiceError
  readonly name: string
  readonly cases: readonly ErrorCase[]
  readonly everyRoute: boolean
}

/** Bounds on the `details` of one error: which input and which rule, never much of the input itself. */
export const MAX_DETAILS = 20
export const MAX_DETAIL_LENGTH = 200

function boundedDetails (details: string[]): string[] {
  return details.slice(0, MAX_DETAILS).map((d) => d.slice(0, MAX_DETAIL_LENGTH))
}

/** The details of a schema check (Fastify's, or TypeBox's): `<path> <rule>` per issue, bounded. */
export function schemaDetails (issues: ReadonlyArray<{ path?: string | undefined, message?: string | undefined }>): string[] {
  return boundedDetails(issues.map((i) => `${i.path === undefined || i.path === '' ? '/' : i.path} ${i.message ?? 'is invalid'}`))
}

// 4xx: the caller's input

export class WebhookDataError extends ServiceError {
  static override readonly cases = [
    { status: 400, when: 'the webhook body is unparseable, empty, not UTF-8, holds a key twice, or fails the schema', message: 'Webhook body is invalid' }
  ]
}

export class DateParseError extends ServiceError {
  static override readonly cases = [
    { status: 400, when: '`start`/`end` missing, unparseable, or start ≥ end', message: 'start must be before end' }
  ]
}

export class RequestValidationError extends ServiceError {
  static override readonly cases = [
    { status: 400, when: 'another parameter is invalid (alert id, limit, cursor, token)', message: 'Request parameters are invalid' },
    { status: 400, when: 'the URL or the request itself is malformed', message: 'Request is malformed', beforeRouting: true },
    { status: 431, when: 'the request headers are over `MAX_HEADER_BYTES`', message: 'Request headers are too large', beforeRouting: true }
  ]
}

export class SNSMessageInvalidError extends ServiceError {
  static override readonly cases = [
    { status: 400, when: 'an SNS envelope is malformed, of an unknown type, or SNS is switched off', message: 'SNS message is malformed' }
  ]
}

export class AuthenticationError extends ServiceError {
  static override readonly cases = [
    { status: 401, when: 'no token, or an unknown one', message: 'A valid bearer token is required' }
  ]

  constructor (options: ServiceErrorOptions = {}) {
    super(undefined, options)
  }
}

export class AuthorizationError extends ServiceError {
  static override readonly cases = [
    { status: 403, when: 'a token of the other scope (ingest vs read), or a webhook from an address outside `INGEST_ALLOWED_CIDRS`', message: 'This token is not allowed to use this route' }
  ]

  /** The message for a refused network, instead of the token's. */
  static readonly NETWORK_MESSAGE = 'This address is not allowed to post webhooks'

  constructor (options: ServiceErrorOptions & { message?: string } = {}) {
    super(options.message, options)
  }
}

export class SNSSignatureError extends ServiceError {
  static override readonly cases = [
    { status: 403, when: 'an SNS message not signed by SNS, or from a topic not allowed', message: 'SNS message signature is invalid' }
  ]
}

export class AlertNotFoundError extends ServiceError {
  static override readonly cases = [
    { status: 404, when: 'the alert is not in the archive', message: 'Alert not found in the archive' }
  ]

  constructor (options: ServiceErrorOptions = {}) {
    super(undefined, options)
  }
}

export class RouteNotFoundError extends ServiceError {
  static override readonly cases = [
    { status: 404, when: 'no such route (or method)', message: 'Route not found' }
  ]

  constructor (options: ServiceErrorOptions = {}) {
    super(undefined, options)
  }
}

/** The request (its head, or its body) did not arrive within its deadline: a slow or stalled sender. */
export class RequestTimeoutError extends ServiceError {
  static override readonly cases = [
    { status: 408, when: 'the body did not arrive within `BODY_TIMEOUT_MS`', message: 'Request took too long to arrive' },
    { status: 408, when: 'the request did not arrive within `REQUEST_TIMEOUT_MS`', message: 'Request took too long to arrive', beforeRouting: true }
  ]

  constructor (options: ServiceErrorOptions = {}) {
    super(undefined, options)
  }
}

export class PayloadTooLargeError extends ServiceError {
  static override readonly cases = [
    { status: 413, when: 'the body is over the limit', message: 'Request body is too large' }
  ]
}

export class UnsupportedMediaTypeError extends ServiceError {
  static override readonly cases = [
    { status: 415, when: 'a content type other than application/json or text/plain', message: 'Content type must be application/json or text/plain' }
  ]
}

// 5xx: the upstreams and the process itself

export const UNEXPECTED_MESSAGE = 'An unexpected error has occurred.'

/** Anything not anticipated. Its message never varies. */
export class UnexpectedException extends ServiceError {
  static override readonly cases = [
    { status: 500, when: 'anything not anticipated', message: UNEXPECTED_MESSAGE }
  ]

  static override readonly everyRoute = true

  constructor (options: { cause?: unknown } = {}) {
    super(undefined, options)
  }
}

export interface UpstreamErrorOptions extends ServiceErrorOptions {
  /** The status code Threat Stack answered with, when it answered at all. */
  upstreamStatus?: number
  timedOut?: boolean
  retryAfterSeconds?: number
  upstreamRetryAfterMs?: number
}

/** Base of every failure involving the Threat Stack API. */
export abstract class ThreatStackError extends ServiceError {
  /** The status code Threat Stack answered with, when it answered at all. */
  abstract readonly upstreamStatus: number | undefined
  /** The wait Threat Stack asked for in a Retry-After header, when it sent one. */
  readonly upstreamRetryAfterMs: number | undefined
  constructor (message: string | undefined, options: UpstreamErrorOptions & { status?: number } = {}) {
    super(message, options)
    this.upstreamRetryAfterMs = options.upstreamRetryAfterMs
  }
}

function threatStackMessage (upstreamStatus: number | undefined): string {
  return upstreamStatus === undefined
    ? 'Failure to communicate with Threat Stack'
    : `Failure to communicate with Threat Stack (status ${upstreamStatus})`
}

/** Threat Stack could not be reached, timed out, or answered something that is not JSON. */
export class ThreatStackRequestError extends ThreatStackError {
  static override readonly cases = [
    { status: 502, when: 'Threat Stack could not be reached, or answered something that is not a usable JSON object (a balancer\'s HTML page, JSON nested too deeply)', message: 'Failure to communicate with Threat Stack' },
    { status: 504, when: 'Threat Stack did not answer in time', message: 'Threat Stack did not answer in time' }
  ]

  readonly upstreamStatus: number | undefined
  constructor (options: UpstreamErrorOptions = {}) {
    const timedOut = options.timedOut === true
    super(timedOut ? undefined : threatStackMessage(options.upstreamStatus), { ...options, status: timedOut ? 504 : 502 })
    this.upstreamStatus = options.upstreamStatus
  }
}

/** Threat Stack answered with a JSON error. */
export class ThreatStackAPIError extends ThreatStackError {
  static override readonly cases = [
    { status: 502, when: 'Threat Stack answered with a JSON error', message: 'Failure to communicate with Threat Stack (status 500)' },
    { status: 503, when: 'Threat Stack throttles (429); retry after `Retry-After` seconds', message: 'Threat Stack is throttling requests (status 429)' }
  ]

  readonly upstreamStatus: number
  constructor (upstreamStatus: number, options: UpstreamErrorOptions = {}) {
    const throttled = upstreamStatus === 429
    super(throttled ? undefined : threatStackMessage(upstreamStatus), {
      ...options,
      status: throttled ? 503 : 502,
      retryAfterSeconds: throttled ? options.retryAfterSeconds ?? DEFAULT_RETRY_AFTER_SECONDS : undefined
    })
    this.upstreamStatus = upstreamStatus
  }
}

/** Any failure talking to S3; 503 with `Retry-After` when S3 throttles. */
export class S3ClientError extends ServiceError {
  static override readonly cases = [
    { status: 502, when: 'any failure talking to S3, or S3 not done within `S3_BUDGET_MS`', message: 'Failure to communicate with S3' },
    { status: 503, when: 'S3 throttles; retry after `Retry-After` seconds', message: 'S3 is throttling requests' }
  ]

  constructor (options: ServiceErrorOptions & { throttled?: boolean, retryAfterSeconds?: number } = {}) {
    const throttled = options.throttled === true
    super(undefined, {
      ...options,
      status: throttled ? 503 : 502,
      retryAfterSeconds: throttled ? options.retryAfterSeconds ?? DEFAULT_RETRY_AFTER_SECONDS : undefined
    })
  }
}

/** A stored object whose bytes do not match the checksum stored with them: never served as if it were good. */
export class ArchiveIntegrityError extends ServiceError {
  static override readonly cases = [
    { status: 502, when: 'a stored object\'s bytes do not match the SHA-256 stored with them (changed or damaged in the bucket), or a digest read back is not a digest document; the log names the key, the reply shows nothing of the object', message: 'A stored object failed its integrity check' }
  ]

  constructor (options: ServiceErrorOptions = {}) {
    super(undefined, options)
  }
}

export class ServiceUnavailableError extends ServiceError {
  static override readonly cases = [
    {
      status: 503,
      when: 'the process is overloaded or shutting down, or (SNS deliveries) SNS could not be reached; retry after `Retry-After` seconds',
      message: 'The service is overloaded; retry later'
    }
  ]

  static override readonly everyRoute = true

  constructor (message: string | undefined, options: ServiceErrorOptions & { retryAfterSeconds?: number } = {}) {
    super(message, { ...options, retryAfterSeconds: options.retryAfterSeconds ?? DEFAULT_RETRY_AFTER_SECONDS })
  }
}
