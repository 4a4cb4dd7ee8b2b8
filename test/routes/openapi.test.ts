import t from 'tap'
import Fastify, { type RouteOptions } from 'fastify'
import swagger from '@fastify/swagger'
import { Validator } from '@seriousme/openapi-schema-validator'
import { Type } from '@sinclair/typebox'
import * as errors from '../../errors/index.js'
import { ERROR_CLASSES, errorResponses, errorTable, type ErrorType } from '../../schemas/envelope.js'
import errorsPlugin from '../../plugins/errors.js'
import openapiPlugin from '../../plugins/openapi.js'
import { readFile } from 'node:fs/promises'
import { documentedApp } from '../../client/generate.js'
import { documentationCsp, toOpenapi30Examples } from '../../plugins/openapi.js'
import { documentProblems, documentedRoutes, openapiPath, type OpenapiDocument } from '../helpers/openapi.js'
import { build } from '../helpers/build.js'

type Operation = { operationId: string, deprecated?: boolean, security?: unknown, tags?: string[], responses: Record<string, unknown> }

const LEGACY = '/threatstack-to-s3/api/v1/s3'

t.test('the document describes every route the app registers', async (t) => {
  const routes: RouteOptions[] = []
  const app = await documentedApp({ onRoute: (route) => { routes.push(route) } })
  t.teardown(async () => app.close())
  const doc = app.swagger() as unknown as OpenapiDocument

  const validation = await new Validator().validate(doc as unknown as Record<string, unknown>)
  t.same(validation.errors, undefined, 'no validation error')
  t.ok(validation.valid, 'a valid OpenAPI 3.0 document')
  t.equal(doc.openapi, '3.0.3')

  const documented = documentedRoutes(routes)
  t.same(documented.map((r) => `${r.method} ${r.url}`).sort(), [
    'GET /',
    'GET /api/v1/s3/alert',
    'GET /api/v1/s3/alert/:alert_id',
    'GET /api/v1/s3/alert/:alert_id/evidence',
    'GET /api/v1/s3/coverage',
    'GET /api/v1/s3/status',
    'GET /health',
    'GET /metrics',
    `GET ${LEGACY}/alert`,
    `GET ${LEGACY}/alert/:alert_id`,
    `GET ${LEGACY}/alert/:alert_id/evidence`,
    `GET ${LEGACY}/coverage`,
    `GET ${LEGACY}/status`,
    'POST /api/v1/s3/alert',
    `POST ${LEGACY}/alert`
  ], 'the routes to describe (the documentation routes are hidden, HEAD twins skipped)')
  t.same(documentProblems(doc, documented), [], 'each has an operationId, a summary, a 200 schema and error envelopes')

  const operations = new Map<string, Operation>()
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) operations.set(`${method.toUpperCase()} ${path}`, op as Operation)
  }
  t.same([...operations.keys()].sort(), documented.map((r) => `${r.method} ${openapiPath(r.url)}`).sort(), 'nothing else is in the document')
  t.notOk([...operations.keys()].some((k) => k.includes('/documentation')), 'the documentation routes are not operations')

  const expected: Array<[string, string, string, number[]]> = [
    ['POST /api/v1/s3/alert', 'archiveAlerts', 'ingest', [200, 400, 401, 403, 408, 413, 415, 500, 502, 503]],
    ['GET /api/v1/s3/alert/{alert_id}', 'getAlert', 'read', [200, 304, 400, 401, 403, 404, 500, 502, 503]],
    ['GET /api/v1/s3/alert/{alert_id}/evidence', 'getAlertEvidence', 'read', [200, 400, 401, 403, 404, 500, 502, 503]],
    ['GET /api/v1/s3/alert', 'searchAlerts', 'read', [200, 400, 401, 403, 408, 413, 500, 502, 503]],
    ['GET /api/v1/s3/status', 'getStatus', 'none', [200, 500, 503]],
    ['GET /health', 'getHealth', 'none', [200, 500, 503]],
    ['GET /metrics', 'getMetrics', 'read', [200, 401, 403, 500, 503]]
  ]
  const security = { ingest: [{ bearer: [] }, { ingestQueryToken: [] }], read: [{ bearer: [] }], none: [] }
  for (const [key, operationId, scope, statuses] of expected) {
    const op = operations.get(key)
    t.equal(op?.operationId, operationId, `${key}: operationId`)
    t.same(op?.security, security[scope as keyof typeof security], `${key}: security (${scope})`)
    t.same(Object.keys(op?.responses ?? {}).map(Number), statuses, `${key}: statuses`)
    t.notOk(op?.deprecated, `${key}: current`)
    const legacyKey = key.replace(' /api/v1/s3', ` ${LEGACY}`)
    if (legacyKey !== key) {
      const legacy = operations.get(legacyKey)
      t.equal(legacy?.operationId, `${operationId}Legacy`, `${legacyKey}: its own operationId`)
      t.equal(legacy?.deprecated, true, `${legacyKey}: deprecated`)
      t.same(legacy?.tags, ['legacy prefix'])
      t.same(legacy?.security, op?.security, `${legacyKey}: same security`)
      t.same(legacy?.responses, op?.responses, `${legacyKey}: same responses`)
    }
  }

  t.match(doc, {
    info: { title: 'threatstack-to-s3', version: String, description: String },
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer' },
        ingestQueryToken: { type: 'apiKey', in: 'query', name: 'token' }
      },
      schemas: { ErrorEnvelope: { type: 'object', required: ['success', 'error'] } }
    }
  })
  const metrics = operations.get('GET /metrics')?.responses['200'] as { content: Record<string, unknown> }
  t.same(Object.keys(metrics.content), ['text/plain; version=0.0.4'], '/metrics answers Prometheus text')
  const post = operations.get('POST /api/v1/s3/alert') as unknown as { requestBody: { content: Record<string, unknown> }, parameters?: unknown[] }
  t.same(Object.keys(post.requestBody.content), ['application/json', 'text/plain'], 'webhook bodies as JSON or text/plain')
  t.equal(post.parameters, undefined, '?token= is the ingestQueryToken security scheme, not a parameter')
  const status503 = operations.get('GET /api/v1/s3/status')?.responses['503'] as { content: { 'application/json': { schema: { anyOf: unknown[] } } } }
  t.equal(status503.content['application/json'].schema.anyOf.length, 2, '/status 503: the status body or the error envelope')
})

t.test('the checker fails a route that declares no responses', async (t) => {
  const app = Fastify({ logger: false })
  const routes: RouteOptions[] = []
  app.addHook('onRoute', (route) => { routes.push(route) })
  await app.register(swagger, { openapi: { openapi: '3.0.3', info: { title: 'probe', version: '1.0.0' } } })
  app.get('/undocumented', { schema: { operationId: 'undocumented', summary: 'No responses' } }, async () => ({ ok: true }))
  app.get('/ok-only', {
    schema: { operationId: 'okOnly', summary: 'A 200 only', response: { 200: Type.Object({ ok: Type.Boolean() }) } }
  }, async () => ({ ok: true }))
  app.get('/no-id', { schema: { response: { 200: Type.Object({ ok: Type.Boolean() }), 500: Type.Object({}) } } }, async () => ({ ok: true }))
  await app.ready()
  t.teardown(async () => app.close())
  const problems = documentProblems(app.swagger() as unknown as OpenapiDocument, documentedRoutes(routes))
  t.ok(problems.includes('GET /undocumented: no response schema for 200'), 'a missing 200 schema is reported')
  t.ok(problems.includes('GET /undocumented: no 5xx response'))
  t.ok(problems.includes('GET /ok-only: no 5xx response'), 'a route without error responses is reported')
  t.ok(problems.includes('GET /no-id: no operationId'))
  t.ok(problems.includes('GET /no-id: no summary'))
  t.ok(problems.includes('GET /no-id: 500 is not the error envelope'))
  t.ok(problems.includes('GET /no-id: 500 has no description'))
  t.ok(problems.includes('no ErrorEnvelope component'))
  t.same(documentProblems({ openapi: '3.0.3', paths: {} }, [{ method: 'GET', url: '/gone' }]), ['no ErrorEnvelope component', 'GET /gone: not in the document'])
  const twice = { getThing: { operationId: 'same', summary: 's', responses: {} } }
  t.match(documentProblems({ openapi: '3.0.3', paths: { '/a': { get: twice.getThing }, '/b': { get: twice.getThing } } }, []),
    ['operationId same of GET /b is also GET /a\'s'], 'a duplicate operationId is reported')
})

t.test('the error catalogue of the document is the error classes', async (t) => {
  const classes = Object.entries(errors)
    .filter(([, value]) => typeof value === 'function' && value.prototype instanceof errors.ServiceError)
    .map(([name]) => name)
    .filter((name) => name !== 'ThreatStackError')
  t.same(ERROR_CLASSES.map((c) => c.name).sort(), classes.sort(), 'one entry per error class')
  const catalogue = new Map(ERROR_CLASSES.map((c) => [c.name, c]))
  const instances: Array<[ErrorType, errors.ServiceError]> = [
    ['WebhookDataError', new errors.WebhookDataError('m')],
    ['DateParseError', new errors.DateParseError('m')],
    ['RequestValidationError', new errors.RequestValidationError('m')],
    ['RequestTimeoutError', new errors.RequestTimeoutError()],
    ['RequestValidationError', new errors.RequestValidationError(undefined, { status: 431 })],
    ['SNSMessageInvalidError', new errors.SNSMessageInvalidError('m')],
    ['AuthenticationError', new errors.AuthenticationError()],
    ['AuthorizationError', new errors.AuthorizationError()],
    ['SNSSignatureError', new errors.SNSSignatureError('m')],
    ['AlertNotFoundError', new errors.AlertNotFoundError()],
    ['RouteNotFoundError', new errors.RouteNotFoundError()],
    ['RequestTimeoutError', new errors.RequestTimeoutError()],
    ['PayloadTooLargeError', new errors.PayloadTooLargeError('m')],
    ['UnsupportedMediaTypeError', new errors.UnsupportedMediaTypeError('m')],
    ['UnexpectedException', new errors.UnexpectedException()],
    ['ThreatStackRequestError', new errors.ThreatStackRequestError()],
    ['ThreatStackRequestError', new errors.ThreatStackRequestError({ timedOut: true })],
    ['ThreatStackAPIError', new errors.ThreatStackAPIError(500)],
    ['ThreatStackAPIError', new errors.ThreatStackAPIError(429)],
    ['S3ClientError', new errors.S3ClientError()],
    ['S3ClientError', new errors.S3ClientError({ throttled: true })],
    ['ArchiveIntegrityError', new errors.ArchiveIntegrityError()],
    ['ServiceUnavailableError', new errors.ServiceUnavailableError('m')]
  ]
  for (const [type, err] of instances) {
    t.ok(catalogue.get(type)?.cases.some((c) => c.status === err.statusCode), `${type} ${err.statusCode} is documented`)
    t.equal(err.name, type)
  }
  for (const c of ERROR_CLASSES) {
    t.same([...new Set(c.cases.map((k) => k.status))].sort(), [...new Set(instances.filter(([n]) => n === c.name).map(([, e]) => e.statusCode))].sort(), `${c.name}: no other status`)
  }
  const fixed = [new errors.AuthenticationError(), new errors.AuthorizationError(), new errors.AlertNotFoundError(), new errors.RequestTimeoutError(), new errors.ArchiveIntegrityError(), new errors.UnexpectedException()]
  for (const err of fixed) t.equal(catalogue.get(err.name)?.cases[0]?.message, err.message, `${err.name}: the message it sends`)
  t.throws(() => new errors.WebhookDataError('m', { status: 418 }), TypeError, 'a status outside the catalogue cannot be sent')

  const app = await documentedApp()
  t.teardown(async () => app.close())
  const doc = app.swagger() as unknown as { components: { schemas: { ErrorEnvelope: { properties: { error: { properties: { type: { enum: string[] } } } } } } } }
  t.same(doc.components.schemas.ErrorEnvelope.properties.error.properties.type.enum, ERROR_CLASSES.map((c) => c.name),
    'the envelope lists every class as a type')
})

t.test('the README error table is the catalogue', async (t) => {
  const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8')
  const errorsSection = readme.slice(readme.indexOf('\n## Errors\n'))
  const table = errorsSection.slice(errorsSection.indexOf('\n|') + 1, errorsSection.indexOf('\n\n', errorsSection.indexOf('\n|')))
  t.equal(table, errorTable(), 'README.md "Errors" table: regenerate it from errorTable() (schemas/envelope.ts)')
  for (const c of ERROR_CLASSES) t.match(table, `| \`${c.name}\` |`, `${c.name} has its row`)
})

t.test('a new error class is one class: its cases are documented by the routes declaring it, and sent', async (t) => {
  class ProbeTimeoutError extends errors.ServiceError {
    static override readonly cases = [
      { status: 408, when: 'the probe took too long', message: 'Probe took too long' },
      { status: 400, when: 'the probe was malformed', message: 'Probe is malformed', beforeRouting: true }
    ]
  }
  const app = Fastify({ logger: false })
  await app.register(errorsPlugin)
  await app.register(openapiPlugin, {})
  app.get('/probe', {
    schema: { operationId: 'probe', summary: 'Probe', response: { 200: Type.Object({ ok: Type.Boolean() }), ...errorResponses(ProbeTimeoutError, 'AlertNotFoundError') } }
  }, async () => { throw new ProbeTimeoutError(undefined) })
  app.get('/other', {
    schema: { operationId: 'other', summary: 'Other', response: { 200: Type.Object({ ok: Type.Boolean() }), ...errorResponses() } }
  }, async () => ({ ok: true }))
  await app.ready()
  t.teardown(async () => app.close())
  const doc = (await app.inject('/documentation/json')).json() as OpenapiDocument
  const probe = (doc.paths['/probe'] as { get: Operation }).get
  t.same(Object.keys(probe.responses).map(Number), [200, 404, 408, 500, 503], 'its routed case, next to the others; not the one before routing')
  t.match(probe.responses['408'], {
    description: '`ProbeTimeoutError`: the probe took too long.',
    content: {
      'application/json': {
        schema: { $ref: '#/components/schemas/ErrorEnvelope' },
        example: { success: false, error: { type: 'ProbeTimeoutError', message: 'Probe took too long' } }
      }
    }
  })
  t.same(Object.keys((doc.paths['/other'] as { get: Operation }).get.responses).map(Number), [200, 500, 503], 'not on a route that does not declare it')
  t.same(documentProblems(doc, [{ method: 'GET', url: '/probe' }, { method: 'GET', url: '/other' }]), [])

  const res = await app.inject('/probe')
  t.equal(res.statusCode, 408)
  t.match(res.json(), { success: false, error: { type: 'ProbeTimeoutError', message: 'Probe took too long', requestId: String } })
})

t.test('the documentation is served without a token, with sane headers', async (t) => {
  const { app } = await build(t)
  const json = await app.inject('/documentation/json')
  t.equal(json.statusCode, 200)
  t.match(json.headers['content-type'], /^application\/json/)
  t.same(json.json(), app.swagger(), 'the same document')
  const problems = documentProblems(json.json() as OpenapiDocument, [{ method: 'GET', url: '/health' }])
  t.same(problems, [])

  const yaml = await app.inject('/documentation/yaml')
  t.equal(yaml.statusCode, 200)
  t.match(yaml.headers['content-type'], /^application\/x-yaml/)
  t.match(yaml.body, /^openapi: 3\.0\.3\n/)
  for (const id of ['archiveAlerts', 'getAlert', 'searchAlerts', 'getStatus', 'getHealth', 'getMetrics', 'archiveAlertsLegacy']) {
    t.match(yaml.body, new RegExp(`operationId: ${id}\\n`), `yaml has ${id}`)
  }

  for (const url of ['/documentation', '/documentation/']) {
    const html = await app.inject(url)
    t.equal(html.statusCode, 200, url)
    t.match(html.headers['content-type'], /^text\/html/)
    t.match(html.body, /<html|<!DOCTYPE html>/i)
    t.equal(html.headers['x-content-type-options'], 'nosniff')
    const csp = String(html.headers['content-security-policy'])
    t.match(csp, /default-src 'self'/)
    t.match(csp, /object-src 'none'/)
    t.match(csp, /frame-ancestors 'self'/)
    t.notMatch(csp, /upgrade-insecure-requests|validator\.swagger\.io|https:/, 'nothing that breaks a plain-HTTP UI or calls out')
  }
  for (const [url, type] of [
    ['/documentation/static/swagger-ui-bundle.js', /^application\/javascript/],
    ['/documentation/static/swagger-initializer.js', /^application\/javascript/],
    ['/documentation/static/swagger-ui.css', /^text\/css/],
    ['/documentation/static/index.css', /^text\/css/]
  ] as const) {
    const res = await app.inject(url)
    t.equal(res.statusCode, 200, url)
    t.match(res.headers['content-type'], type, `${url}: its own content type, which nosniff keeps`)
    t.equal(res.headers['x-content-type-options'], 'nosniff')
  }
  const initializer = await app.inject('/documentation/static/swagger-initializer.js')
  t.match(initializer.body, /validatorUrl":\s*null|"validatorUrl":null/, 'the UI never sends the document to an outside validator')

  const missing = await app.inject('/documentation/static/nope.js')
  t.equal(missing.statusCode, 404)
  t.match(missing.json(), { success: false, error: { type: 'RouteNotFoundError' } }, 'an unknown asset is the usual 404 envelope')
  const api = await app.inject('/api/v1/s3/alert/abcd1234')
  t.equal(api.statusCode, 401, 'the archive still asks for a token')
  t.equal(api.headers['content-security-policy'], undefined, 'the UI CSP stays on the documentation routes')
})

t.test('a shed /status answers the envelope through its 503 schema (the status body or the envelope)', async (t) => {
  const { app } = await build(t, { env: { LOAD_MAX_HEAP_USED_BYTES: '1' } })
  // The heap is sampled periodically: poll, within a bound, until the first sample sheds.
  let res = await app.inject('/api/v1/s3/status')
  for (let i = 0; i < 50 && res.statusCode !== 503; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100))
    res = await app.inject('/api/v1/s3/status')
  }
  t.equal(res.statusCode, 503)
  t.match(res.json(), { success: false, error: { type: 'ServiceUnavailableError', message: String, requestId: res.headers['x-request-id'] } })
  t.ok(res.headers['retry-after'])
})

t.test('documentationCsp drops what breaks a UI served over plain HTTP', async (t) => {
  t.equal(documentationCsp("default-src 'self'; img-src 'self' data: validator.swagger.io; style-src 'self' https: ; upgrade-insecure-requests;"),
    "default-src 'self'; img-src 'self' data:; style-src 'self'")
})

t.test('toOpenapi30Examples turns schema examples into example, and leaves values alone', async (t) => {
  const doc = {
    schema: { anyOf: [{ type: 'string', examples: ['a', 'b'] }], properties: { x: { examples: [1] } } },
    media: { examples: { one: { value: { examples: [9] } } }, example: { examples: ['kept'] } },
    prior: { example: 'first', examples: ['second'] }
  }
  toOpenapi30Examples(doc)
  t.same(doc, {
    schema: { anyOf: [{ type: 'string', example: 'a' }], properties: { x: { example: 1 } } },
    media: { examples: { one: { value: { examples: [9] } } }, example: { examples: ['kept'] } },
    prior: { example: 'first' }
  })
})
