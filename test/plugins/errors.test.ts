import t from 'tap'
import Fastify, { errorCodes, type FastifyInstance } from 'fastify'
import { Duplex, Writable } from 'node:stream'
import { once } from 'node:events'
import { connect as connectNet, createServer as createNetServer, type AddressInfo as NetAddress } from 'node:net'
import app, { loggerOptions, serverOptions } from '../../app.js'
import { loadConfig } from '../../config.js'
import { BEARER, build, startUpstreams } from '../helpers/build.js'
import { ALERT_URL, CREATED_AT, assertError, postAlerts } from '../helpers/requests.js'
import { assertNoLeak } from '../helpers/leaks.js'
import { clientErrorHandler, envelope, toServiceError } from '../../plugins/errors.js'
import {
  AlertNotFoundError, PayloadTooLargeError, RequestTimeoutError, RequestValidationError, S3ClientError, ServiceError,
  ServiceUnavailableError, ThreatStackAPIError, UNEXPECTED_MESSAGE, UnexpectedException,
  UnsupportedMediaTypeError, WebhookDataError
} from '../../errors/index.js'

type Tap = Parameters<Parameters<typeof t.test>[0]>[0]
type Log = Record<string, unknown> & { level?: number, reqId?: string, err?: { message?: string, stack?: string, type?: string } }

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
const SECRET_DETAIL = 'secret internal detail /work/main/x.ts:1'

/** The app as build() makes it, plus routes that fail in ways no real route does. */
async function buildWithFailingRoutes (t: Tap): Promise<{ app: FastifyInstance, logs: Log[] }> {
  const upstreams = await startUpstreams(t)
  const config = loadConfig(upstreams.env)
  const logs: Log[] = []
  const stream = new Writable({
    write (chunk, _encoding, done) {
      for (const line of String(chunk).split('\n')) if (line !== '') logs.push(JSON.parse(line) as Log)
      done()
    }
  })
  const instance = Fastify({ ...serverOptions(config), logger: { ...loggerOptions('info'), stream } })
  await instance.register(app, { config })
  await instance.register(async (child) => {
    child.get('/test/throws-error', async () => { throw new Error(SECRET_DETAIL) })
    child.get('/test/throws-string', async () => {
      // Non-Error throws happen in third-party code; they must still become the envelope.
      // eslint-disable-next-line no-throw-literal
      throw 'a thrown string: /work/main/x.ts:2 ECONNREFUSED 127.0.0.1:9'
    })
    child.get('/test/throws-sync', () => { throw new TypeError(`${SECRET_DETAIL} (sync)`) })
    child.get('/test/throws-coded', async () => {
      throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' })
    })
    child.get('/test/throttled-threatstack', async () => { throw new ThreatStackAPIError(429, { retryAfterSeconds: 9 }) })
    child.get('/test/throttled-s3', async () => { throw new S3ClientError({ throttled: true }) })
    child.get('/test/unavailable', async () => { throw new ServiceUnavailableError('The service is overloaded') })
  })
  await instance.ready()
  t.teardown(async () => instance.close())
  return { app: instance, logs }
}

t.test('no such route, or no such method, is 404 RouteNotFoundError', async (t) => {
  const { app } = await build(t)
  for (const [method, url, headers] of [
    ['GET', '/nope', {}],
    ['GET', '/api/v1/s3', BEARER.read],
    ['GET', '/api/v1/s3/alerts/abcd1234', BEARER.read],
    ['POST', '/api/v1/s3/alert/abcd1234', BEARER.ingest],
    ['DELETE', '/api/v1/s3/alert/abcd1234', BEARER.read],
    ['PUT', ALERT_URL, BEARER.ingest],
    ['POST', '/health', {}],
    ['GET', '/threatstack-to-s3/health', {}]
  ] as const) {
    const res = await app.inject({ method, url, headers })
    const error = assertError(t, res, 404, 'RouteNotFoundError')
    t.equal(error.message, 'Route not found', `${method} ${url}`)
  }
})

t.test('a malformed URL is a 400 RequestValidationError envelope', async (t) => {
  const { app } = await build(t)
  for (const url of [`${ALERT_URL}/%E0%A4%A`, '/%E0%A4%A', `${ALERT_URL}/%`]) {
    const res = await app.inject({ method: 'GET', url, headers: BEARER.read })
    const error = assertError(t, res, 400, 'RequestValidationError')
    t.equal(error.message, 'URL is malformed', url)
    t.notMatch(res.body, /%E0|not a valid url/, 'the URL is not echoed')
  }
})

t.test('a path parameter over the router limit is a 400 RequestValidationError envelope', async (t) => {
  const { app } = await build(t)
  const res = await app.inject({ method: 'GET', url: `${ALERT_URL}/${'x'.repeat(201)}`, headers: BEARER.read })
  const error = assertError(t, res, 400, 'RequestValidationError')
  t.notMatch(res.body, /x{50}/, 'the parameter is not echoed')
  t.ok(error.message.length < 100)
})

t.test('an unexpected error is a 500 UnexpectedException saying nothing more', async (t) => {
  const { app, logs } = await buildWithFailingRoutes(t)
  for (const url of ['/test/throws-error', '/test/throws-string', '/test/throws-sync', '/test/throws-coded']) {
    t.test(url, async (t) => {
      const res = await app.inject({ method: 'GET', url })
      const error = assertError(t, res, 500, 'UnexpectedException')
      t.equal(error.message, 'An unexpected error has occurred.')
      t.same(Object.keys(error).sort(), ['message', 'requestId', 'type'], 'no details')
      t.notMatch(res.body, /secret|internal|thrown|x\.ts|ECONNREFUSED|TypeError/, 'nothing of the thrown value')
      const line = logs.find((l) => l.level === 50 && l.reqId === error.requestId)
      t.ok(line, 'logged as an error with the request id')
      t.match(JSON.stringify(line?.err), /secret internal detail|a thrown string|ECONNREFUSED/, 'the log keeps what was thrown')
    })
  }
})

t.test('errors that ask the caller to come back later carry Retry-After', async (t) => {
  const { app } = await buildWithFailingRoutes(t)
  const cases: Array<[string, string, string]> = [
    ['/test/throttled-threatstack', 'ThreatStackAPIError', '9'],
    ['/test/throttled-s3', 'S3ClientError', '5'],
    ['/test/unavailable', 'ServiceUnavailableError', '5']
  ]
  for (const [url, type, retryAfter] of cases) {
    const res = await app.inject({ method: 'GET', url })
    assertError(t, res, 503, type)
    t.equal(res.headers['retry-after'], retryAfter, `${url} retry-after`)
  }
})

t.test('every response is JSON with x-request-id and nosniff', async (t) => {
  const built = await build(t, { env: { BODY_LIMIT_BYTES: '2048' } })
  const { app } = built
  const ok = { id: 'headers1', created_at: CREATED_AT }
  const requests: Array<[string, () => Promise<Awaited<ReturnType<FastifyInstance['inject']>>>]> = [
    ['health', async () => app.inject({ method: 'GET', url: '/health' })],
    ['status', async () => app.inject({ method: 'GET', url: '/api/v1/s3/status' })],
    ['POST 200', async () => postAlerts(app, ok)],
    ['GET 200', async () => app.inject({ method: 'GET', url: `${ALERT_URL}/headers1`, headers: BEARER.read })],
    ['GET 404 alert', async () => app.inject({ method: 'GET', url: `${ALERT_URL}/missing1`, headers: BEARER.read })],
    ['404 route', async () => app.inject({ method: 'GET', url: '/nope' })],
    ['401', async () => app.inject({ method: 'GET', url: `${ALERT_URL}/headers1` })],
    ['403', async () => app.inject({ method: 'GET', url: `${ALERT_URL}/headers1`, headers: BEARER.ingest })],
    ['400 body', async () => postAlerts(app, { id: 'x' })],
    ['400 params', async () => app.inject({ method: 'GET', url: `${ALERT_URL}/a.b`, headers: BEARER.read })],
    ['413', async () => postAlerts(app, { ...ok, title: 'x'.repeat(3000) })],
    ['415', async () => postAlerts(app, '<a/>', { contentType: 'application/xml' })],
    ['400 malformed URL', async () => app.inject({ method: 'GET', url: `${ALERT_URL}/%E0%A4%A`, headers: BEARER.read })],
    ['400 path parameter too long', async () => app.inject({ method: 'GET', url: `${ALERT_URL}/${'x'.repeat(201)}`, headers: BEARER.read })]
  ]
  for (const [name, request] of requests) {
    const res = await request()
    t.match(res.headers['content-type'], /^application\/json/, `${name}: content-type`)
    t.type(res.headers['x-request-id'], 'string', `${name}: x-request-id`)
    t.equal(res.headers['x-content-type-options'], 'nosniff', `${name}: nosniff`)
    if (res.statusCode >= 400 && res.headers['x-request-id'] !== undefined) {
      t.equal((res.json() as { error: { requestId: string } }).error.requestId, res.headers['x-request-id'], `${name}: same id`)
    }
  }
})

t.test('x-request-id', async (t) => {
  const { app, logs } = await build(t)

  t.test('a valid incoming id is echoed and used as error.requestId', async (t) => {
    for (const id of ['abc-123', 'A.b_c:d-9', 'r'.repeat(128)]) {
      const health = await app.inject({ method: 'GET', url: '/health', headers: { 'x-request-id': id } })
      t.equal(health.headers['x-request-id'], id)
      const res = await app.inject({ method: 'GET', url: '/nope', headers: { 'x-request-id': id } })
      t.equal(res.headers['x-request-id'], id)
      t.equal((res.json() as { error: { requestId: string } }).error.requestId, id)
    }
    t.ok((logs as Log[]).some((l) => l.reqId === 'abc-123'), 'and logged')
  })

  t.test('an incoming id in a malformed-URL request is used too', async (t) => {
    const res = await app.inject({ method: 'GET', url: `${ALERT_URL}/%E0%A4%A`, headers: { ...BEARER.read, 'x-request-id': 'abc-123' } })
    t.equal(res.statusCode, 400)
    t.equal((res.json() as { error: { requestId: string } }).error.requestId, 'abc-123')
  })

  t.test('an invalid incoming id is replaced by a generated one', async (t) => {
    for (const id of ['bad id with spaces', 'x'.repeat(300), 'r'.repeat(129), 'a/b', '<script>', '']) {
      const res = await app.inject({ method: 'GET', url: '/nope', headers: { 'x-request-id': id } })
      const requestId = (res.json() as { error: { requestId: string } }).error.requestId
      t.match(requestId, UUID, `${id.slice(0, 20)} replaced`)
      t.equal(res.headers['x-request-id'], requestId)
      t.notMatch(res.body, /script|spaces|xxxxxxxxxx/, 'not echoed')
    }
  })

  t.test('generated ids differ per request', async (t) => {
    const a = await app.inject({ method: 'GET', url: '/health' })
    const b = await app.inject({ method: 'GET', url: '/health' })
    t.match(a.headers['x-request-id'], UUID)
    t.not(a.headers['x-request-id'], b.headers['x-request-id'])
  })
})

t.test('toServiceError', async (t) => {
  t.test('our errors pass through unchanged', async (t) => {
    for (const err of [new AlertNotFoundError(), new S3ClientError(), new ThreatStackAPIError(500), new WebhookDataError('x', { details: ['/a b'] })]) {
      t.equal(toServiceError(err), err)
    }
  })

  t.test('anything else unknown is UnexpectedException with the original as cause', async (t) => {
    for (const thrown of [new Error('boom'), new TypeError('x'), 'a string', undefined, null, 42, { statusCode: 400, message: 'plain object' }]) {
      const err = toServiceError(thrown)
      t.type(err, UnexpectedException)
      t.equal(err.statusCode, 500)
      t.equal(err.message, UNEXPECTED_MESSAGE)
      if (thrown instanceof Error) {
        t.equal(err.cause, thrown, 'cause kept')
      } else {
        // The log's error serializer drops a cause that is not an Error: it is wrapped in one.
        t.type(err.cause, Error)
        t.match((err.cause as Error).message, /^non-Error thrown: /, 'cause wraps what was thrown')
      }
      t.equal(err.details, undefined)
    }
  })

  t.test('Fastify validation errors: body -> WebhookDataError, anything else -> RequestValidationError', async (t) => {
    const validation = (context: string, issues: Array<{ instancePath?: string, message?: string }>): Error =>
      Object.assign(new Error('validation failed'), { code: 'FST_ERR_VALIDATION', statusCode: 400, validation: issues, validationContext: context })

    const body = toServiceError(validation('body', [{ instancePath: '/id', message: 'too short' }, { instancePath: '', message: 'bad' }, { instancePath: '/x' }]))
    t.type(body, WebhookDataError)
    t.equal(body.statusCode, 400)
    t.equal(body.message, 'Webhook body is invalid')
    t.same(body.details, ['/id too short', '/ bad', '/x is invalid'])

    for (const context of ['params', 'querystring', 'headers']) {
      const err = toServiceError(validation(context, [{ instancePath: '/alert_id', message: 'must match' }]))
      t.type(err, RequestValidationError, context)
      t.equal(err.message, 'Request parameters are invalid')
      t.same(err.details, ['/alert_id must match'])
    }

    const many = toServiceError(validation('body', Array.from({ length: 50 }, (_, i) => ({ instancePath: `/alerts/${i}/id`, message: 'm'.repeat(500) }))))
    t.equal(many.details?.length, 20, 'at most 20 details')
    t.ok(many.details?.every((d) => d.length <= 200), 'each at most 200 characters')
  })

  t.test('Fastify framework errors map to their public types', async (t) => {
    const cases: Array<[Error, new (...args: never[]) => ServiceError, number]> = [
      [new errorCodes.FST_ERR_CTP_BODY_TOO_LARGE(), PayloadTooLargeError, 413],
      [new errorCodes.FST_ERR_CTP_INVALID_MEDIA_TYPE('application/xml'), UnsupportedMediaTypeError, 415],
      [new errorCodes.FST_ERR_CTP_EMPTY_JSON_BODY(), WebhookDataError, 400],
      [new errorCodes.FST_ERR_CTP_INVALID_JSON_BODY(), WebhookDataError, 400],
      [new errorCodes.FST_ERR_CTP_INVALID_CONTENT_LENGTH(), RequestValidationError, 400],
      [new errorCodes.FST_ERR_BAD_URL('/%E0'), RequestValidationError, 400],
      [new errorCodes.FST_ERR_MAX_PARAM_LENGTH('/x'), RequestValidationError, 400]
    ]
    for (const [fastifyError, Type, status] of cases) {
      const err = toServiceError(fastifyError)
      t.type(err, Type, (fastifyError as { code?: string }).code ?? 'a Fastify error')
      t.equal(err.statusCode, status)
      const code = (fastifyError as { code?: string }).code
      if (code === 'FST_ERR_BAD_URL' || code === 'FST_ERR_MAX_PARAM_LENGTH') {
        t.equal(err.cause, undefined, 'not kept: its message holds the raw URL, tokens included')
      } else {
        t.equal(err.cause, fastifyError, 'cause kept')
      }
      t.notMatch(err.message, /%E0|application\/xml|FST_/, 'a fixed message')
    }
  })

  t.test('other coded errors: a 4xx is RequestValidationError, the rest UnexpectedException', async (t) => {
    const coded = (code: string, statusCode?: number): Error => Object.assign(new Error(`${code} detail`), { code, ...(statusCode !== undefined && { statusCode }) })
    for (const status of [400, 408, 422, 499]) {
      const err = toServiceError(coded('FST_ERR_SOMETHING', status))
      t.type(err, RequestValidationError, String(status))
      t.equal(err.statusCode, 400)
      t.equal(err.message, 'Request is invalid')
    }
    for (const err of [coded('ECONNREFUSED'), coded('FST_ERR_X', 500), coded('FST_ERR_X', 399), coded('X', 503)]) {
      t.type(toServiceError(err), UnexpectedException)
    }
  })

  t.test('envelope', async (t) => {
    t.same(envelope(new AlertNotFoundError(), 'r-1'), {
      success: false,
      error: { type: 'AlertNotFoundError', message: 'Alert not found in the archive', requestId: 'r-1' }
    })
    t.same(envelope(new WebhookDataError('Webhook body is invalid', { details: ['/id bad'] }), 'r-2').error.details, ['/id bad'])
    const unexpected = envelope(toServiceError(new Error(SECRET_DETAIL)), 'r-3')
    t.same(unexpected, { success: false, error: { type: 'UnexpectedException', message: UNEXPECTED_MESSAGE, requestId: 'r-3' } })
    assertNoLeak(t, JSON.stringify(unexpected))
  })
})

t.test('what the HTTP parser refuses is answered on the socket with its catalogued status and the envelope', async (t) => {
  const instance = Fastify({ logger: false })
  t.teardown(async () => instance.close())
  const cases: Array<[string, number, string, string]> = [
    ['HPE_HEADER_OVERFLOW', 431, 'RequestValidationError', 'Request headers are too large'],
    ['ERR_HTTP_REQUEST_TIMEOUT', 408, 'RequestTimeoutError', 'Request took too long to arrive'],
    ['HPE_INVALID_METHOD', 400, 'RequestValidationError', 'Request is malformed']
  ]
  for (const [code, status, type, message] of cases) {
    const chunks: Buffer[] = []
    const socket = new Duplex({ read () {}, write (chunk: Buffer, _encoding, done) { chunks.push(chunk); done() } })
    clientErrorHandler.call(instance, Object.assign(new Error('parse error at 127.0.0.1:9'), { code }), socket)
    const [head = '', body = ''] = Buffer.concat(chunks).toString('utf8').split('\r\n\r\n')
    t.match(head, new RegExp(`^HTTP/1\\.1 ${status} `), `${code}: ${status}`)
    const json = JSON.parse(body) as { error: { requestId: string } }
    t.match(json, { success: false, error: { type, message, requestId: UUID } })
    t.match(head, `x-request-id: ${json.error.requestId}\r\n`)
    t.match(head, 'x-content-type-options: nosniff\r\n')
    t.match(head, `content-length: ${Buffer.byteLength(body)}\r\n`)
    t.notMatch(body, /127\.0\.0\.1|parse error/)
    t.ok(socket.destroyed, 'the connection is closed')
  }
})

t.test('a request whose head does not arrive in time is a 408 RequestTimeoutError envelope', async (t) => {
  const { app } = await build(t)
  // Node raises ERR_HTTP_REQUEST_TIMEOUT only on its 30 s connection check: the handler is given it on a real socket.
  const server = createNetServer((socket) => {
    clientErrorHandler.call(app, Object.assign(new Error('Request timeout'), { code: 'ERR_HTTP_REQUEST_TIMEOUT' }), socket)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.close() })
  const socket = connectNet((server.address() as NetAddress).port, '127.0.0.1')
  const chunks: Buffer[] = []
  socket.on('data', (c: Buffer) => chunks.push(c))
  await once(socket, 'close')
  const [head = '', body = ''] = Buffer.concat(chunks).toString().split('\r\n\r\n')
  t.match(head, /^HTTP\/1\.1 408 /)
  t.match(JSON.parse(body), { success: false, error: { type: 'RequestTimeoutError', message: 'Request took too long to arrive', requestId: String } })
  t.type(toServiceError(new RequestTimeoutError()), RequestTimeoutError, 'passed on as it is')
})
