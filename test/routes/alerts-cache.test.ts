// GET /alert/:alert_id over the real local S3: archived alerts never change, so the reply is
// a strong ETag, long-lived private caching, and a 304 to a matching If-None-Match.
import t from 'tap'
import type { LightMyRequestResponse } from 'fastify'
import { createHash } from 'node:crypto'
import { BEARER, build } from '../helpers/build.js'
import { ALERT_URL, CREATED_AT, LEGACY_ALERT_URL, assertError, postAlerts } from '../helpers/requests.js'
import { alertKey } from '../../services/keys.js'

const CACHE_CONTROL = 'private, max-age=31536000, immutable'

t.test('an archived alert is served with a strong ETag, private long-lived caching, and 304 when unchanged', async (t) => {
  const { app, config, readObject } = await build(t)
  for (const id of ['cache0001', 'cache0002']) t.equal((await postAlerts(app, { id, created_at: CREATED_AT })).statusCode, 200)
  const get = async (id: string, headers: Record<string, string> = {}, url = ALERT_URL): Promise<LightMyRequestResponse> =>
    await app.inject({ method: 'GET', url: `${url}/${id}`, headers: { ...BEARER.read, ...headers } })

  const first = await get('cache0001')
  t.equal(first.statusCode, 200)
  const etag = String(first.headers.etag)
  t.match(etag, /^"[A-Za-z0-9_-]{43}"$/, 'a strong tag (no W/), sha256 in base64url')
  const stored = await readObject(alertKey(config.s3.prefix, 'cache0001'))
  t.ok(stored, 'the full alert is in S3')
  const storedAlert = JSON.parse(stored?.body ?? 'null') as unknown
  t.equal(etag, `"${createHash('sha256').update(JSON.stringify(storedAlert)).digest('base64url')}"`, 'the sha256 of the stored alert')
  t.equal(first.headers['cache-control'], CACHE_CONTROL)
  t.match(String(first.headers.vary), /authorization/i, 'the reply depends on the token')

  t.equal((await get('cache0001')).headers.etag, etag, 'the same alert, the same tag')
  t.equal((await get('cache0001', {}, LEGACY_ALERT_URL)).headers.etag, etag, 'under the legacy prefix too')
  t.not((await get('cache0002')).headers.etag, etag, 'another alert, another tag')

  for (const ifNoneMatch of [etag, `W/${etag}`, '*', `"other", ${etag}`]) {
    const res = await get('cache0001', { 'if-none-match': ifNoneMatch })
    t.equal(res.statusCode, 304, `If-None-Match: ${ifNoneMatch}`)
    t.equal(res.body, '', 'no body')
    t.equal(res.headers.etag, etag)
    t.equal(res.headers['cache-control'], CACHE_CONTROL)
    t.type(res.headers['x-request-id'], 'string')
    t.equal(res.headers['x-content-type-options'], 'nosniff')
  }
  const other = await get('cache0001', { 'if-none-match': '"another-tag"' })
  t.equal(other.statusCode, 200, 'a tag of something else: the alert')
  t.same(other.json(), first.json())
  const legacy304 = await get('cache0001', { 'if-none-match': etag }, LEGACY_ALERT_URL)
  t.equal(legacy304.statusCode, 304, 'the legacy prefix answers 304 as well')
})

t.test('what is not an archived alert is not cached, and a tag is no substitute for a token', async (t) => {
  const { app } = await build(t)
  t.equal((await postAlerts(app, { id: 'cache0003', created_at: CREATED_AT })).statusCode, 200)
  const etag = String((await app.inject({ method: 'GET', url: `${ALERT_URL}/cache0003`, headers: BEARER.read })).headers.etag)

  const missing = await app.inject({ method: 'GET', url: `${ALERT_URL}/missing01`, headers: { ...BEARER.read, 'if-none-match': '*' } })
  assertError(t, missing, 404, 'AlertNotFoundError')
  t.equal(missing.headers.etag, undefined, 'not yet archived: no tag')
  t.equal(missing.headers['cache-control'], undefined, 'and nothing that keeps the 404 around')

  const noToken = await app.inject({ method: 'GET', url: `${ALERT_URL}/cache0003`, headers: { 'if-none-match': etag } })
  assertError(t, noToken, 401, 'AuthenticationError')
  t.equal(noToken.headers.etag, undefined)

  const wrongScope = await app.inject({ method: 'GET', url: `${ALERT_URL}/cache0003`, headers: { ...BEARER.ingest, 'if-none-match': etag } })
  assertError(t, wrongScope, 403, 'AuthorizationError')
  t.equal(wrongScope.headers['cache-control'], undefined)
})
