// Filtered searches over 1,000 alerts on s3rver, counting S3 requests: a filter that matches
// little never turns a page into a scan of the range, and the cursors still reach its end.
import t from 'tap'
import { FILTERED_READS_PER_ALERT, searchAlerts, type SearchDeps } from '../../services/search.js'
import { startBackend } from '../helpers/s3.js'
import { allPages, ids, seedIndexed, T0, type Seeded } from '../helpers/search-filters.js'

// Filling s3rver with 3,000 objects (record, full alert and index entry of 1,000 alerts) takes
// most of this file's time, and far more than tap's default per file on a loaded machine.
t.setTimeout(360_000)

t.test('on s3rver, 1,000 alerts, filtered', async (t) => {
  const store = await startBackend(t, 's3rver')
  const deps: SearchDeps = { store, concurrency: 8 }

  const DENSE = T0 + 60 * 60_000
  // 1,000 alerts over 10 minutes; one alert, the 701st, is the only one of rule-rare.
  const RARE = 700
  const many: Seeded[] = Array.from({ length: 1000 }, (_, i) => ({
    id: `many-${String(i).padStart(4, '0')}`,
    at: DENSE + i * 600,
    full: { title: `Alert ${i}`, severity: 1 + (i % 3), source: 'host', server_or_region: `web-${i % 4}`, rule: { id: i === RARE ? 'rule-rare' : 'rule-common' } }
  }))
  const manyRange = { startMs: DENSE, endMs: DENSE + 600_000 }

  t.test('a filter matching nothing over 1,000 alerts: each page stays within its budget, and the cursors reach the end', async (t) => {
    await seedIndexed(store, many)
    const limit = 100
    const budget = FILTERED_READS_PER_ALERT * limit
    const { ids: seen, pages, reads } = await allPages(store, deps, manyRange, limit, { q: 'matches nothing' }, 30)
    t.same(seen, [], 'nothing found')
    t.equal(pages.length, Math.ceil(1000 / budget), `${pages.length} pages of ${budget} alerts examined`)
    t.equal(pages.at(-1)?.nextCursor, null, 'the last page ends the search')
    t.ok(reads.every((r) => r <= budget), `at most ${budget} GETs a page (${Math.max(...reads)})`)
    t.equal(reads.reduce((a, b) => a + b, 0), 1000, 'each alert read once over all pages')
    for (const page of pages.slice(0, -1)) t.match(page, { partial: true, scannedUntil: /^2017-01-16T00:\d\d:\d\d\.\d{3}Z$/ }, 'partial, saying how far it got')
    const progress = pages.slice(0, -1).map((p) => Date.parse(p.scannedUntil as string))
    t.same(progress, [...progress].sort((a, b) => a - b), 'each page gets further')
    t.equal(progress[0], DENSE + (budget - 1) * 600, 'the first page examined as many alerts as its budget has reads')
    t.same(pages.at(-1), { alerts: [], nextCursor: null, missing: [], partial: false, scannedUntil: null })
  })

  t.test('a rare match is found on a later page', async (t) => {
    const limit = 50
    const { ids: seen, pages, reads } = await allPages(store, deps, manyRange, limit, { rule: 'rule-rare' }, 30)
    t.same(seen, ['many-0700'])
    const at = pages.findIndex((p) => p.alerts.length > 0)
    t.equal(at, 7, `on page ${at + 1} of 10`)
    t.ok(pages.slice(0, at).every((p) => p.partial === true && p.alerts.length === 0), 'pages before it: empty, partial, with a cursor')
    t.equal(pages.at(-1)?.nextCursor, null)
    t.ok(reads.every((r) => r <= FILTERED_READS_PER_ALERT * limit), `within the budget (${Math.max(...reads)})`)
    const wide = await searchAlerts(deps, manyRange, { limit: 1000, filters: { rule: 'rule-rare', severity: [2] } })
    t.same(ids(wide), ['many-0700'], 'with a budget covering the range: one page')
    t.equal(wide.nextCursor, null)
  })

  t.test('a filter matching many, or all: a page of the whole range, full pages with no repeat or skip', async (t) => {
    const expected = many.filter((_, i) => i % 3 === 0 && i % 4 === 1).map((a) => a.id)
    const one = await searchAlerts(deps, manyRange, { limit: 1000, filters: { severity: [1], server: 'web-1' } })
    t.same(ids(one), expected, 'every match, in order')
    t.same({ nextCursor: one.nextCursor, partial: one.partial }, { nextCursor: null, partial: false })
    const dense = await allPages(store, deps, manyRange, 500, { source: 'host' }, 5)
    t.same(dense.ids, many.map((a) => a.id), 'a filter matching all: the whole range')
    t.equal(dense.pages.length, 2, 'no empty last page')
    t.ok(dense.pages.every((p) => p.partial === false))
    t.ok(dense.reads.every((r) => r <= 500 + 8), `about one read an alert, a window more at most (${Math.max(...dense.reads)})`)
  })
})
