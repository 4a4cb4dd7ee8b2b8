// The error hierarchy (SPEC "Errors"): status codes, names, the common bases, causes kept.
import t from 'tap'
import {
  AlertNotFoundError, AuthenticationError, AuthorizationError, DateParseError, DEFAULT_RETRY_AFTER_SECONDS,
  PayloadTooLargeError, RequestValidationError, RouteNotFoundError, S3ClientError, ServiceError,
  ServiceUnavailableError, SNSMessageInvalidError, SNSSignatureError, ThreatStackAPIError, ThreatStackError,
  ThreatStackRequestError, UNEXPECTED_MESSAGE, UnexpectedException, UnsupportedMediaTypeError, WebhookDataError
} from '../errors/index.js'

const cause = new Error('connect ECONNREFUSED 127.0.0.1:9')

// [class name, an instance made with `cause`, the status of SPEC's table]
const CASES: Array<[string, ServiceError, number]> = [
  ['WebhookDataError', new WebhookDataError('Webhook body is invalid', { cause }), 400],
  ['DateParseError', new DateParseError('start must be before end', { cause }), 400],
  ['RequestValidationError', new RequestValidationError('limit is invalid', { cause }), 400],
  ['AuthenticationError', new AuthenticationError({ cause }), 401],
  ['AuthorizationError', new AuthorizationError({ cause }), 403],
  ['SNSSignatureError', new SNSSignatureError('bad signature', { cause }), 403],
  ['SNSMessageInvalidError', new SNSMessageInvalidError('bad envelope', { cause }), 400],
  ['AlertNotFoundError', new AlertNotFoundError({ cause }), 404],
  ['RouteNotFoundError', new RouteNotFoundError({ cause }), 404],
  ['PayloadTooLargeError', new PayloadTooLargeError('too large', { cause }), 413],
  ['UnsupportedMediaTypeError', new UnsupportedMediaTypeError('unsupported', { cause }), 415],
  ['ThreatStackRequestError', new ThreatStackRequestError({ cause }), 502],
  ['ThreatStackAPIError', new ThreatStackAPIError(500, { cause }), 502],
  ['S3ClientError', new S3ClientError({ cause }), 502],
  ['ServiceUnavailableError', new ServiceUnavailableError('shutting down', { cause }), 503],
  ['UnexpectedException', new UnexpectedException({ cause }), 500]
]

t.test('every class: status of the table, name = class name, a ServiceError and an Error, cause kept', async (t) => {
  for (const [name, err, status] of CASES) {
    t.equal(err.statusCode, status, `${name} status`)
    t.equal(err.name, name, `${name} name`)
    t.equal(err.constructor.name, name, `${name} constructor`)
    t.ok(err instanceof ServiceError, `${name} is a ServiceError`)
    t.ok(err instanceof Error, `${name} is an Error`)
    t.equal(err.cause, cause, `${name} keeps its cause`)
    t.type(err.stack, 'string', `${name} has a stack (for the log)`)
    t.notMatch(err.message, /ECONN|127\.0\.0\.1/, `${name} message does not repeat its cause`)
  }
})

t.test('the names are unique and are the public types of the table', async (t) => {
  const names = CASES.map(([, err]) => err.name)
  t.equal(new Set(names).size, names.length)
  t.equal(names.length, 16, 'one case per row of the table')
})

t.test('Threat Stack errors share ThreatStackError; the others do not', async (t) => {
  t.ok(new ThreatStackRequestError() instanceof ThreatStackError)
  t.ok(new ThreatStackAPIError(404) instanceof ThreatStackError)
  t.notOk(new S3ClientError() instanceof ThreatStackError)
  t.notOk(new UnexpectedException() instanceof ThreatStackError)
  t.notOk(new ServiceUnavailableError('x') instanceof ThreatStackError)
})

t.test('without options there is no cause, no details, no retry-after', async (t) => {
  const err = new ThreatStackRequestError()
  t.equal(err.cause, undefined)
  t.equal(err.details, undefined)
  t.equal(err.retryAfterSeconds, undefined)
  t.equal(new AuthenticationError().cause, undefined)
})

t.test('details are kept for input errors', async (t) => {
  const err = new WebhookDataError('Webhook body is invalid', { details: ['/alerts/0/id must match pattern'] })
  t.same(err.details, ['/alerts/0/id must match pattern'])
  t.equal(err.message, 'Webhook body is invalid')
})

t.test('UnexpectedException: the fixed sentence, whatever its cause says', async (t) => {
  t.equal(UNEXPECTED_MESSAGE, 'An unexpected error has occurred.')
  t.equal(new UnexpectedException().message, 'An unexpected error has occurred.')
  t.equal(new UnexpectedException({ cause: new TypeError('x is undefined at /work/main/app.ts:12') }).message,
    'An unexpected error has occurred.')
})

t.test('fixed messages of the errors that take no message', async (t) => {
  t.equal(new AuthenticationError().message, 'A valid bearer token is required')
  t.equal(new AuthorizationError().message, 'This token is not allowed to use this route')
  t.equal(new AlertNotFoundError().message, 'Alert not found in the archive')
  t.equal(new RouteNotFoundError().message, 'Route not found')
})

t.test('ThreatStackRequestError: 502, 504 on timeout, status in the message when there was one', async (t) => {
  const plain = new ThreatStackRequestError()
  t.equal(plain.statusCode, 502)
  t.equal(plain.message, 'Failure to communicate with Threat Stack')
  t.equal(plain.upstreamStatus, undefined)

  const timedOut = new ThreatStackRequestError({ timedOut: true, cause })
  t.equal(timedOut.statusCode, 504)
  t.equal(timedOut.message, 'Threat Stack did not answer in time')
  t.equal(timedOut.cause, cause)

  const notTimedOut = new ThreatStackRequestError({ timedOut: false })
  t.equal(notTimedOut.statusCode, 502)

  const html = new ThreatStackRequestError({ upstreamStatus: 503 })
  t.equal(html.statusCode, 502)
  t.equal(html.upstreamStatus, 503)
  t.equal(html.message, 'Failure to communicate with Threat Stack (status 503)')
  t.equal(html.retryAfterSeconds, undefined)
})

t.test('ThreatStackAPIError: 502 with the upstream status; 429 → 503 with retry-after', async (t) => {
  for (const status of [400, 401, 404, 500]) {
    const err = new ThreatStackAPIError(status)
    t.equal(err.statusCode, 502, `${status} → 502`)
    t.equal(err.upstreamStatus, status)
    t.equal(err.message, `Failure to communicate with Threat Stack (status ${status})`)
    t.equal(err.retryAfterSeconds, undefined, `${status}: no retry-after`)
  }
  // A retry-after given for a non-throttling status is dropped.
  t.equal(new ThreatStackAPIError(500, { retryAfterSeconds: 9 }).retryAfterSeconds, undefined)

  const throttled = new ThreatStackAPIError(429, { retryAfterSeconds: 7, cause })
  t.equal(throttled.statusCode, 503)
  t.equal(throttled.upstreamStatus, 429)
  t.equal(throttled.retryAfterSeconds, 7)
  t.equal(throttled.cause, cause)
  t.equal(throttled.message, 'Threat Stack is throttling requests (status 429)')

  const noHint = new ThreatStackAPIError(429)
  t.equal(noHint.statusCode, 503)
  t.equal(noHint.retryAfterSeconds, DEFAULT_RETRY_AFTER_SECONDS)
  t.equal(DEFAULT_RETRY_AFTER_SECONDS, 5)
})

t.test('S3ClientError: 502; throttled → 503 with retry-after', async (t) => {
  const plain = new S3ClientError({ cause })
  t.equal(plain.statusCode, 502)
  t.equal(plain.message, 'Failure to communicate with S3')
  t.equal(plain.retryAfterSeconds, undefined)
  t.equal(new S3ClientError({ retryAfterSeconds: 3 }).retryAfterSeconds, undefined, 'no retry-after unless throttled')

  const throttled = new S3ClientError({ throttled: true, cause })
  t.equal(throttled.statusCode, 503)
  t.equal(throttled.message, 'S3 is throttling requests')
  t.equal(throttled.retryAfterSeconds, DEFAULT_RETRY_AFTER_SECONDS)
  t.equal(new S3ClientError({ throttled: true, retryAfterSeconds: 12 }).retryAfterSeconds, 12)
})

t.test('ServiceUnavailableError: 503 and always a retry-after', async (t) => {
  const err = new ServiceUnavailableError('The service is overloaded')
  t.equal(err.statusCode, 503)
  t.equal(err.message, 'The service is overloaded')
  t.equal(err.retryAfterSeconds, DEFAULT_RETRY_AFTER_SECONDS)
  t.equal(new ServiceUnavailableError('shutting down', { retryAfterSeconds: 30 }).retryAfterSeconds, 30)
})

t.test('a catalogued message is written once, in its class: no source passes a class the message it sends by default', async (t) => {
  const { readdir, readFile } = await import('node:fs/promises')
  const { ERROR_CLASSES } = await import('../schemas/envelope.js')
  const root = new URL('..', import.meta.url)
  const files = (await readdir(root, { recursive: true }))
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts') && !/^(node_modules|test|client)\//.test(f) && !f.includes('/node_modules/'))
  t.ok(files.length > 40, `${files.length} source files read`)
  const repeated: string[] = []
  for (const file of files) {
    const text = await readFile(new URL(file, root), 'utf8')
    for (const c of ERROR_CLASSES) {
      const usual = c.cases[0]?.message
      if (usual === undefined) continue
      for (const quote of ["'", '"', '`']) if (text.includes(`new ${c.name}(${quote}${usual}${quote}`)) repeated.push(`${file}: ${c.name}`)
    }
  }
  t.same(repeated, [], 'pass undefined: the class carries its message')
  t.equal(new PayloadTooLargeError(undefined).message, 'Request body is too large', 'undefined is the catalogued message')
})
