// GET /alert?start&end with filters, over the app as deployed: each filter and their
// combinations on alerts archived through the webhook, validation per parameter as envelopes,
// cursors bound to their filters, the read budget counted at the S3 proxy, the typed client.
import t from 'tap'
import type { AddressInfo } from 'node:net'
import { build, BEARER, TOKENS } from '../helpers/build.js'
import { assertNoLeak } from '../helpers/leaks.js'
import { createArchiveClient } from '../../client/index.js'

const T0 = Date.UTC(2017, 0, 15, 23, 10)
const RANGE = 'start=2017-01-15T23:00:00Z&end=2017-01-16'

interface Reply { success: boolean, alerts: Array<{ id: string }>, nextCursor: string | null, missing: string[], partial?: boolean, scannedUntil?: string | null }

t.test('filters on GET /alert?start&end', async (t) => {
  const { app, threatstack, s3proxy } = await build(t, { s3Proxy: true })
  // As Threat Stack's two API versions give them: API v1 (snake_case, rule object), API v2 (camelCase).
  const fulls: Array<Record<string, unknown>> = [
    { id: 'filt-0001', created_at: T0 + 1, title: 'User login from new IP', severity: 1, source: 'host', server_or_region: 'web-1', rule: { id: 'rule-login', name: 'Login' } },
    { id: 'filt-0002', created_at: T0 + 60_000, title: 'File integrity change', severity: 2, source: 'host', server_or_region: 'web-2', rule: { id: 'rule-fim' } },
    { id: 'filt-0003', created_at: T0 + 120_000, title: 'Root LOGIN via console', severity: 3, dataSource: 'cloudtrail', hostname: 'us-east-1', ruleId: 'rule-login' },
    { id: 'filt-0004', created_at: T0 + 180_000, title: 'Port scan', severity: 1, source: 'host', server_or_region: 'web-1', ruleId: 'rule-scan' }
  ]
  for (const full of fulls) threatstack.setAlert(full.id as string, full)
  const posted = await app.inject({
    method: 'POST',
    url: '/api/v1/s3/alert',
    headers: BEARER.ingest,
    payload: { alerts: fulls.map((f) => ({ id: f.id, created_at: String(f.created_at), severity: String(f.severity) })) }
  })
  t.same(posted.json().archived, ['filt-0001', 'filt-0002', 'filt-0003', 'filt-0004'])
  const search = async (query: string): Promise<{ status: number, body: Reply, raw: string }> => {
    const res = await app.inject({ method: 'GET', url: `/api/v1/s3/alert?${RANGE}&${query}`, headers: BEARER.read })
    return { status: res.statusCode, body: res.json(), raw: res.body }
  }
  const idsOf = (reply: Reply): string[] => reply.alerts.map((a) => a.id)

  t.test('each filter, repeated severity and combinations', async (t) => {
    const cases: Array<[string, string[]]> = [
      ['severity=1', ['filt-0001', 'filt-0004']],
      ['severity=1&severity=3', ['filt-0001', 'filt-0003', 'filt-0004']],
      ['severity=3&severity=1&severity=3', ['filt-0001', 'filt-0003', 'filt-0004']],
      ['source=HOST', ['filt-0001', 'filt-0002', 'filt-0004']],
      ['source=cloudtrail', ['filt-0003']],
      ['server=web-1', ['filt-0001', 'filt-0004']],
      ['server=us-east-1', ['filt-0003']],
      ['rule=rule-login', ['filt-0001', 'filt-0003']],
      ['q=login', ['filt-0001', 'filt-0003']],
      ['q=new%20IP', ['filt-0001']],
      ['severity=1&server=web-1&q=scan', ['filt-0004']],
      ['rule=rule-login&severity=3', ['filt-0003']],
      ['rule=rule-login&source=host&q=user', ['filt-0001']],
      ['q=nothing%20like%20this', []]
    ]
    for (const [query, expected] of cases) {
      const { status, body } = await search(query)
      t.equal(status, 200, query)
      t.same(idsOf(body), expected, query)
      t.same({ nextCursor: body.nextCursor, partial: body.partial, scannedUntil: body.scannedUntil, missing: body.missing },
        { nextCursor: null, partial: false, scannedUntil: null, missing: [] }, `${query}: one whole page`)
    }
    const { body } = await search('limit=100')
    t.same(Object.keys(body).sort(), ['alerts', 'missing', 'nextCursor', 'success'], 'an unfiltered reply has the fields it always had')
    const legacy = await app.inject({ method: 'GET', url: `/threatstack-to-s3/api/v1/s3/alert?${RANGE}&severity=2`, headers: BEARER.read })
    t.same(legacy.json().alerts.map((a: { id: string }) => a.id), ['filt-0002'], 'under the legacy prefix too')
  })

  t.test('bad filter values are 400 RequestValidationError naming the parameter', async (t) => {
    const cases: Array<[string, RegExp]> = [
      ['severity=0', /^\/severity\/0 /],
      ['severity=4', /^\/severity\/0 /],
      ['severity=1&severity=high', /^\/severity\/1 /],
      ['severity=1.5', /^\/severity\/0 /],
      ['severity=', /^\/severity\/0 /],
      ['severity=1&severity=2&severity=3&severity=1', /^\/severity /],
      ['source=', /^\/source /],
      [`source=${'s'.repeat(65)}`, /^\/source /],
      [`server=${'h'.repeat(256)}`, /^\/server /],
      [`rule=${'r'.repeat(129)}`, /^\/rule /],
      ['rule=', /^\/rule /],
      [`q=${'q'.repeat(201)}`, /^\/q /],
      ['q=', /^\/q /],
      ['q=a%00b', /^\/q /],
      ['server=web%0A1', /^\/server /]
    ]
    for (const [query, detail] of cases) {
      const { status, body, raw } = await search(query)
      t.equal(status, 400, query)
      const error = (body as unknown as { error: { type: string, requestId: string, details: string[] } }).error
      t.equal(error.type, 'RequestValidationError', query)
      t.type(error.requestId, 'string')
      t.match(error.details, [detail], `${query}: ${JSON.stringify(error.details)}`)
      t.notMatch(raw, /sssssssssssssssss|hhhhhhhhhhhhhhhhh|rrrrrrrrrrrrrrrrr|qqqqqqqqqqqqqqqqq/, 'the value is not echoed')
      assertNoLeak(t, raw)
    }
  })

  t.test('a cursor is valid only with the filters it came from', async (t) => {
    const first = await search('severity=1&severity=3&limit=1')
    t.same(idsOf(first.body), ['filt-0001'])
    const cursor = first.body.nextCursor as string
    t.type(cursor, 'string')
    const next = await search(`severity=3&severity=1&limit=1&cursor=${cursor}`)
    t.equal(next.status, 200, 'the same filters, in another order')
    t.same(idsOf(next.body), ['filt-0003'])
    const plain = (await search('limit=1')).body.nextCursor as string
    for (const query of [`severity=1&limit=1&cursor=${cursor}`, `limit=1&cursor=${cursor}`, `severity=1&severity=3&q=x&limit=1&cursor=${cursor}`, `q=login&limit=1&cursor=${plain}`]) {
      const { status, body, raw } = await search(query)
      t.equal(status, 400, query)
      t.match(body, { success: false, error: { type: 'RequestValidationError', message: 'cursor is invalid', details: [/same start, end and filters/] } }, query)
      assertNoLeak(t, raw)
    }
    t.equal((await search(`limit=1&cursor=${plain}`)).status, 200, 'an unfiltered cursor still resumes an unfiltered search')
  })

  t.test('a filter matching nothing reads at most 2 × limit full alerts a page, and the cursors reach the end', async (t) => {
    const more = Array.from({ length: 36 }, (_, i) => ({ id: `many-${String(i).padStart(4, '0')}`, created_at: T0 + 600_000 + i * 1000, title: `routine ${i}`, severity: 3 }))
    for (const full of more) threatstack.setAlert(full.id, full)
    const res = await app.inject({
      method: 'POST',
      url: '/api/v1/s3/alert',
      headers: BEARER.ingest,
      payload: { alerts: more.map((f) => ({ id: f.id, created_at: String(f.created_at) })) }
    })
    t.equal(res.json().archived.length, 36)
    const objectReads = (): number => s3proxy!.requests.filter((r) => r.method === 'GET' && !r.path.includes('list-type=2')).length
    let cursor: string | null = null
    const reads: number[] = []
    const pages: Reply[] = []
    for (let i = 0; i < 20; i++) {
      const before = objectReads()
      const { status, body } = await search(`q=no%20such%20alert&limit=5${cursor === null ? '' : `&cursor=${cursor}`}`)
      t.equal(status, 200)
      reads.push(objectReads() - before)
      pages.push(body)
      cursor = body.nextCursor
      if (cursor === null) break
    }
    t.equal(cursor, null, 'the search ended')
    t.ok(reads.every((r) => r <= 10), `at most 10 object reads a page (${reads.join(',')})`)
    t.equal(reads.reduce((a, b) => a + b, 0), 40, 'each of the 40 alerts read once')
    t.equal(pages.length, 4)
    t.ok(pages.slice(0, -1).every((p) => p.partial === true && p.alerts.length === 0 && typeof p.scannedUntil === 'string'), 'partial pages say how far they got')
  })

  t.test('the typed client sends a repeated severity', async (t) => {
    await app.listen({ host: '127.0.0.1', port: 0 })
    const { port } = app.server.address() as AddressInfo
    const client = createArchiveClient({ baseUrl: `http://127.0.0.1:${port}`, token: TOKENS.read })
    const { data, response } = await client.GET('/api/v1/s3/alert', {
      params: { query: { start: '2017-01-15T23:00:00Z', end: '2017-01-15T23:30:00Z', severity: [1, 3], q: 'LOGIN' } }
    })
    t.equal(response.status, 200)
    t.same(data?.alerts.map((a) => a.id), ['filt-0001', 'filt-0003'])
    const partial: boolean | undefined = data?.partial
    t.equal(partial, false)
    const bad = await client.GET('/api/v1/s3/alert', { params: { query: { start: '2017-01-15', end: '2017-01-16', severity: [5] } } })
    t.equal(bad.response.status, 400)
    t.equal(bad.error?.error.type, 'RequestValidationError')
  })
})
