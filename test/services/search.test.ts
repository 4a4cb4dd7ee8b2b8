import t from 'tap'
import { RequestValidationError, S3ClientError } from '../../errors/index.js'
import { alertKey, webhookKey } from '../../services/keys.js'
import {
  decodeCursor, encodeCursor, parseInstant, parseRange, searchAlerts, type SearchDeps, type TimeRange
} from '../../services/search.js'
import { BACKENDS, startBackend, type CountingStore } from '../helpers/s3.js'

const T0 = Date.UTC(2017, 0, 15, 23, 10) // 2017-01-15T23:10:00.000Z

/** Archives an alert as the service does: webhook record and full alert. */
async function seed (store: CountingStore, id: string, createdAt: number, options: { full?: boolean } = {}): Promise<void> {
  await store.putRaw(webhookKey(store.prefix, id, createdAt), JSON.stringify({ id, created_at: String(createdAt) }))
  if (options.full ?? true) await store.putRaw(alertKey(store.prefix, id), JSON.stringify({ id, created_at: createdAt, title: `alert ${id}` }))
}

const ids = (page: { alerts: Array<Record<string, unknown>> }): unknown[] => page.alerts.map((a) => a.id)

t.test('parseInstant: RFC 3339 date-times with offset and plain dates, nothing else', async (t) => {
  t.equal(parseInstant('2017-01-15'), Date.UTC(2017, 0, 15))
  t.equal(parseInstant('2017-01-15T23:10:00Z'), T0)
  t.equal(parseInstant('2017-01-15t23:10:00z'), T0, 'lower-case t and z are RFC 3339 too')
  t.equal(parseInstant('2017-01-16T01:10:00+02:00'), T0)
  t.equal(parseInstant('2017-01-15T18:40:00-04:30'), T0)
  t.equal(parseInstant('2017-01-15T23:10:00.123Z'), T0 + 123)
  t.equal(parseInstant('2017-01-15T23:10:00.1239999Z'), T0 + 123, 'digits beyond the millisecond are cut, not rounded')
  t.equal(parseInstant('2017-01-15T23:10:00.5Z'), T0 + 500)
  for (const bad of ['', 'yesterday', '2017-02-30', '2017-02-30T00:00:00Z', '2017-13-01', '2017-01-15T24:00:00Z',
    '2017-01-15T23:10:00', '2017-01-15T23:60:00Z', '2017-01-15T23:10:00+25:00', '1484521800000', '17-01-15',
    '2017-01-15T23:10Z', ' 2017-01-15', '1969-12-31']) {
    t.equal(parseInstant(bad), undefined, `rejects ${JSON.stringify(bad)}`)
  }
})

t.test('parseRange says which bound is wrong and why', async (t) => {
  t.same(parseRange('2017-01-15', '2017-01-16'), { startMs: Date.UTC(2017, 0, 15), endMs: Date.UTC(2017, 0, 16) })
  t.throws(() => parseRange('nope', '2017-01-16'), { name: 'DateParseError', message: 'start is not an RFC 3339 date-time (with offset) or a date' })
  t.throws(() => parseRange('2017-01-15', '2017-02-30'), { name: 'DateParseError', message: 'end is not an RFC 3339 date-time (with offset) or a date' })
  t.throws(() => parseRange('2017-01-16', '2017-01-15'), { name: 'DateParseError', message: 'start must be before end' })
  t.throws(() => parseRange('2017-01-15', '2017-01-15T00:00:00Z'), { name: 'DateParseError', message: 'start must be before end' }, 'equal bounds are empty')
})

t.test('a cursor only resumes the search that made it', async (t) => {
  const range: TimeRange = { startMs: T0, endMs: T0 + 3_600_000 }
  const position = { m: T0, t: T0 + 5, id: 'abcd1234' }
  t.same(decodeCursor(range, encodeCursor(range, position)), position)
  const forged = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')
  for (const [why, cursor] of [
    ['not base64 JSON', 'bm90IGpzb24'],
    ['garbage', '____'],
    ['another range', encodeCursor({ startMs: T0 - 60_000, endMs: range.endMs }, position)],
    ['a minute outside the range', forged({ v: 1, s: range.startMs, e: range.endMs, m: T0 + 7_200_000, t: T0, id: 'abcd1234' })],
    ['a malformed id', forged({ v: 1, s: range.startMs, e: range.endMs, m: T0, t: T0, id: '../x' })],
    ['a string time', forged({ v: 1, s: range.startMs, e: range.endMs, m: T0, t: '1', id: 'abcd1234' })],
    ['another version', forged({ v: 2, s: range.startMs, e: range.endMs, m: T0, t: T0, id: 'abcd1234' })],
    ['null', forged(null)]
  ] as const) {
    t.throws(() => decodeCursor(range, cursor), RequestValidationError, why)
  }
})

for (const backend of BACKENDS) {
  t.test(`on ${backend}`, async (t) => {
    t.test('selects start ≤ created_at < end exactly to the millisecond, in created_at order', async (t) => {
      const store = await startBackend(t, backend)
      const deps: SearchDeps = { store, concurrency: 4 }
      // Boundary minutes hold alerts on both sides of each bound; ids sort against time order.
      await seed(store, 'zzzz-before', T0 - 1)
      await seed(store, 'yyyy-at-start', T0)
      await seed(store, 'aaaa-later-same-minute', T0 + 59_999)
      await seed(store, 'mmmm-same-minute', T0 + 30_000)
      await seed(store, 'bbbb-next-minute', T0 + 60_000)
      await seed(store, 'cccc-last-in', T0 + 3_600_000 - 1)
      await seed(store, 'dddd-at-end', T0 + 3_600_000)
      await seed(store, 'eeee-next-day', T0 + 86_400_000)
      const page = await searchAlerts(deps, { startMs: T0, endMs: T0 + 3_600_000 }, { limit: 100 })
      t.same(ids(page), ['yyyy-at-start', 'mmmm-same-minute', 'aaaa-later-same-minute', 'bbbb-next-minute', 'cccc-last-in'])
      t.equal(page.nextCursor, null, 'one page')
      t.same(page.missing, [])
      t.same(page.alerts[0], { id: 'yyyy-at-start', created_at: T0, title: 'alert yyyy-at-start' }, 'the stored full alert')

      const narrow = await searchAlerts(deps, { startMs: T0 + 30_000, endMs: T0 + 30_001 }, { limit: 10 })
      t.same(ids(narrow), ['mmmm-same-minute'], 'a one-millisecond range')
      const empty = await searchAlerts(deps, { startMs: T0 + 1, endMs: T0 + 30_000 }, { limit: 10 })
      t.same(empty, { alerts: [], nextCursor: null, missing: [] })
    })

    t.test('pages never repeat or skip an alert, and the last page has no cursor', async (t) => {
      const store = await startBackend(t, backend)
      const deps: SearchDeps = { store, concurrency: 4 }
      const expected: string[] = []
      // 23 alerts over 9 minutes, several per minute, some sharing a millisecond.
      for (let i = 0; i < 23; i++) {
        const at = T0 + Math.floor(i / 3) * 60_000 + (i % 3 === 2 ? 1000 : 1000 * (i % 3))
        const id = `page-${String(30 - i).padStart(2, '0')}`
        await seed(store, id, at)
        expected.push(id)
      }
      const range = { startMs: T0, endMs: T0 + 3_600_000 }
      const all = await searchAlerts(deps, range, { limit: 1000 })
      t.equal(all.alerts.length, 23)
      for (const limit of [1, 2, 5, 7, 22, 23]) {
        const seen: unknown[] = []
        let after
        let pages = 0
        for (;;) {
          const page = await searchAlerts(deps, range, { limit, ...(after !== undefined && { after }) })
          seen.push(...ids(page))
          pages++
          t.ok(page.alerts.length <= limit)
          if (page.nextCursor === null) break
          t.equal(page.alerts.length, limit, 'a page with a cursor is full')
          after = decodeCursor(range, page.nextCursor)
          if (pages > 30) break
        }
        t.same(seen, ids(all), `limit ${limit}: the pages make up the whole result, in order`)
        t.equal(pages, Math.max(1, Math.ceil(23 / limit)), `limit ${limit}: no empty last page`)
      }
      const times = all.alerts.map((a) => a.created_at as number)
      t.same(times, [...times].sort((a, b) => a - b), 'ascending created_at')
    })

    t.test('an alert without its full object is listed in missing, and the search succeeds', async (t) => {
      const store = await startBackend(t, backend)
      await seed(store, 'full-0001', T0 + 1)
      await seed(store, 'half-0002', T0 + 2, { full: false })
      await seed(store, 'full-0003', T0 + 3)
      const page = await searchAlerts({ store, concurrency: 4 }, { startMs: T0, endMs: T0 + 60_000 }, { limit: 10 })
      t.same(ids(page), ['full-0001', 'full-0003'])
      t.same(page.missing, ['half-0002'])
    })

    t.test("the Python service's archives are found and returned", async (t) => {
      const store = await startBackend(t, backend, 'search-bucket', 'legacy')
      // Written object by object as json.dumps would: spaces after separators, created_at a number.
      const id = '587c0159a907346eccb84004'
      await store.putRaw(`legacy/webhooks/2017/01/15/23/10/${id}`,
        `{"organization_id": "5579c7d7acd7a4e91c000001", "severity": 1, "created_at": ${T0 + 1234}, "id": "${id}", "title": "Test alert"}`)
      await store.putRaw(`legacy/alerts/58/7c/${id}`, `{"id": "${id}", "created_at": ${T0 + 1234}, "title": "Test alert", "rule": {"name": "r"}}`)
      const page = await searchAlerts({ store, concurrency: 4 }, parseRange('2017-01-15T23:00:00Z', '2017-01-16'), { limit: 10 })
      t.same(page.alerts, [{ id, created_at: T0 + 1234, title: 'Test alert', rule: { name: 'r' } }])
    })

    t.test('keys that are not webhook records, and records without a usable created_at, are handled', async (t) => {
      const store = await startBackend(t, backend)
      await store.putRaw('webhooks/2017/01/15/23/10/', '{}')
      await store.putRaw('webhooks/2017/01/15/23/10/bad id', '{}')
      await store.putRaw('webhooks/2017/01/15/23/10/notes.txt/extra', 'x')
      await store.putRaw('webhooks/2017/01/15/23/11/noclock1', '{"id": "noclock1"}')
      await store.putRaw(alertKey('', 'noclock1'), '{"id": "noclock1"}')
      await seed(store, 'good-0001', T0 + 10)
      const page = await searchAlerts({ store, concurrency: 4 }, { startMs: T0, endMs: T0 + 120_000 }, { limit: 10 })
      t.same(ids(page), ['good-0001', 'noclock1'], 'a record without created_at sorts at the start of its minute')
    })

    t.test('an S3 failure mid-search is an S3ClientError, never a partial page', async (t) => {
      const store = await startBackend(t, backend)
      await seed(store, 'down-0001', T0 + 10)
      await store.server.close()
      await t.rejects(searchAlerts({ store, concurrency: 4 }, { startMs: T0, endMs: T0 + 60_000 }, { limit: 10 }), S3ClientError)
    })
  })
}
