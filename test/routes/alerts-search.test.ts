import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { request } from 'node:http'
import type { AddressInfo } from 'node:net'
import { build, BEARER } from '../helpers/build.js'
import { assertNoLeak } from '../helpers/leaks.js'

const T0 = Date.UTC(2017, 0, 15, 23, 10)

t.test('GET /alert?start&end over HTTP', async (t) => {
  const { app, threatstack } = await build(t)
  const post = async (id: string, createdAt: number): Promise<void> => {
    threatstack.setAlert(id, { id, created_at: createdAt, title: `full ${id}` })
    const res = await app.inject({ method: 'POST', url: '/api/v1/s3/alert', headers: BEARER.ingest, payload: { id, created_at: String(createdAt) } })
    t.equal(res.statusCode, 200)
  }
  await post('search-a1', T0 + 1)
  await post('search-a2', T0 + 120_000)
  await post('search-a3', T0 + 2_400_000)

  t.test('answers the alerts of the range, paged, under both prefixes', async (t) => {
    for (const prefix of ['/api/v1/s3', '/threatstack-to-s3/api/v1/s3']) {
      const first = await app.inject({ method: 'GET', url: `${prefix}/alert?start=2017-01-15T23:00:00Z&end=2017-01-16&limit=1`, headers: BEARER.read })
      t.equal(first.statusCode, 200)
      const body = first.json()
      t.same(body.alerts, [{ id: 'search-a1', created_at: T0 + 1, title: 'full search-a1' }])
      t.same(body.missing, [])
      t.type(body.nextCursor, 'string')
      const second = await app.inject({
        method: 'GET',
        url: `${prefix}/alert?start=2017-01-15T23:00:00Z&end=2017-01-16&limit=1&cursor=${body.nextCursor as string}`,
        headers: BEARER.read
      })
      t.same(second.json().alerts.map((a: { id: string }) => a.id), ['search-a2'])
      const third = await app.inject({
        method: 'GET',
        url: `${prefix}/alert?start=2017-01-15T23:00:00Z&end=2017-01-16&limit=1&cursor=${second.json().nextCursor as string}`,
        headers: BEARER.read
      })
      t.same(third.json(), { success: true, alerts: [{ id: 'search-a3', created_at: T0 + 2_400_000, title: 'full search-a3' }], nextCursor: null, missing: [] })
    }
  })

  t.test('an alert inside the range is found whatever created_at its full alert states', async (t) => {
    // Away from the other ranges. The full alert of b2 gives created_at in seconds, another
    // minute altogether: the webhook key decides.
    const TB = Date.UTC(2017, 0, 20, 0, 10)
    await post('search-b1', TB)
    threatstack.setAlert('search-b2', { id: 'search-b2', created_at: Math.floor((TB + 60_000) / 1000), title: 'full search-b2' })
    const res = await app.inject({ method: 'POST', url: '/api/v1/s3/alert', headers: BEARER.ingest, payload: { id: 'search-b2', created_at: String(TB + 60_000) } })
    t.equal(res.statusCode, 200)
    await post('search-b3', TB + 120_000)
    const found = await app.inject({ method: 'GET', url: '/api/v1/s3/alert?start=2017-01-20T00:10:00Z&end=2017-01-20T00:12:01Z', headers: BEARER.read })
    t.same(found.json().alerts.map((a: { id: string }) => a.id), ['search-b1', 'search-b2', 'search-b3'])
    for (const limit of [1, 2]) {
      const ids: string[] = []
      let cursor: string | null = null
      for (let i = 0; i < 5; i++) {
        const page: { alerts: Array<{ id: string }>, nextCursor: string | null } = (await app.inject({
          method: 'GET',
          url: `/api/v1/s3/alert?start=2017-01-20T00:10:00Z&end=2017-01-20T00:12:01Z&limit=${limit}${cursor === null ? '' : `&cursor=${cursor}`}`,
          headers: BEARER.read
        })).json()
        ids.push(...page.alerts.map((a) => a.id))
        cursor = page.nextCursor
        if (cursor === null) break
      }
      t.same(ids, ['search-b1', 'search-b2', 'search-b3'], `paged by ${limit}: no repeat, no skip`)
    }
  })

  t.test('default limit and an offset in start', async (t) => {
    const res = await app.inject({ method: 'GET', url: '/api/v1/s3/alert?start=2017-01-16T01:10:00%2B02:00&end=2017-01-17', headers: BEARER.read })
    t.equal(res.statusCode, 200)
    t.same(res.json().alerts.map((a: { id: string }) => a.id), ['search-a1', 'search-a2', 'search-a3'], 'start is 23:10:00Z: a1 (23:10:00.001) is in')
  })

  t.test('bad dates are 400 DateParseError saying which and why', async (t) => {
    const cases: Array<[string, RegExp]> = [
      ['end=2017-01-16', /start/],
      ['start=2017-01-15', /end/],
      ['', /start/],
      ['start=yesterday&end=2017-01-16', /start is not/],
      ['start=2017-01-15&end=2017-02-30', /end is not/],
      ['start=2017-01-16&end=2017-01-15', /start must be before end/],
      [`start=${'9'.repeat(100)}&end=2017-01-15`, /start/]
    ]
    for (const [query, message] of cases) {
      const res = await app.inject({ method: 'GET', url: `/api/v1/s3/alert?${query}`, headers: BEARER.read })
      t.equal(res.statusCode, 400, query)
      t.equal(res.json().error.type, 'DateParseError', query)
      t.match(JSON.stringify(res.json().error), message, query)
      assertNoLeak(t, res.body)
    }
  })

  t.test('bad limit or cursor is 400 RequestValidationError, never a 500', async (t) => {
    const forged = Buffer.from(JSON.stringify({ v: 1, s: 0, e: 1, m: 0, t: 0, id: 'abcd' })).toString('base64url')
    for (const extra of ['limit=0', 'limit=1001', 'limit=ten', 'limit=1.5', 'cursor=%%%', 'cursor=abc', `cursor=${forged}`, `cursor=${'A'.repeat(2000)}`]) {
      const res = await app.inject({ method: 'GET', url: `/api/v1/s3/alert?start=2017-01-15&end=2017-01-16&${extra}`, headers: BEARER.read })
      t.equal(res.statusCode, 400, extra)
      t.equal(res.json().error.type, 'RequestValidationError', extra)
      assertNoLeak(t, res.body)
    }
  })

  t.test('needs a read token', async (t) => {
    const none = await app.inject({ method: 'GET', url: '/api/v1/s3/alert?start=2017-01-15&end=2017-01-16' })
    t.equal(none.statusCode, 401)
    const ingest = await app.inject({ method: 'GET', url: '/api/v1/s3/alert?start=2017-01-15&end=2017-01-16', headers: BEARER.ingest })
    t.equal(ingest.statusCode, 403)
  })

  t.test('S3 down: 502 S3ClientError, nothing partial', async (t) => {
    const { app, s3 } = await build(t)
    await s3.close()
    const res = await app.inject({ method: 'GET', url: '/api/v1/s3/alert?start=2017-01-15&end=2017-01-16', headers: BEARER.read })
    t.equal(res.statusCode, 502)
    t.equal(res.json().error.type, 'S3ClientError')
    assertNoLeak(t, res.body)
  })
})

t.test('S3 failing after the listing succeeded, on the full alerts or the records: 502, never a partial page', async (t) => {
  const { app, s3proxy } = await build(t, { s3Proxy: true })
  // Alerts in an inner minute and in the boundary minutes. Their index entries fail to be
  // written (the webhook still succeeds), so the search must read their records.
  await s3proxy!.failWith('internal', { match: /^PUT \/[^/]+\/index\// })
  for (const [id, at] of [['mid-0001', T0 + 1], ['mid-0002', T0 + 600_000], ['mid-0003', T0 + 1_200_000]] as const) {
    const res = await app.inject({ method: 'POST', url: '/api/v1/s3/alert', headers: BEARER.ingest, payload: { id, created_at: String(at) } })
    t.equal(res.statusCode, 200, 'an index entry that cannot be written does not fail the webhook')
  }
  await s3proxy!.heal()
  const url = '/api/v1/s3/alert?start=2017-01-15T23:10:00Z&end=2017-01-15T23:30:00.500Z'
  t.equal((await app.inject({ method: 'GET', url, headers: BEARER.read })).json().alerts.length, 3, 'all three found when S3 is well')

  for (const [what, match] of [['a full alert', /^GET \/[^/]+\/alerts\//], ['a webhook record', /^GET \/[^/]+\/webhooks\//]] as const) {
    const listed = s3proxy!.requests.length
    await s3proxy!.failWith('internal', { times: 1, match })
    const res = await app.inject({ method: 'GET', url, headers: BEARER.read })
    t.equal(res.statusCode, 502, `${what} failing`)
    t.equal(res.json().error.type, 'S3ClientError')
    t.notOk('alerts' in res.json(), 'no alerts in the answer')
    t.ok(s3proxy!.requests.slice(listed).some((r) => r.method === 'GET' && r.path.includes('list-type=2') && r.fault === undefined), 'the listing itself succeeded')
    assertNoLeak(t, res.body)
    await s3proxy!.heal()
  }
})

t.test('a search reads at most SEARCH_CONCURRENCY full alerts at once', async (t) => {
  const { app, s3proxy } = await build(t, { s3Proxy: true, env: { SEARCH_CONCURRENCY: '2', S3_TIMEOUT_MS: '10000' } })
  for (let i = 0; i < 6; i++) {
    const res = await app.inject({ method: 'POST', url: '/api/v1/s3/alert', headers: BEARER.ingest, payload: { id: `bound-00${i}`, created_at: String(T0 + 120_000 + i) } })
    t.equal(res.statusCode, 200)
  }
  const heldAlerts = (): number => s3proxy!.requests.filter((r) => r.fault === 'hold').length
  await s3proxy!.failWith('hold', { match: /^GET \/[^/]+\/alerts\// })
  const search = app.inject({ method: 'GET', url: '/api/v1/s3/alert?start=2017-01-15T23:00:00Z&end=2017-01-16', headers: BEARER.read })
  for (let i = 0; i < 250 && heldAlerts() < 2; i++) await sleep(20)
  t.equal(heldAlerts(), 2, 'two reads under way')
  // With every read held, an unbounded search would have all six in flight by now.
  await sleep(200)
  t.equal(heldAlerts(), 2, 'no third while two are held')
  await s3proxy!.heal()
  const res = await search
  t.equal(res.statusCode, 200)
  t.same(res.json().alerts.map((a: { id: string }) => a.id), Array.from({ length: 6 }, (_, i) => `bound-00${i}`))
})

t.test('a search whose client hangs up stops its S3 work', async (t) => {
  const { app, s3proxy, logs } = await build(t, { s3Proxy: true, env: { SEARCH_CONCURRENCY: '2', S3_TIMEOUT_MS: '10000' } })
  for (let i = 0; i < 6; i++) {
    const res = await app.inject({ method: 'POST', url: '/api/v1/s3/alert', headers: BEARER.ingest, payload: { id: `gone-00${i}`, created_at: String(T0 + 180_000 + i) } })
    t.equal(res.statusCode, 200)
  }
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  const alertReads = (): number => s3proxy!.requests.filter((r) => r.method === 'GET' && /^\/[^/]+\/alerts\//.test(r.path)).length
  await s3proxy!.failWith('hold', { match: /^GET \/[^/]+\/alerts\// })
  const client = request({ host: '127.0.0.1', port, path: '/api/v1/s3/alert?start=2017-01-15T23:00:00Z&end=2017-01-16', headers: BEARER.read })
  client.on('error', () => {})
  client.end()
  for (let i = 0; i < 250 && alertReads() < 2; i++) await sleep(20)
  t.equal(alertReads(), 2, 'two reads under way')
  client.destroy()
  // Once the held reads are let go, a search still running would read the other four.
  for (let i = 0; i < 50 && logs.every((l) => l.msg !== 'request completed'); i++) await sleep(20)
  await s3proxy!.heal()
  await sleep(300)
  t.equal(alertReads(), 2, 'no read started after the client left')
  t.notOk(logs.some((l) => (l.level as number) >= 50), 'a client leaving is no error of the service')
})

t.test('searches holding every read slot leave ingest its own', async (t) => {
  const { app, s3proxy } = await build(t, {
    s3Proxy: true,
    env: { S3_MAX_SOCKETS: '2', S3_READ_MAX_SOCKETS: '2', SEARCH_CONCURRENCY: '2', S3_TIMEOUT_MS: '10000' }
  })
  for (let i = 0; i < 4; i++) {
    const res = await app.inject({ method: 'POST', url: '/api/v1/s3/alert', headers: BEARER.ingest, payload: { id: `busy-00${i}`, created_at: String(T0 + 240_000 + i) } })
    t.equal(res.statusCode, 200)
  }
  const held = (): number => s3proxy!.requests.filter((r) => r.fault === 'hold').length
  await s3proxy!.failWith('hold', { match: /^GET \/[^/]+\/alerts\// })
  const searches = Array.from({ length: 3 }, async () =>
    app.inject({ method: 'GET', url: '/api/v1/s3/alert?start=2017-01-15T23:00:00Z&end=2017-01-16', headers: BEARER.read }))
  for (let i = 0; i < 250 && held() < 2; i++) await sleep(20)
  t.equal(held(), 2, 'both read slots held by searches')
  // Bounded: with one budget for both, the webhook's PUTs would wait behind the held reads.
  const webhook = app.inject({ method: 'POST', url: '/api/v1/s3/alert', headers: BEARER.ingest, payload: { id: 'busy-new1', created_at: String(T0 + 300_000) } })
  const first = await Promise.race([webhook, sleep(8000, 'still waiting' as const)])
  t.not(first, 'still waiting', 'the webhook is answered while the searches wait')
  if (first !== 'still waiting') t.equal(first.statusCode, 200)
  t.equal(held(), 2, 'the searches are still held')
  await s3proxy!.heal()
  for (const res of await Promise.all(searches)) t.equal(res.statusCode, 200)
  await webhook
})
