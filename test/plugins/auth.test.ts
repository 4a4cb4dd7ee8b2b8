import t from 'tap'
import { BEARER, SECRETS, TOKENS, build } from '../helpers/build.js'
import { ALERT_URL, CREATED_AT, WEBHOOK_MINUTE, assertError, postAlerts } from '../helpers/requests.js'
import { redactUrl } from '../../app.js'
import { scopesOf } from '../../plugins/auth.js'
import { createHash } from 'node:crypto'

type Log = Record<string, unknown> & { level?: number, msg?: string, req?: { url?: string } }

const body = { id: 'authtest', created_at: CREATED_AT }

t.test('tokens are required and scoped', async (t) => {
  const built = await build(t)
  const { app } = built
  t.equal((await postAlerts(app, body)).statusCode, 200, 'archive one alert to read back')

  t.test('no token: 401 AuthenticationError with WWW-Authenticate: Bearer', async (t) => {
    for (const [method, url] of [['POST', ALERT_URL], ['GET', `${ALERT_URL}/authtest`]] as const) {
      const res = await app.inject({ method, url, ...(method === 'POST' && { payload: body }) })
      const error = assertError(t, res, 401, 'AuthenticationError')
      t.equal(error.message, 'A valid bearer token is required')
      t.match(res.headers['www-authenticate'], /^Bearer/, `${method} www-authenticate`)
    }
  })

  t.test('an unknown token gets exactly the answer of a missing one', async (t) => {
    const missing = await app.inject({ method: 'GET', url: `${ALERT_URL}/authtest` })
    for (const authorization of [
      'Bearer not-a-known-token-at-all',
      `Bearer ${TOKENS.read}x`,
      `Bearer ${TOKENS.read.slice(0, -1)}`,
      'Basic xyz',
      `Basic ${Buffer.from(`user:${TOKENS.read}`).toString('base64')}`,
      'Bearer',
      'Bearer ',
      `${TOKENS.read}`,
      `Bearer ${TOKENS.read} extra`
    ]) {
      const res = await app.inject({ method: 'GET', url: `${ALERT_URL}/authtest`, headers: { authorization } })
      const error = assertError(t, res, 401, 'AuthenticationError')
      const { requestId: _a, ...shape } = error
      const { requestId: _b, ...missingShape } = (missing.json() as { error: typeof error }).error
      t.same(shape, missingShape, `same body as missing for ${authorization.slice(0, 12)}`)
      t.equal(res.headers['www-authenticate'], missing.headers['www-authenticate'])
    }
  })

  t.test('the bearer scheme is case-insensitive', async (t) => {
    const res = await app.inject({ method: 'GET', url: `${ALERT_URL}/authtest`, headers: { authorization: `bearer ${TOKENS.read}` } })
    t.equal(res.statusCode, 200)
  })

  t.test('a read token on ingest is 403 AuthorizationError', async (t) => {
    const res = await postAlerts(app, { id: 'readpost', created_at: CREATED_AT }, { headers: BEARER.read })
    const error = assertError(t, res, 403, 'AuthorizationError')
    t.equal(error.message, 'This token is not allowed to use this route')
    t.equal(await built.readObject(`${WEBHOOK_MINUTE}/readpost`), undefined, 'nothing archived')
  })

  t.test('a read token in ?token= on ingest is 403', async (t) => {
    const res = await app.inject({ method: 'POST', url: `${ALERT_URL}?token=${TOKENS.read}`, payload: body })
    assertError(t, res, 403, 'AuthorizationError')
  })

  t.test('an ingest token on a read is 403 AuthorizationError', async (t) => {
    const res = await app.inject({ method: 'GET', url: `${ALERT_URL}/authtest`, headers: BEARER.ingest })
    assertError(t, res, 403, 'AuthorizationError')
  })

  t.test('?token= on a GET is ignored: 401', async (t) => {
    for (const token of [TOKENS.read, TOKENS.ingest]) {
      const res = await app.inject({ method: 'GET', url: `${ALERT_URL}/authtest?token=${token}` })
      assertError(t, res, 401, 'AuthenticationError')
      t.match(res.headers['www-authenticate'], /^Bearer/)
    }
  })

  t.test('an unknown ?token= on ingest is 401', async (t) => {
    const res = await app.inject({ method: 'POST', url: `${ALERT_URL}?token=nope-nope-nope-nope`, payload: body })
    assertError(t, res, 401, 'AuthenticationError')
  })

  t.test('the Authorization header wins over ?token=', async (t) => {
    const res = await app.inject({
      method: 'POST',
      url: `${ALERT_URL}?token=${TOKENS.ingest}`,
      headers: { authorization: 'Bearer not-a-known-token-at-all' },
      payload: body
    })
    assertError(t, res, 401, 'AuthenticationError')
  })

  t.test('the token is checked before the body', async (t) => {
    const res = await app.inject({ method: 'POST', url: ALERT_URL, payload: '<not json>', headers: { 'content-type': 'application/xml' } })
    assertError(t, res, 401, 'AuthenticationError')
  })

  t.test('status and health need no token', async (t) => {
    t.equal((await app.inject({ method: 'GET', url: '/health' })).statusCode, 200)
    t.equal((await app.inject({ method: 'GET', url: '/api/v1/s3/status' })).statusCode, 200)
  })
})

t.test('a token listed in both INGEST_TOKENS and READ_TOKENS works for both', async (t) => {
  const both = 'both-scopes-token-0000001'
  const { app } = await build(t, {
    env: { INGEST_TOKENS: `${TOKENS.ingest}, ${both}`, READ_TOKENS: `${both},${TOKENS.read}` }
  })
  const headers = { authorization: `Bearer ${both}` }
  const post = await app.inject({ method: 'POST', url: ALERT_URL, headers, payload: body })
  t.equal(post.statusCode, 200)
  const get = await app.inject({ method: 'GET', url: `${ALERT_URL}/authtest`, headers })
  t.equal(get.statusCode, 200)
  t.match(get.json(), { success: true, alert: { id: 'authtest' } })
  t.equal((await app.inject({ method: 'GET', url: `${ALERT_URL}/authtest`, headers: BEARER.read })).statusCode, 200, 'others still work')
  t.equal((await app.inject({ method: 'POST', url: ALERT_URL, headers: BEARER.ingest, payload: body })).statusCode, 200)
})

t.test('several tokens per scope', async (t) => {
  const second = 'second-ingest-token-00001'
  const { app } = await build(t, { env: { INGEST_TOKENS: `${TOKENS.ingest},${second}` } })
  t.equal((await postAlerts(app, body, { headers: { authorization: `Bearer ${second}` } })).statusCode, 200)
  t.equal((await postAlerts(app, body)).statusCode, 200)
})

t.test('AUTH_MODE=none: no token needed, and a warning is logged', async (t) => {
  const built = await build(t, { env: { AUTH_MODE: 'none', INGEST_TOKENS: undefined, READ_TOKENS: undefined } })
  const post = await built.app.inject({ method: 'POST', url: ALERT_URL, payload: body })
  t.equal(post.statusCode, 200)
  t.same(post.json(), { success: true, archived: ['authtest'], pending: [] })
  const get = await built.app.inject({ method: 'GET', url: `${ALERT_URL}/authtest` })
  t.equal(get.statusCode, 200)
  const warnings = (built.logs as Log[]).filter((l) => l.level === 40 && /AUTH_MODE=none/.test(String(l.msg)))
  t.equal(warnings.length, 1, 'one warning line')
})

t.test('tokens never appear in the logs', async (t) => {
  const built = await build(t, { logLevel: 'trace' })
  const { app } = built
  await postAlerts(app, body)
  await app.inject({ method: 'POST', url: `${ALERT_URL}?token=${TOKENS.ingest}`, payload: body })
  await app.inject({ method: 'POST', url: `${ALERT_URL}?a=1&token=${TOKENS.ingest}&b=2`, payload: body })
  await app.inject({ method: 'POST', url: `${ALERT_URL}?%74oken=${TOKENS.ingest}`, payload: body })
  await app.inject({ method: 'POST', url: `${ALERT_URL}?token=${TOKENS.read}`, payload: body })
  await app.inject({ method: 'GET', url: `${ALERT_URL}/authtest`, headers: BEARER.read })
  await app.inject({ method: 'GET', url: `${ALERT_URL}/authtest?token=${TOKENS.read}` })
  await app.inject({ method: 'GET', url: `${ALERT_URL}/authtest`, headers: BEARER.ingest })
  await app.inject({ method: 'GET', url: `/nowhere?token=${TOKENS.read}`, headers: BEARER.read })
  await app.inject({ method: 'POST', url: `${ALERT_URL}?token=${TOKENS.ingest}`, payload: '{bad json', headers: { 'content-type': 'application/json' } })
  await built.threatstack.failWith('json-500', 1)
  await app.inject({ method: 'POST', url: `${ALERT_URL}?token=${TOKENS.ingest}`, payload: body })

  const text = JSON.stringify(built.logs)
  for (const [name, token] of Object.entries(TOKENS)) t.notOk(text.includes(token), `no ${name} token in the logs`)
  t.notOk(text.includes(SECRETS.apiKey), 'no API key in the logs')
  t.notMatch(text, /Bearer /, 'no Authorization header in the logs')
  const urls = (built.logs as Log[]).map((l) => l.req?.url).filter((u): u is string => u !== undefined)
  t.ok(urls.includes(`${ALERT_URL}?[redacted]`), 'a webhook is logged without its query')
  t.ok(urls.includes(`${ALERT_URL}/authtest?token=[redacted]`), 'a read is logged with token=[redacted]')
})

t.test('a token in the query of a malformed URL never reaches the logs', async (t) => {
  const built = await build(t, { logLevel: 'trace' })
  const res = await built.app.inject({ method: 'POST', url: `${ALERT_URL}/%E0%A4%A?token=${TOKENS.ingest}`, payload: body })
  t.equal(res.statusCode, 400)
  t.notOk(res.body.includes(TOKENS.ingest), 'not in the body')
  const leaking = (built.logs as Log[]).filter((l) => JSON.stringify(l).includes(TOKENS.ingest))
  t.same(leaking, [], 'no log line holds the token')
})

t.test('redactUrl', async (t) => {
  const cases: Array<[string, string]> = [
    ['/api/v1/s3/alert', '/api/v1/s3/alert'],
    ['/a?', '/a?'],
    ['/a?token=secret', '/a?token=[redacted]'],
    ['/a?x=1&token=secret&y=2', '/a?x=1&token=[redacted]&y=2'],
    ['/a?TOKEN=secret', '/a?TOKEN=[redacted]'],
    ['/a?%74oken=secret', '/a?%74oken=[redacted]'],
    ['/a?%74%6F%6B%65%6E=secret', '/a?%74%6F%6B%65%6E=[redacted]'],
    ['/a?token', '/a?token=[redacted]'],
    ['/a?token=', '/a?token=[redacted]'],
    ['/a?token=a=b', '/a?token=[redacted]'],
    ['/a?token=one&token=two', '/a?token=[redacted]&token=[redacted]'],
    ['/a?tokens=s&mytoken=s&token%00=s&token[]=s&%2574oken=s', '/a?tokens=[redacted]&mytoken=[redacted]&token%00=[redacted]&token[]=[redacted]&%2574oken=[redacted]'],
    ['/a?x=1;token=s#token=s', '/a?x=1;token=[redacted]#token=[redacted]'],
    ['/a;token=s', '/a;token=[redacted]'],
    ['/a?x=token', '/a?x=token'],
    ['/a?%E0%A4%A=1&token=s', '/a?%E0%A4%A=1&token=[redacted]']
  ]
  for (const [input, output] of cases) t.equal(redactUrl(input), output, input)
  for (const method of ['POST', 'PUT', 'DELETE', 'OPTIONS', 'post']) {
    t.equal(redactUrl('/api/v1/s3/alert?x=1&token=s', method), '/api/v1/s3/alert?[redacted]', `${method}: no query at all`)
    t.equal(redactUrl('/api/v1/s3/alert;token=s', method), '/api/v1/s3/alert?[redacted]')
  }
  t.equal(redactUrl('/api/v1/s3/alert', 'POST'), '/api/v1/s3/alert')
  t.notMatch(redactUrl(`/a?%74oken=${TOKENS.ingest}`), new RegExp(TOKENS.ingest))
})

t.test('scopesOf compares against every known token', async (t) => {
  const digest = (s: string): Buffer => createHash('sha256').update(s).digest()
  const known = [
    { digest: digest('token-a-0000000000'), scope: 'ingest' as const },
    { digest: digest('token-b-0000000000'), scope: 'read' as const },
    { digest: digest('token-a-0000000000'), scope: 'read' as const }
  ]
  t.same([...scopesOf('token-a-0000000000', known)].sort(), ['ingest', 'read'])
  t.same([...scopesOf('token-b-0000000000', known)], ['read'])
  t.same([...scopesOf('token-c-0000000000', known)], [])
  t.same([...scopesOf('', known)], [])
})

t.test('INGEST_ALLOWED_CIDRS: webhooks only from the sender\'s networks, judged before the token', async (t) => {
  const built = await build(t, { env: { INGEST_ALLOWED_CIDRS: '192.0.2.0/24, 2001:db8::/32' } })
  const { app } = built
  const post = async (id: string, remoteAddress: string, headers: Record<string, string> = BEARER.ingest) =>
    await app.inject({ method: 'POST', url: ALERT_URL, headers, payload: { id, created_at: CREATED_AT }, remoteAddress })

  const outside = await post('cidrout1', '198.51.100.1')
  const error = assertError(t, outside, 403, 'AuthorizationError')
  t.equal(error.message, 'This address is not allowed to post webhooks')
  t.equal(await built.readObject(`${WEBHOOK_MINUTE}/cidrout1`), undefined, 'nothing archived')
  t.notMatch(outside.body, '198.51.100.1', 'the address is not echoed')
  // Outside the networks a token is never looked at: no token and a wrong one answer the same.
  assertError(t, await post('cidrout2', '127.0.0.1', {}), 403, 'AuthorizationError')
  assertError(t, await post('cidrout3', '198.51.100.1', { authorization: 'Bearer not-a-known-token-at-all' }), 403, 'AuthorizationError')

  for (const [id, address] of [['cidrin01', '192.0.2.7'], ['cidrin02', '::ffff:192.0.2.9'], ['cidrin03', '2001:db8::5']] as const) {
    t.equal((await post(id, address)).statusCode, 200, `${address} is inside`)
    t.not(await built.readObject(`${WEBHOOK_MINUTE}/${id}`), undefined, `${id} archived`)
  }
  // Inside the networks the token still counts.
  assertError(t, await post('cidrin04', '192.0.2.7', { authorization: 'Bearer not-a-known-token-at-all' }), 401, 'AuthenticationError')
  // Reading is not posting: the read routes are not limited to the sender's networks.
  const read = await app.inject({ method: 'GET', url: `${ALERT_URL}/cidrin01`, headers: BEARER.read, remoteAddress: '198.51.100.1' })
  t.equal(read.statusCode, 200)
})

t.test('INGEST_ALLOWED_CIDRS behind a trusted proxy judges the client the proxy names', async (t) => {
  const { app } = await build(t, { env: { INGEST_ALLOWED_CIDRS: '192.0.2.0/24', TRUST_PROXY: '127.0.0.1' } })
  const post = async (id: string, forwardedFor: string) => await app.inject({
    method: 'POST',
    url: ALERT_URL,
    remoteAddress: '127.0.0.1',
    headers: { ...BEARER.ingest, 'x-forwarded-for': forwardedFor },
    payload: { id, created_at: CREATED_AT }
  })
  t.equal((await post('cidrprx1', '192.0.2.44')).statusCode, 200)
  assertError(t, await post('cidrprx2', '198.51.100.1'), 403, 'AuthorizationError')
  // A client cannot talk its way in by forging the header through a proxy that appends to it.
  assertError(t, await post('cidrprx3', '192.0.2.44, 198.51.100.1'), 403, 'AuthorizationError')
})

t.test('INGEST_ALLOWED_CIDRS holds with AUTH_MODE=none too', async (t) => {
  const { app } = await build(t, { env: { INGEST_ALLOWED_CIDRS: '192.0.2.0/24', AUTH_MODE: 'none' } })
  const post = async (id: string, remoteAddress: string) =>
    await app.inject({ method: 'POST', url: ALERT_URL, payload: { id, created_at: CREATED_AT }, remoteAddress })
  assertError(t, await post('cidrnon1', '198.51.100.1'), 403, 'AuthorizationError')
  t.equal((await post('cidrnon2', '192.0.2.1')).statusCode, 200)
})
