import t from 'tap'
import { loadConfig } from '../../config.js'
import { backfillHour } from '../../services/backfill.js'
import { closeThreatStackClient, createThreatStackClient } from '../../services/threatstack.js'
import { ledgerKey } from '../../services/ledger.js'
import { putJson } from '../../services/storage.js'
import { BEARER, build, SECRETS, TOKENS } from '../helpers/build.js'
import { assertNoLeak } from '../helpers/leaks.js'

const HOUR = Date.UTC(2026, 10, 30, 10)
const URLS = ['/api/v1/s3/coverage', '/threatstack-to-s3/api/v1/s3/coverage']

t.test('GET /coverage: per hour, the ledger; hours not checked say so; under both prefixes', async (t) => {
  const { app, threatstack, env } = await build(t)
  const raised = threatstack.raiseAlerts({ count: 7, fromMs: HOUR, untilMs: HOUR + 3_600_000, seed: 21 })
  const client = createThreatStackClient(loadConfig(env).threatstack)
  t.teardown(async () => closeThreatStackClient(client))
  await backfillHour({ store: app.store, threatstack: client, concurrency: 2 }, HOUR, { now: () => Date.UTC(2026, 10, 30, 11, 20) })

  for (const url of URLS) {
    const res = await app.inject({ method: 'GET', url: `${url}?start=2026-11-30T09:30:00Z&end=2026-11-30T12:00:00Z`, headers: BEARER.read })
    t.equal(res.statusCode, 200, url)
    t.match(res.headers['content-type'], /^application\/json/)
    const body = res.json()
    t.same(body, {
      success: true,
      hours: [
        { hour: '2026-11-30T09:00:00.000Z', checked: false, checkedAt: null, complete: null, threatstack: null, archived: null, viaWebhook: null, viaBackfill: null, missing: [], pending: [], unknown: [] },
        { hour: '2026-11-30T10:00:00.000Z', checked: true, checkedAt: '2026-11-30T11:20:00.000Z', complete: true, threatstack: 7, archived: 7, viaWebhook: 0, viaBackfill: 7, missing: [], pending: [], unknown: [] },
        { hour: '2026-11-30T11:00:00.000Z', checked: false, checkedAt: null, complete: null, threatstack: null, archived: null, viaWebhook: null, viaBackfill: null, missing: [], pending: [], unknown: [] }
      ],
      nextCursor: null
    })
  }
  t.equal(raised.length, 7)
})

t.test('GET /coverage pages by hours with a cursor valid only for its range', async (t) => {
  const { app } = await build(t)
  const url = `${URLS[0]}?start=2026-11-30&end=2026-12-01`
  const pages: string[][] = []
  let cursor: string | null = null
  for (let i = 0; i < 10; i++) {
    const res = await app.inject({ method: 'GET', url: `${url}&limit=10${cursor === null ? '' : `&cursor=${cursor}`}`, headers: BEARER.read })
    t.equal(res.statusCode, 200)
    const body = res.json() as { hours: Array<{ hour: string }>, nextCursor: string | null }
    pages.push(body.hours.map((h) => h.hour))
    cursor = body.nextCursor
    if (cursor === null) break
  }
  t.same(pages.map((p) => p.length), [10, 10, 4], 'a day is 24 hours')
  t.equal(pages.flat()[23], '2026-11-30T23:00:00.000Z')
  t.equal(new Set(pages.flat()).size, 24)

  const first = (await app.inject({ method: 'GET', url: `${url}&limit=10`, headers: BEARER.read })).json() as { nextCursor: string }
  const other = await app.inject({ method: 'GET', url: `${URLS[0]}?start=2026-11-29&end=2026-12-01&cursor=${first.nextCursor}`, headers: BEARER.read })
  t.equal(other.statusCode, 400)
  t.match(other.json(), { success: false, error: { type: 'RequestValidationError', requestId: String } })
})

t.test('GET /coverage: validated like search, read token only, nothing leaks', async (t) => {
  const { app, store } = await build(t).then((b) => ({ ...b, store: b.app.store }))
  const cases: Array<[string, Record<string, string>, number, string]> = [
    ['?start=2026-11-30&end=2026-12-01', {}, 401, 'AuthenticationError'],
    ['?start=2026-11-30&end=2026-12-01', BEARER.ingest, 403, 'AuthorizationError'],
    ['?start=2026-12-01&end=2026-11-30', BEARER.read, 400, 'DateParseError'],
    ['?start=yesterday&end=2026-11-30', BEARER.read, 400, 'DateParseError'],
    ['?end=2026-11-30', BEARER.read, 400, 'DateParseError'],
    ['?start=2026-11-30&end=2026-12-01&limit=0', BEARER.read, 400, 'RequestValidationError'],
    ['?start=2026-11-30&end=2026-12-01&limit=745', BEARER.read, 400, 'RequestValidationError'],
    ['?start=2026-11-30&end=2026-12-01&cursor=not!base64', BEARER.read, 400, 'RequestValidationError'],
    ['?start=2026-11-30&end=2026-12-01&cursor=eyJ2IjoxfQ', BEARER.read, 400, 'RequestValidationError']
  ]
  for (const [query, headers, status, type] of cases) {
    const res = await app.inject({ method: 'GET', url: `${URLS[0]}${query}`, headers })
    t.equal(res.statusCode, status, query)
    t.match(res.json(), { success: false, error: { type, requestId: String } }, query)
    assertNoLeak(t, res.body)
  }
  // A stored ledger that is not a ledger is a failure of the store, said without detail.
  await putJson(store, ledgerKey(store.prefix, HOUR), { hello: 'world' })
  const broken = await app.inject({ method: 'GET', url: `${URLS[0]}?start=2026-11-30T10:00:00Z&end=2026-11-30T11:00:00Z`, headers: BEARER.read })
  t.equal(broken.statusCode, 502)
  t.match(broken.json(), { error: { type: 'S3ClientError', message: 'Failure to communicate with S3' } })
  assertNoLeak(t, broken.body, [SECRETS.bucket, TOKENS.read, 'ledger/'])
})

t.test('GET /coverage when S3 is down: 502 S3ClientError, no leak', async (t) => {
  const { app, s3 } = await build(t)
  await s3.close()
  const res = await app.inject({ method: 'GET', url: `${URLS[0]}?start=2026-11-30T10:00:00Z&end=2026-11-30T11:00:00Z`, headers: BEARER.read })
  t.equal(res.statusCode, 502)
  t.match(res.json(), { success: false, error: { type: 'S3ClientError' } })
  assertNoLeak(t, res.body)
})

t.test('the completeness metrics are exposed', async (t) => {
  const { app } = await build(t)
  const res = await app.inject({ method: 'GET', url: '/metrics', headers: BEARER.read })
  for (const name of ['alerts_received_total', 'alerts_pending', 'alerts_backfilled_total', 'alerts_missing', 'sweep_duration_seconds_count']) {
    t.match(res.body, new RegExp(`^threatstack_to_s3_${name} 0$`, 'm'), name)
  }
})
