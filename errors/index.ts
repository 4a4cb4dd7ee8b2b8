// The error hierarchy of the service. The class name is the public `type` of the error
// envelope: renaming a class is an API change. Messages are fixed sentences; upstream
// text, hosts, keys and secrets only ever travel in `cause`, which is logged, never sent.

/** Used when an upstream throttles without saying for how long. */
export const DEFAULT_RETRY_AFTER_SECONDS = 5

export interface ServiceErrorOptions {
  cause?: unknown
  details?: string[]
}

export abstract class ServiceError extends Error {
  abstract readonly statusCode: number
  readonly details: string[] | undefined
  /** Seconds for a `Retry-After` header, when the caller should come back later. */
  readonly retryAfterSeconds: number | undefined

  constructor (message: string, options: ServiceErrorOptions & { retryAfterSeconds?: number } = {}) {
    super(message, { cause: options.cause })
    this.name = new.target.name
    this.details = options.details
    this.retryAfterSeconds = options.retryAfterSeconds
  }
}

// 4xx: the caller's input

export class WebhookDataError extends ServiceError {
  readonly statusCode = 400
}

export class DateParseError extends ServiceError {
  readonly statusCode = 400
}

export class RequestValidationError extends ServiceError {
  readonly statusCode = 400
}

export class AuthenticationError extends ServiceError {
  readonly statusCode = 401
  constructor (options: ServiceErrorOptions = {}) {
    super('A valid bearer token is required', options)
  }
}

export class AuthorizationError extends ServiceError {
  readonly statusCode = 403
  constructor (options: ServiceErrorOptions = {}) {
    super('This token is not allowed to use this route', options)
  }
}

export class SNSSignatureError extends ServiceError {
  readonly statusCode = 403
}

export class SNSMessageInvalidError extends ServiceError {
  readonly statusCode = 400
}

export class AlertNotFoundError extends ServiceError {
  readonly statusCode = 404
  constructor (options: ServiceErrorOptions = {}) {
    super('Alert not found in the archive', options)
  }
}

export class RouteNotFoundError extends ServiceError {
  readonly statusCode = 404
  constructor (options: ServiceErrorOptions = {}) {
    super('Route not found', options)
  }
}

export class PayloadTooLargeError extends ServiceError {
  readonly statusCode = 413
}

export class UnsupportedMediaTypeError extends ServiceError {
  readonly statusCode = 415
}

// 5xx: the upstreams and the process itself

/** Base of every failure involving the Threat Stack API. */
export abstract class ThreatStackError extends ServiceError {
  /** The status code Threat Stack answered with, when it answered at all. */
  abstract readonly upstreamStatus: number | undefined
  /** The wait Threat Stack asked for in a Retry-After header, when it sent one. */
  readonly upstreamRetryAfterMs: number | undefined
  constructor (message: string, options: UpstreamErrorOptions = {}) {
    super(message, options)
    this.upstreamRetryAfterMs = options.upstreamRetryAfterMs
  }
}

export interface UpstreamErrorOptions extends ServiceErrorOptions {
  /** The status code Threat Stack answered with, when it answered at all. */
  upstreamStatus?: number
  timedOut?: boolean
  retryAfterSeconds?: number
  upstreamRetryAfterMs?: number
}

function threatStackMessage (upstreamStatus: number | undefined): string {
  return upstreamStatus === undefined
    ? 'Failure to communicate with Threat Stack'
    : `Failure to communicate with Threat Stack (status ${upstreamStatus})`
}

/** Threat Stack could not be reached, timed out, or answered something that is not JSON. */
export class ThreatStackRequestError extends ThreatStackError {
  readonly statusCode: number
  readonly upstreamStatus: number | undefined
  constructor (options: UpstreamErrorOptions = {}) {
    super(options.timedOut === true ? 'Threat Stack did not answer in time' : threatStackMessage(options.upstreamStatus), options)
    this.statusCode = options.timedOut === true ? 504 : 502
    this.upstreamStatus = options.upstreamStatus
  }
}

/** Threat Stack answered with a JSON error. */
export class ThreatStackAPIError extends ThreatStackError {
  readonly statusCode: number
  readonly upstreamStatus: number
  constructor (upstreamStatus: number, options: UpstreamErrorOptions = {}) {
    const throttled = upstreamStatus === 429
    super(throttled ? 'Threat Stack is throttling requests (status 429)' : threatStackMessage(upstreamStatus), {
      ...options,
      retryAfterSeconds: throttled ? options.retryAfterSeconds ?? DEFAULT_RETRY_AFTER_SECONDS : undefined
    })
    this.statusCode = throttled ? 503 : 502
    this.upstreamStatus = upstreamStatus
  }
}

/** Any failure talking to S3; 503 with `Retry-After` when S3 throttles. */
export class S3ClientError extends ServiceError {
  readonly statusCode: number
  constructor (options: ServiceErrorOptions & { throttled?: boolean, retryAfterSeconds?: number } = {}) {
    const throttled = options.throttled === true
    super(throttled ? 'S3 is throttling requests' : 'Failure to communicate with S3', {
      ...options,
      retryAfterSeconds: throttled ? options.retryAfterSeconds ?? DEFAULT_RETRY_AFTER_SECONDS : undefined
    })
    this.statusCode = throttled ? 503 : 502
  }
}

export class ServiceUnavailableError extends ServiceError {
  readonly statusCode = 503
  constructor (message: string, options: ServiceErrorOptions & { retryAfterSeconds?: number } = {}) {
    super(message, { ...options, retryAfterSeconds: options.retryAfterSeconds ?? DEFAULT_RETRY_AFTER_SECONDS })
  }
}

export const UNEXPECTED_MESSAGE = 'An unexpected error has occurred.'

/** Anything not anticipated. Its message never varies. */
export class UnexpectedException extends ServiceError {
  readonly statusCode = 500
  constructor (options: { cause?: unknown } = {}) {
    super(UNEXPECTED_MESSAGE, options)
  }
}
