// Hardening against a caller who is trying: nesting, prototype keys, header and body sizes,
// headers on every answer, and 401s that say nothing about which tokens exist.
import t from 'tap'
import { connect } from 'node:net'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { BEARER, TOKENS, build } from './helpers/build.js'
import { ALERT_URL, CREATED_AT, assertError, postAlerts } from './helpers/requests.js'
import { assertNoLeak } from './helpers/leaks.js'
import { MAX_JSON_DEPTH, exceedsJsonDepth } from '../schemas/json.js'

const nested = (depth: number): string => '['.repeat(depth) + ']'.repeat(depth)

t.test('exceedsJsonDepth counts objects and arrays, not brackets inside strings', async (t) => {
  t.notOk(exceedsJsonDepth(nested(MAX_JSON_DEPTH)), 'exactly the limit')
  t.ok(exceedsJsonDepth(nested(MAX_JSON_DEPTH + 1)), 'one more')
  t.notOk(exceedsJsonDepth(`{"a":"${'['.repeat(100)}"}`), 'brackets in a string')
  t.notOk(exceedsJsonDepth(`{"a":"\\"${'{'.repeat(100)}"}`), 'brackets after an escaped quote')
  t.ok(exceedsJsonDepth(`{"a":"\\\\",${'"b":{'.repeat(40)}}`), 'an escaped backslash closes nothing')
  t.notOk(exceedsJsonDepth('[[]][[]][[]]', 2), 'siblings do not add up')
})

t.test('bodies nested too deeply are 400 WebhookDataError before parsing, in both content types', async (t) => {
  const { app } = await build(t)
  for (const contentType of ['application/json', 'text/plain']) {
    // 200,000 levels: parsing would succeed, storing would exhaust the stack.
    for (const body of [nested(200_000), `{"id":"deep0001","created_at":${CREATED_AT},"x":${nested(MAX_JSON_DEPTH)}}`]) {
      const res = await postAlerts(app, body, { contentType })
      const error = assertError(t, res, 400, 'WebhookDataError')
      t.equal(error.message, 'Webhook body is nested too deeply')
    }
  }
  const inside = `{"id":"deep0002","created_at":${CREATED_AT},"x":${nested(MAX_JSON_DEPTH - 1)}}`
  const res = await postAlerts(app, inside, { contentType: 'application/json' })
  t.equal(res.statusCode, 200, 'nesting up to the limit is archived')
})

t.test('prototype keys are refused anywhere in a body and pollute nothing', async (t) => {
  const { app } = await build(t)
  const bodies = [
    '{"id":"abcd1234","created_at":1,"extra":{"deeper":{"__proto__":{"polluted":true}}}}',
    '{"alerts":[{"id":"abcd1234","created_at":1,"x":[{"constructor":{"prototype":{"polluted":true}}}]}]}'
  ]
  for (const body of bodies) {
    for (const contentType of ['application/json', 'text/plain']) {
      const res = await postAlerts(app, body, { contentType })
      assertError(t, res, 400, 'WebhookDataError')
    }
  }
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype untouched')
})

t.test('more than 100 alerts in one body is 400', async (t) => {
  const { app } = await build(t)
  const alerts = Array.from({ length: 101 }, (_, i) => ({ id: `many${String(i).padStart(4, '0')}`, created_at: CREATED_AT }))
  const error = assertError(t, await postAlerts(app, { alerts }), 400, 'WebhookDataError')
  t.match(error.details?.join(' '), /alerts/, 'names the field')
})

t.test('answers carry nosniff and the request id, never x-powered-by', async (t) => {
  const { app } = await build(t)
  const answers = [
    await app.inject({ method: 'GET', url: '/health' }),
    await app.inject({ method: 'GET', url: `${ALERT_URL}/missing1`, headers: BEARER.read }),
    await app.inject({ method: 'GET', url: '/nowhere' }),
    await postAlerts(app, 'not json', { contentType: 'application/json' })
  ]
  for (const res of answers) {
    t.equal(res.headers['x-content-type-options'], 'nosniff', `nosniff on ${res.statusCode}`)
    t.equal(res.headers['x-powered-by'], undefined, `no x-powered-by on ${res.statusCode}`)
    t.type(res.headers['x-request-id'], 'string', `x-request-id on ${res.statusCode}`)
  }
})

t.test('a 401 reads the same for a missing token, an unknown one, and a malformed header', async (t) => {
  const { app } = await build(t)
  const attempts = [
    {},
    { authorization: 'Bearer not-a-known-token-0000000' },
    { authorization: `Bearer ${TOKENS.ingest.slice(0, -1)}` },
    { authorization: 'Basic dXNlcjpwYXNz' },
    { authorization: 'Bearer' }
  ]
  const answers = []
  for (const headers of attempts) {
    const res = await app.inject({ method: 'GET', url: `${ALERT_URL}/abcd1234`, headers })
    const { requestId, ...rest } = assertError(t, res, 401, 'AuthenticationError')
    t.type(requestId, 'string')
    answers.push({ body: rest, challenge: res.headers['www-authenticate'], length: res.body.length - requestId.length })
  }
  for (const answer of answers.slice(1)) t.same(answer, answers[0], 'indistinguishable from a missing token')
})

t.test('what the HTTP parser refuses still gets the envelope', async (t) => {
  const { app } = await build(t, { env: { MAX_HEADER_BYTES: '4096' } })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as AddressInfo

  async function raw (request: string): Promise<{ status: number, headers: string, body: string }> {
    const socket = connect(port, '127.0.0.1')
    await once(socket, 'connect')
    socket.write(request)
    const chunks: Buffer[] = []
    socket.on('data', (c: Buffer) => chunks.push(c))
    await once(socket, 'close')
    const text = Buffer.concat(chunks).toString()
    const [head = '', body = ''] = text.split('\r\n\r\n')
    return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]), headers: head.toLowerCase(), body }
  }

  t.test('headers over MAX_HEADER_BYTES: 431', async (t) => {
    const res = await raw(`GET /health HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(8000)}\r\n\r\n`)
    t.equal(res.status, 431)
    t.match(res.headers, /content-type: application\/json/)
    t.match(res.headers, /x-content-type-options: nosniff/)
    t.match(JSON.parse(res.body), { success: false, error: { type: 'RequestValidationError', message: 'Request headers are too large', requestId: String } })
    assertNoLeak(t, res.body)
  })

  t.test('a malformed request line: 400', async (t) => {
    const res = await raw('GET /health HTTP/1.1 extra\r\nhost: x\r\n\r\n')
    t.equal(res.status, 400)
    t.match(JSON.parse(res.body), { success: false, error: { type: 'RequestValidationError', message: 'Request is malformed', requestId: String } })
    assertNoLeak(t, res.body)
  })

  t.test('headers under the limit are served', async (t) => {
    const res = await raw(`GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\nx-small: ${'a'.repeat(1000)}\r\n\r\n`)
    t.equal(res.status, 200)
  })
})
