// Property-based fuzzing of every route: generated bodies, paths, query strings, headers and
// content types, and forged SNS envelopes. Whatever comes in, the answer is a 2xx or a 4xx,
// every error is the envelope with a known type, nothing leaks, and the process stays healthy.
// Seeded and sized for CI; `npm run fuzz` runs longer with a fresh seed (FUZZ_RUNS, FUZZ_SEED).
import t from 'tap'
import fc from 'fast-check'
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify'
import { BEARER, TOKENS, build } from './helpers/build.js'
import { findLeak } from './helpers/leaks.js'
import { certFileName, fixtureCertificate, tempDir } from './helpers/sns.js'
import { alertSources } from '../schemas/json.js'

const RUNS = Number(process.env.FUZZ_RUNS ?? 10_000)
// FUZZ_SEED=random draws one; it is printed so that a failure can be replayed.
const SEED = process.env.FUZZ_SEED === 'random' ? Date.now() % 2 ** 31 : Number(process.env.FUZZ_SEED ?? 20261127)
t.comment(`fuzz seed ${SEED}, ${RUNS} inputs`)
// Every input is a real request through the whole app: on a machine running several suites at
// once the 10,000 can take several times their usual quarter of a minute.
t.setTimeout(Math.max(600_000, RUNS * 60))

const ERROR_TYPES = new Set([
  'WebhookDataError', 'DateParseError', 'RequestValidationError', 'AuthenticationError', 'AuthorizationError',
  'SNSSignatureError', 'SNSMessageInvalidError', 'AlertNotFoundError', 'RouteNotFoundError', 'PayloadTooLargeError',
  'UnsupportedMediaTypeError'
])

const PREFIXES = ['/api/v1/s3', '/threatstack-to-s3/api/v1/s3']
// Its certificate is AWS's fixture, from SNS_CERTS_DIR: forged signatures are checked, and no
// SNS call leaves the machine (the test dispatcher reaches no network).
const SNS_CERT_URL = 'https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem'
const printable = (max: number): fc.Arbitrary<string> => fc.stringMatching(new RegExp(`^[ -~]{0,${max}}$`))

/** Why an answer breaks the rules, or undefined when it keeps them. */
function violation (res: LightMyRequestResponse, method: string, url: string): string | undefined {
  const status = res.statusCode
  if (!((status >= 200 && status < 300) || (status >= 400 && status < 500))) return `status ${status}`
  // The API's own documentation names AWS and holds numbers the host:port pattern would take.
  const documentation = status === 200 && url.startsWith('/documentation')
  const leak = documentation ? undefined : findLeak(res.body)
  if (leak !== undefined) return `${leak} in ${res.body.slice(0, 300)}`
  if (res.headers['x-powered-by'] !== undefined) return 'x-powered-by header'
  if (res.headers['x-content-type-options'] !== 'nosniff') return 'no nosniff header'
  const metrics = res.headers['content-type']?.toString().startsWith('text/plain') === true && status === 200
  // A HEAD answer has headers only; a metrics scrape is Prometheus text; the docs UI is HTML.
  if (metrics || documentation || method === 'HEAD') return undefined
  let body: { success?: unknown, error?: { type?: unknown, message?: unknown, requestId?: unknown } }
  try { body = JSON.parse(res.body) } catch { return `not JSON: ${res.body.slice(0, 200)}` }
  if (status >= 400) {
    const e = body.error
    if (body.success !== false || e === undefined) return `no envelope: ${res.body.slice(0, 200)}`
    if (typeof e.type !== 'string' || !ERROR_TYPES.has(e.type)) return `type ${String(e.type)} for status ${status}`
    if (typeof e.message !== 'string' || typeof e.requestId !== 'string') return `incomplete envelope: ${res.body.slice(0, 200)}`
    if (status === 401 && res.headers['www-authenticate'] === undefined) return '401 without WWW-Authenticate'
  }
  return undefined
}

// Values that break assumptions: huge and odd numbers, unicode, prototype keys.
const oddString = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.constantFrom('', ' ', '\u0000', '../../etc/passwd', 'a/b', '%2e%2e', '587c0159a907346eccb84004', 'x'.repeat(129), '<script>', '$' + '{jndi:x}', '__proto__'),
  fc.stringMatching(/^[A-Za-z0-9_-]{1,140}$/)
)
const oddNumber = fc.oneof(
  fc.integer(), fc.double(), fc.constantFrom(0, -1, 1e300, -0, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER + 2, 253402300800000),
  fc.bigInt({ min: 0n, max: 10n ** 30n }).map((n) => n.toString())
)
const oddValue = fc.oneof(oddString, oddNumber, fc.boolean(), fc.constant(null), fc.array(fc.integer(), { maxLength: 3 }), fc.object({ maxDepth: 2 }))
const prototypeKey = fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf')

const validId = fc.stringMatching(/^[A-Za-z0-9_-]{4,40}$/)
const createdAt = fc.oneof(
  fc.integer({ min: 0, max: 253402300799999 }),
  fc.integer({ min: 0, max: 253402300799999 }).map(String),
  oddValue
)
const severity = fc.oneof(fc.constantFrom(1, 2, 3, '1', '2', '3'), oddValue)

/** An alert that is right, or wrong in one or a few places. */
const nearAlert = fc.record({
  id: fc.oneof(validId, oddValue),
  created_at: createdAt,
  severity,
  title: fc.oneof(fc.string({ maxLength: 60 }), oddValue),
  source: fc.oneof(fc.string({ maxLength: 20 }), oddValue)
}, { requiredKeys: [] }).chain((alert) => fc.tuple(fc.constant(alert), fc.dictionary(fc.oneof(prototypeKey, fc.string({ maxLength: 10 })), oddValue, { maxKeys: 3 })))
  .map(([alert, extra]) => ({ ...alert, ...extra }))

const deepJson = fc.integer({ min: 1, max: 200_000 }).chain((depth) => fc.constantFrom(
  '['.repeat(depth) + ']'.repeat(depth),
  '{"a":'.repeat(depth) + '1' + '}'.repeat(depth),
  `{"id":"abcd1234","created_at":1,"x":${'['.repeat(depth)}${']'.repeat(depth)}}`
))

/** Text that is a webhook body, almost one, or anything at all. */
const bodyText = fc.oneof(
  { weight: 4, arbitrary: nearAlert.map((a) => JSON.stringify(a)) },
  { weight: 3, arbitrary: fc.array(nearAlert, { minLength: 0, maxLength: 4 }).map((alerts) => JSON.stringify({ alerts })) },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)) },
  { weight: 1, arbitrary: fc.string({ maxLength: 200 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }) },
  { weight: 1, arbitrary: deepJson },
  {
    weight: 1,
    arbitrary: fc.constantFrom('', 'null', '[]', '{}', '"x"', '1', '{"alerts":[]}', '{"alerts":null}', '{"__proto__":{"polluted":1}}',
      '{"constructor":{"prototype":{"polluted":1}}}', `{"alerts":[${Array(101).fill('{"id":"abcd1234","created_at":1}').join(',')}]}`)
  }
)

/** An SNS envelope, forged: the signature never verifies. */
const snsEnvelope = fc.record({
  Type: fc.oneof(fc.constantFrom('Notification', 'SubscriptionConfirmation', 'UnsubscribeConfirmation'), oddValue),
  MessageId: fc.oneof(fc.uuid(), oddValue),
  TopicArn: fc.oneof(fc.constant('arn:aws:sns:us-east-1:123456789012:threatstack'), oddValue),
  Message: fc.oneof(nearAlert.map((a) => JSON.stringify(a)), oddValue),
  Timestamp: fc.oneof(fc.date({ noInvalidDate: true }).map((d) => d.toISOString()), oddValue),
  SignatureVersion: fc.oneof(fc.constantFrom('1', '2'), oddValue),
  Signature: fc.oneof(fc.base64String({ maxLength: 344 }), oddValue),
  SigningCertURL: fc.oneof(fc.constantFrom(
    SNS_CERT_URL,
    'https://sns.evil.com/SimpleNotificationService-0.pem',
    'https://sns.us-east-1.amazonaws.com.evil.com/SimpleNotificationService-0.pem',
    'http://sns.us-east-1.amazonaws.com/SimpleNotificationService-0.pem',
    'https://sns.us-east-1.amazonaws.com@127.0.0.1/x.pem',
    'file:///etc/passwd'
  ), oddValue),
  SubscribeURL: fc.oneof(fc.constantFrom('https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription', 'http://127.0.0.1:1/'), oddValue),
  Token: fc.oneof(fc.string({ maxLength: 40 }), oddValue)
}, { requiredKeys: [] })

const contentType = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('application/json', 'text/plain', 'text/plain; charset=utf-8', 'application/json; charset=utf-8') },
  { weight: 2, arbitrary: fc.constantFrom('application/xml', 'multipart/form-data; boundary=x', 'application/x-www-form-urlencoded', 'text/html', '*/*', 'application/json; charset=latin1', 'application/jsonx', ';;;') },
  { weight: 1, arbitrary: printable(60) }
)

const ingestAuth = fc.oneof(
  { weight: 8, arbitrary: fc.constant({ headers: BEARER.ingest, query: '' }) },
  { weight: 2, arbitrary: fc.constant({ headers: {}, query: `?token=${TOKENS.ingest}` }) },
  { weight: 1, arbitrary: fc.constant({ headers: BEARER.read, query: '' }) },
  { weight: 1, arbitrary: fc.constant({ headers: {}, query: '' }) },
  { weight: 1, arbitrary: printable(80).map((v) => ({ headers: { authorization: v }, query: '' })) },
  { weight: 1, arbitrary: printable(80).map((v) => ({ headers: {}, query: `?token=${encodeURIComponent(v)}` })) }
)

const oddHeaders = fc.dictionary(
  fc.oneof(fc.constantFrom('x-request-id', 'x-forwarded-for', 'accept', 'accept-encoding', 'x-amz-sns-message-type', 'origin', 'cookie'), fc.stringMatching(/^x-[a-z-]{1,20}$/)),
  printable(200),
  { maxKeys: 3 }
)

/** A path segment: an id, almost one, or anything, encoded or raw. */
const pathSegment = fc.oneof(
  validId,
  oddString.map((s) => encodeURIComponent(s)),
  fc.stringMatching(/^[!-~]{0,300}$/).map((s) => s.replace(/[?#]/g, '')),
  fc.constantFrom('%', '%zz', '%00', '..', '.', '%2F..%2F', 'a'.repeat(300))
)

const queryValue = fc.oneof(
  fc.constantFrom('2017-01-15', '2017-01-16', '2017-01-15T23:10:00Z', '2017-01-15T23:10:00.250+02:00', '2017-02-30', '2017-13-01', '0000-01-01',
    '9999-12-31T23:59:59.999Z', '1484521800000', 'now', '', 'T', '2017-01-15T25:00:00Z', '+275760-09-13'),
  fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
  printable(70)
)
const searchQuery = fc.record({
  start: queryValue,
  end: queryValue,
  limit: fc.oneof(fc.integer({ min: -5, max: 2000 }).map(String), printable(10), fc.constantFrom('1.5', '1e3', '0x10', 'true')),
  cursor: fc.oneof(fc.base64String({ maxLength: 200 }).map((s) => s.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')), printable(100)),
  token: printable(30)
}, { requiredKeys: [] }).map((q) => '?' + Object.entries(q).map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&'))

const method = fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS') as fc.Arbitrary<InjectOptions['method']>

t.test(`every route answers ${RUNS} generated inputs with a 2xx or a 4xx envelope and leaks nothing`, async (t) => {
  const certsDir = await tempDir(t, { [certFileName(SNS_CERT_URL)]: await fixtureCertificate() })
  const { app } = await build(t, { logLevel: 'silent', env: { SNS_CERTS_DIR: certsDir } })
  const seen = { total: 0, statuses: new Map<number, number>() }

  async function check (options: InjectOptions): Promise<void> {
    const res = await app.inject(options)
    seen.total++
    seen.statuses.set(res.statusCode, (seen.statuses.get(res.statusCode) ?? 0) + 1)
    const why = violation(res, String(options.method), String(options.url))
    if (why !== undefined) throw new Error(`${String(options.method)} ${String(options.url)}: ${why}`)
  }

  const share = (fraction: number): number => Math.max(1, Math.ceil(RUNS * fraction))
  async function run<Ts> (name: string, numRuns: number, property: fc.IAsyncProperty<Ts>): Promise<void> {
    const result = await fc.check(property, { seed: SEED, numRuns, endOnFailure: true })
    t.notOk(result.failed, `${name}: ${numRuns} inputs` +
      (result.failed ? `\n${String(result.errorInstance)}\n${fc.defaultReportMessage(result) ?? ''}\nrerun with FUZZ_SEED=${SEED}` : ''))
  }

  await run('webhook bodies', share(0.4), fc.asyncProperty(fc.constantFrom(...PREFIXES), bodyText, contentType, ingestAuth, oddHeaders,
    async (prefix, payload, type, auth, headers) => {
      await check({ method: 'POST', url: `${prefix}/alert${auth.query}`, payload, headers: { ...headers, ...auth.headers, 'content-type': type } })
    }))
  await run('SNS envelopes', share(0.15), fc.asyncProperty(snsEnvelope, fc.constantFrom('Notification', 'SubscriptionConfirmation', 'UnsubscribeConfirmation', 'Other', ''), contentType,
    async (envelope, type, ctype) => {
      await check({ method: 'POST', url: `/api/v1/s3/alert?token=${TOKENS.ingest}`, payload: JSON.stringify(envelope), headers: { 'x-amz-sns-message-type': type, 'content-type': ctype } })
    }))
  await run('alert ids', share(0.15), fc.asyncProperty(fc.constantFrom(...PREFIXES), pathSegment, fc.boolean(),
    async (prefix, id, authorized) => {
      await check({ method: 'GET', url: `${prefix}/alert/${id}`, headers: authorized ? BEARER.read : {} })
    }))
  await run('search queries', share(0.15), fc.asyncProperty(fc.constantFrom(...PREFIXES), searchQuery, oddHeaders,
    async (prefix, query, headers) => {
      await check({ method: 'GET', url: `${prefix}/alert${query}`, headers: { ...headers, ...BEARER.read } })
    }))
  await run('methods, paths and headers', share(0.15), fc.asyncProperty(method, fc.constantFrom('/health', '/metrics', '/api/v1/s3/status', '/api/v1/s3/alert', '/', '/api', '/documentation/json'),
    fc.array(pathSegment, { maxLength: 3 }), oddHeaders, fc.option(fc.string({ maxLength: 100 })),
    async (verb, base, segments, headers, payload) => {
      const url = [base, ...segments].join('/')
      await check({ method: verb, url, headers: { ...headers, ...BEARER.read }, ...(payload !== null && verb !== 'GET' && verb !== 'HEAD' && { payload }) })
    }))

  t.ok(seen.total >= RUNS, `${seen.total} requests made`)
  t.ok([...seen.statuses.keys()].some((s) => s === 200), 'some inputs were accepted')
  t.ok([...seen.statuses.keys()].filter((s) => s >= 400).length >= 5, `several kinds of refusal: ${[...seen.statuses.keys()].sort().join(', ')}`)

  t.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype is not polluted')
  const health = await (app as FastifyInstance).inject({ method: 'GET', url: '/health' })
  t.equal(health.statusCode, 200, 'the process is healthy after the run')
})

/** `value` as JSON text with the spacing `gap` picks between tokens, and keys in their order. */
function spaced (value: unknown, gap: () => string): string {
  if (Array.isArray(value)) return `[${gap()}${value.map((v) => `${spaced(v, gap)}${gap()}`).join(`,${gap()}`)}]`
  if (typeof value === 'object' && value !== null) {
    return `{${gap()}${Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}${gap()}:${gap()}${spaced(v, gap)}${gap()}`).join(`,${gap()}`)}}`
  }
  return JSON.stringify(value)
}

t.test('alertSources cuts each alert out of any JSON text exactly, and finds every key given twice', async (t) => {
  const spacing = fc.array(fc.constantFrom('', ' ', '\n', '\t', '\r\n  '), { minLength: 1, maxLength: 8 })
  const element = fc.dictionary(fc.string({ maxLength: 6 }), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 5 })
  const body = fc.oneof(
    element.filter((o) => !Object.hasOwn(o, 'alerts')).map((o) => ({ value: o as unknown, alerts: [o] })),
    fc.tuple(fc.array(element, { maxLength: 5 }), element).map(([alerts, rest]) => {
      const value = { ...rest, alerts }
      return { value: value as unknown, alerts }
    })
  )
  const result = await fc.check(fc.property(body, spacing, fc.nat(), ({ value, alerts }, gaps, seed) => {
    let i = seed
    const gap = (): string => gaps[i++ % gaps.length] ?? ''
    const text = `${gap()}${spaced(value, gap)}${gap()}`
    const { sources, duplicate } = alertSources(text)
    if (duplicate !== undefined) return false
    if (sources.length !== alerts.length) return false
    // Each source is a slice of the text that parses to its alert.
    if (!sources.every((source, n) => text.includes(source) && JSON.stringify(JSON.parse(source)) === JSON.stringify(alerts[n]))) return false
    // The same text with one key of the top-level object given twice is caught.
    const twice = text.replace(/^(\s*)\{/, '$1{"alerts":0,')
    return !Object.hasOwn(value as object, 'alerts') || alertSources(twice).duplicate?.key === 'alerts'
  }), { seed: SEED, numRuns: Math.max(100, Math.ceil(RUNS / 10)) })
  t.notOk(result.failed, result.failed ? `${fc.defaultReportMessage(result) ?? ''}\nrerun with FUZZ_SEED=${SEED}` : 'every cut exact')
})
