// A minute holding many alerts, on s3rver, counting S3 requests: a page of a search costs its
// own reads, not the minute's, with index entries; a record without one costs that one read.
import t from 'tap'
import { alertKey, indexKey, webhookKey } from '../../services/keys.js'
import { decodeCursor, searchAlerts, type SearchDeps } from '../../services/search.js'
import { startBackend, type CountingStore } from '../helpers/s3.js'

const T0 = Date.UTC(2017, 0, 15, 23, 10) // 2017-01-15T23:10:00.000Z

/** Archives an alert as the Python service did: webhook record and full alert, no index entry. */
async function seed (store: CountingStore, id: string, createdAt: number, options: { full?: boolean } = {}): Promise<void> {
  await store.putRaw(webhookKey(store.prefix, id, createdAt), JSON.stringify({ id, created_at: String(createdAt) }))
  if (options.full ?? true) await store.putRaw(alertKey(store.prefix, id), JSON.stringify({ id, created_at: createdAt, title: `alert ${id}` }))
}

const ids = (page: { alerts: Array<Record<string, unknown>> }): unknown[] => page.alerts.map((a) => a.id)

/** Many alerts archived as the service does now (record, full alert, index entry), 32 at a time. */
async function seedIndexed (store: CountingStore, alerts: Array<{ id: string, at: number }>, full = (_at: number): boolean => true): Promise<void> {
  await store.putMany(alerts.flatMap(({ id, at }) => [
    [webhookKey('', id, at), JSON.stringify({ id, created_at: String(at) })],
    ...(full(at) ? [[alertKey('', id), JSON.stringify({ id, created_at: at, title: `alert ${id}` })]] : []),
    [indexKey('', id, at), '{}']
  ] as Array<[string, string]>))
}

const gets = (store: CountingStore): number => store.requests.get('GetObjectCommand') ?? 0
const lists = (store: CountingStore): number => store.requests.get('ListObjectsV2Command') ?? 0

t.test('on s3rver, a dense minute', async (t) => {
  const store = await startBackend(t, 's3rver')
  const deps: SearchDeps = { store, concurrency: 8 }
  const DENSE = T0 + 10 * 60_000
  // 1,100 alerts in one minute (two listing pages of each kind), 150 of them inside a 10 ms range in its middle.
  const dense = Array.from({ length: 1100 }, (_, i) => ({
    id: `dense-${String(i).padStart(4, '0')}`,
    at: DENSE + (i < 150 ? 30_000 + (i % 10) : (i * 7919) % 60_000)
  }))
  // Full alerts only where a page may read them: a search never reads the others (it would show in `missing`).
  await seedIndexed(store, dense, (at) => at >= DENSE + 29_000 && at < DENSE + 31_000)
  const byTime = (a: { id: string, at: number }, b: { id: string, at: number }): number => a.at - b.at || (a.id < b.id ? -1 : 1)

  t.test('a 10 ms range inside a dense minute reads only the page', async (t) => {
    const range = { startMs: DENSE + 30_000, endMs: DENSE + 30_010 }
    const expected = dense.filter((a) => a.at >= range.startMs && a.at < range.endMs).sort(byTime).map((a) => a.id)
    t.ok(expected.length > 100, `${expected.length} alerts in range`)
    store.reset()
    const page = await searchAlerts(deps, range, { limit: 100 })
    t.same(ids(page), expected.slice(0, 100))
    t.equal(gets(store), 100, `one GET per alert of the page (${gets(store)}), not one per alert of the minute`)
    t.ok(lists(store) <= 2 * 2, `listing calls: the minute's records and its index entries, 1,000 keys a call (${lists(store)})`)
    store.reset()
    const next = await searchAlerts(deps, range, { limit: 100, after: decodeCursor(range, page.nextCursor ?? '') })
    t.same(ids(next), expected.slice(100))
    t.equal(next.nextCursor, null)
    t.equal(gets(store), expected.length - 100, 'the second page reads its own alerts only')

    // Seven alerts of the minute around the range, a page of 2 at a time: each page reads its own.
    const wider = { startMs: DENSE + 29_000, endMs: DENSE + 31_000 }
    const inWider = dense.filter((a) => a.at >= wider.startMs && a.at < wider.endMs).sort(byTime).map((a) => a.id)
    store.reset()
    const first = await searchAlerts(deps, wider, { limit: 2 })
    t.same(ids(first), inWider.slice(0, 2))
    t.ok(gets(store) <= 2 * 2, `a page of 2 costs at most 4 GETs (${gets(store)})`)
  })

  t.test('a record without an index entry in the dense minute costs that one read', async (t) => {
    // The dense minute gains one record without an entry: found, at the cost of that one read.
    await seed(store, 'dense-legacy', DENSE + 30_005)
    const range10 = { startMs: DENSE + 30_000, endMs: DENSE + 30_010 }
    store.reset()
    const page = await searchAlerts(deps, range10, { limit: 100 })
    t.ok(ids(page).includes('dense-legacy'))
    t.equal(gets(store), page.alerts.length + 1, 'the page and the one record')
  })
})
