// The search over the index entries kept beside the webhook records, on s3rver, counting S3
// requests: a page costs its own reads however many alerts share a minute; minutes without
// entries (older archives, a failed entry) fall back to their records; a search called off stops.
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { alertKey, indexKey, parseIndexKey, webhookKey } from '../../services/keys.js'
import { decodeCursor, searchAlerts, type Position, type SearchDeps, type SearchPage, type TimeRange } from '../../services/search.js'
import { putIndexEntry } from '../../services/search-index.js'
import { startBackend, type CountingStore } from '../helpers/s3.js'

const T0 = Date.UTC(2017, 0, 15, 23, 10) // 2017-01-15T23:10:00.000Z

/** Archives an alert as the Python service did: webhook record and full alert, no index entry. */
async function seed (store: CountingStore, id: string, createdAt: number, options: { full?: boolean } = {}): Promise<void> {
  await store.putRaw(webhookKey(store.prefix, id, createdAt), JSON.stringify({ id, created_at: String(createdAt) }))
  if (options.full ?? true) await store.putRaw(alertKey(store.prefix, id), JSON.stringify({ id, created_at: createdAt, title: `alert ${id}` }))
}

const ids = (page: { alerts: Array<Record<string, unknown>> }): unknown[] => page.alerts.map((a) => a.id)

t.test('index keys sort by created_at then id within their minute, and read back', async (t) => {
  const at = T0 + 5_007
  t.equal(indexKey('', 'abcd1234', at), 'index/2017/01/15/23/10/05.007-abcd1234')
  t.equal(indexKey('tenant-a', 'abcd1234', at), 'tenant-a/index/2017/01/15/23/10/05.007-abcd1234')
  t.same(parseIndexKey('tenant-a', 'tenant-a/index/2017/01/15/23/10/05.007-abcd1234'), { minuteMs: T0, t: at, id: 'abcd1234' })
  t.equal(parseIndexKey('', 'index/2017/01/15/23/10/65.007-abcd1234'), undefined, 'no 65th second')
  t.equal(parseIndexKey('', 'index/2017/01/15/23/10/05.007-ab/cd'), undefined)
  t.equal(parseIndexKey('', 'webhooks/2017/01/15/23/10/abcd1234'), undefined)
  t.throws(() => indexKey('', '../x', at), RangeError, 'no key from an id that fails the id rule')
  t.throws(() => indexKey('', 'abcd1234', Number.NaN), RangeError)
})

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

/** Every page of a search, bounded; the ids in order and the pages' own figures. */
async function allPages (deps: SearchDeps, range: TimeRange, limit: number): Promise<{ ids: unknown[], missing: string[], pages: SearchPage[] }> {
  const pages: SearchPage[] = []
  let after: Position | undefined
  for (let i = 0; i < 100; i++) {
    const page = await searchAlerts(deps, range, { limit, ...(after !== undefined && { after }) })
    pages.push(page)
    if (page.nextCursor === null) break
    after = decodeCursor(range, page.nextCursor)
  }
  return { ids: pages.flatMap(ids), missing: pages.flatMap((p) => p.missing), pages }
}

t.test('on s3rver, with index entries', async (t) => {
  const store = await startBackend(t, 's3rver')
  const deps: SearchDeps = { store, concurrency: 8 }
  const PAGED = T0 + 20 * 60_000
  const paged = Array.from({ length: 512 }, (_, i) => ({ id: `paged-${String(511 - i).padStart(4, '0')}`, at: PAGED + ((i * 113) % 60_000) }))
  await seedIndexed(store, paged)
  const byTime = (a: { id: string, at: number }, b: { id: string, at: number }): number => a.at - b.at || (a.id < b.id ? -1 : 1)

  t.test('paging a minute of 512 alerts costs one GET per alert, not the minute per page', async (t) => {
    const range = { startMs: PAGED, endMs: PAGED + 60_000 }
    store.reset()
    const { ids: seen, pages } = await allPages(deps, range, 100)
    t.same(seen, [...paged].sort(byTime).map((a) => a.id), 'every alert once, in created_at order')
    t.equal(pages.length, 6)
    t.equal(gets(store), 512, 'one GET per alert over all six pages')
    t.ok(lists(store) <= 6 * 2, `two listing calls a page (${lists(store)})`)
  })

  t.test('records without an index entry (older archives, a failed entry) are read, and only they', async (t) => {
    const MIXED = T0 + 30 * 60_000
    const indexed = [['mixd-i1', 1_000], ['mixd-i2', 7_000], ['mixd-i3', 7_000], ['mixd-i4', 59_999], ['mixd-i5', 0]] as const
    await seedIndexed(store, indexed.map(([id, at]) => ({ id, at: MIXED + at })))
    // As the Python service wrote them: record and full alert, no entry.
    for (const [id, at] of [['mixd-l1', 500], ['mixd-l2', 7_000], ['mixd-l3', 30_000]] as const) await seed(store, id, MIXED + at)
    await seed(store, 'mixd-l4', MIXED + 40_000, { full: false })
    // An entry whose record is not there (its PUT failed): it must never surface.
    await store.putRaw(indexKey('', 'mixd-o1', MIXED + 2_000), '{}')
    await store.putRaw(alertKey('', 'mixd-o1'), '{"id": "mixd-o1"}')
    // A record with two entries (delivered again with another created_at): the record decides.
    await seed(store, 'mixd-d1', MIXED + 20_000)
    await store.putRaw(indexKey('', 'mixd-d1', MIXED + 20_000), '{}')
    await store.putRaw(indexKey('', 'mixd-d1', MIXED + 3_000), '{}')
    const expected = ['mixd-i5', 'mixd-l1', 'mixd-i1', 'mixd-i2', 'mixd-i3', 'mixd-l2', 'mixd-d1', 'mixd-l3', 'mixd-l4', 'mixd-i4']
    const range = { startMs: MIXED, endMs: MIXED + 60_000 }

    store.reset()
    const whole = await searchAlerts(deps, range, { limit: 100 })
    t.same([...ids(whole), ...whole.missing].sort(), [...expected].sort())
    t.same(ids(whole), expected.filter((id) => id !== 'mixd-l4'), 'ascending created_at, entries and records merged')
    t.same(whole.missing, ['mixd-l4'])
    t.equal(gets(store), 5 + 10, 'the five records without exactly one entry, and the full alerts')

    for (const limit of [1, 2, 3, 4, 9, 10]) {
      const { ids: seen, missing } = await allPages(deps, range, limit)
      t.same([...seen, ...missing].sort(), [...expected].sort(), `limit ${limit}: every alert once`)
      t.same(seen, ids(whole), `limit ${limit}: in order`)
    }
    const edge = await searchAlerts(deps, { startMs: MIXED + 7_000, endMs: MIXED + 7_001 }, { limit: 10 })
    t.same(ids(edge), ['mixd-i2', 'mixd-i3', 'mixd-l2'], 'a 1 ms range over entries and records')
  })

  t.test('a search called off stops its S3 work', async (t) => {
    const LEGACY = T0 + 40 * 60_000
    await store.putMany(Array.from({ length: 200 }, (_, i) => [webhookKey('', `gone-${String(i).padStart(4, '0')}`, LEGACY + i), `{"id": "gone-${i}", "created_at": ${LEGACY + i}}`]))
    const controller = new AbortController()
    store.reset()
    const search = searchAlerts({ store, concurrency: 2 }, { startMs: LEGACY, endMs: LEGACY + 60_000 }, { limit: 100, signal: controller.signal })
    for (let i = 0; i < 500 && gets(store) < 6; i++) await sleep(2)
    const reason = new Error('client gone')
    controller.abort(reason)
    const atAbort = gets(store)
    await t.rejects(search, reason, 'the abort, not an S3 failure')
    await sleep(300)
    t.ok(gets(store) <= atAbort + 2, `no read started after the abort (${atAbort} before, ${gets(store)} after)`)
    t.ok(gets(store) < 200, 'far from the 200 records of the minute')
  })
})

t.test('putIndexEntry writes the entry of a record, and never fails the caller', async (t) => {
  const store = await startBackend(t, 's3rver')
  t.equal(await putIndexEntry(store, { id: 'entry-0001', created_at: String(T0 + 42) }), true)
  const page = await searchAlerts({ store, concurrency: 2 }, { startMs: T0, endMs: T0 + 60_000 }, { limit: 10 })
  t.same(page, { alerts: [], nextCursor: null, missing: [] }, 'an entry alone surfaces nothing')
  await store.server.close()
  t.equal(await putIndexEntry(store, { id: 'entry-0002', created_at: String(T0 + 43) }), false, 'S3 down: false, no throw')
})
