// Filtered searches on s3rver, counting S3 requests: each filter on both API versions' field
// names, combinations, alerts without a full alert, cursors bound to their filters, and the
// page's read budget (a filter that matches little never turns a page into a scan of the range).
import t from 'tap'
import { RequestValidationError } from '../../errors/index.js'
import {
  decodeCursor, encodeCursor, FILTERED_READS_PER_ALERT, matchesFilters, normalizeFilters, searchAlerts,
  type SearchDeps, type SearchFilters, type TimeRange
} from '../../services/search.js'
import { startBackend } from '../helpers/s3.js'
import { allPages, ids, seedIndexed, T0, type Seeded } from '../helpers/search-filters.js'

t.test('matchesFilters reads both API versions and never matches a field that is absent', async (t) => {
  const v1 = { title: 'User LOGIN from 203.0.113.7', severity: 1, source: 'Host', server_or_region: 'ip-10-0-0-1', rule: { id: 'r-1', name: 'Login' } }
  const v2 = { title: 'CloudTrail: root login', severity: '3', dataSource: 'cloudtrail', hostname: 'us-east-1', ruleId: 'r-2' }
  const f = (filters: SearchFilters): SearchFilters => normalizeFilters(filters) as SearchFilters
  t.ok(matchesFilters(f({ severity: [1] }), v1))
  t.ok(matchesFilters(f({ severity: [2, 3] }), v2), 'a severity given as a digit string')
  t.notOk(matchesFilters(f({ severity: [2] }), v1))
  t.ok(matchesFilters(f({ source: 'host' }), v1), 'source ignores case')
  t.ok(matchesFilters(f({ source: 'CloudTrail' }), v2), 'dataSource of API v2')
  t.notOk(matchesFilters(f({ source: 'hos' }), v1), 'source is equality, not a substring')
  t.ok(matchesFilters(f({ server: 'IP-10-0-0-1' }), v1))
  t.ok(matchesFilters(f({ server: 'us-east-1' }), v2), 'hostname of API v2')
  t.ok(matchesFilters(f({ rule: 'r-1' }), v1), 'rule.id of API v1')
  t.ok(matchesFilters(f({ rule: 'r-2' }), v2), 'ruleId of API v2')
  t.ok(matchesFilters(f({ rule: 'r-3' }), { rule_id: 'r-3' }), 'rule_id')
  t.notOk(matchesFilters(f({ rule: 'R-1' }), v1), 'a rule id is exact')
  t.ok(matchesFilters(f({ q: 'login' }), v1), 'q ignores case')
  t.ok(matchesFilters(f({ q: 'ROOT LOG' }), v2))
  t.notOk(matchesFilters(f({ q: 'logout' }), v1))
  t.ok(matchesFilters(f({ severity: [1], source: 'host', server: 'ip-10-0-0-1', rule: 'r-1', q: '203.0' }), v1), 'all at once')
  t.notOk(matchesFilters(f({ severity: [1], q: 'nope' }), v1), 'every filter must hold')
  for (const filters of [{ severity: [1] }, { source: 'host' }, { server: 'h' }, { rule: 'r' }, { q: 'a' }]) {
    t.notOk(matchesFilters(f(filters), { id: 'bare' }), `absent field: ${Object.keys(filters)[0] as string}`)
  }
  t.notOk(matchesFilters(f({ severity: [1] }), { severity: '1.0' }))
  t.notOk(matchesFilters(f({ rule: '[object Object]' }), { rule: { id: { nested: true } } }))
  t.equal(normalizeFilters({}), undefined, 'no filter is no filter')
  t.equal(normalizeFilters({ severity: [] }), undefined)
})

t.test('a cursor resumes only the filters that made it; unfiltered cursors keep their format', async (t) => {
  const range: TimeRange = { startMs: T0, endMs: T0 + 3_600_000 }
  const position = { m: T0, t: T0 + 5, id: 'abcd1234' }
  const plain = encodeCursor(range, position)
  t.same(JSON.parse(Buffer.from(plain, 'base64url').toString('utf8')), { v: 1, s: range.startMs, e: range.endMs, ...position }, 'the format it always had')
  t.same(decodeCursor(range, plain), position)
  t.same(decodeCursor(range, plain, {}), position, 'empty filters are no filters')
  const filtered = encodeCursor(range, position, { severity: [2, 1], source: 'Host' })
  t.same(decodeCursor(range, filtered, { severity: [1, 2], source: 'host' }), position, 'the same filters, written otherwise')
  t.same(decodeCursor(range, filtered, { severity: [1, 2, 2], source: 'HOST' }), position)
  const others: Array<[string, string, SearchFilters | undefined]> = [
    ['a filtered cursor without its filters', filtered, undefined],
    ['a filtered cursor with other filters', filtered, { severity: [1], source: 'host' }],
    ['a filtered cursor with one more filter', filtered, { severity: [1, 2], source: 'host', q: 'x' }],
    ['an unfiltered cursor with filters', plain, { q: 'login' }],
    ['a forged filter digest', Buffer.from(JSON.stringify({ v: 1, s: range.startMs, e: range.endMs, ...position, f: 'x' })).toString('base64url'), { q: 'login' }]
  ]
  for (const [why, cursor, filters] of others) {
    t.throws(() => decodeCursor(range, cursor, filters), RequestValidationError, why)
  }
  try {
    decodeCursor(range, filtered)
    t.fail('a filtered cursor decoded without its filters')
  } catch (err) {
    t.match((err as RequestValidationError).details, [/same start, end and filters/], 'the details say why')
  }
})

t.test('on s3rver, filters', async (t) => {
  const store = await startBackend(t, 's3rver')
  const deps: SearchDeps = { store, concurrency: 8 }

  t.test('each filter, combinations, repeated severity; alerts without a full alert are judged on their record', async (t) => {
    const M = T0
    const alerts: Seeded[] = [
      { id: 'mix-a1', at: M + 1, full: { title: 'Login from new IP', severity: 1, source: 'host', server_or_region: 'web-1', rule: { id: 'rule-login' } } },
      { id: 'mix-a2', at: M + 2, full: { title: 'File changed', severity: 2, source: 'host', server_or_region: 'web-2', rule: { id: 'rule-fim' } } },
      { id: 'mix-a3', at: M + 60_000, full: { title: 'Root LOGIN', severity: '3', dataSource: 'cloudtrail', hostname: 'us-east-1', ruleId: 'rule-login' } },
      { id: 'mix-a4', at: M + 60_001, full: { title: 'Port scan', severity: 1, source: 'host', server_or_region: 'web-1', ruleId: 'rule-scan' } },
      { id: 'mix-a5', at: M + 120_000, full: { title: 'No fields at all' } },
      // No full alert: its webhook record is what there is to judge.
      { id: 'mix-m1', at: M + 120_001, record: { title: 'Login burst', severity: '1', source: 'host', server_or_region: 'web-1' } },
      { id: 'mix-m2', at: M + 120_002, record: { title: 'Quiet', severity: '3' } }
    ]
    await seedIndexed(store, alerts)
    const range = { startMs: M, endMs: M + 180_000 }
    const cases: Array<[string, SearchFilters, string[], string[]]> = [
      ['severity 1', { severity: [1] }, ['mix-a1', 'mix-a4'], ['mix-m1']],
      ['severity 1 or 3 (repeated)', { severity: [1, 3] }, ['mix-a1', 'mix-a3', 'mix-a4'], ['mix-m1', 'mix-m2']],
      ['severity 2', { severity: [2] }, ['mix-a2'], []],
      ['source', { source: 'HOST' }, ['mix-a1', 'mix-a2', 'mix-a4'], ['mix-m1']],
      ['source of API v2', { source: 'cloudtrail' }, ['mix-a3'], []],
      ['server', { server: 'web-1' }, ['mix-a1', 'mix-a4'], ['mix-m1']],
      ['server of API v2', { server: 'us-east-1' }, ['mix-a3'], []],
      ['rule', { rule: 'rule-login' }, ['mix-a1', 'mix-a3'], []],
      ['q', { q: 'login' }, ['mix-a1', 'mix-a3'], ['mix-m1']],
      ['severity and server', { severity: [1], server: 'web-1' }, ['mix-a1', 'mix-a4'], ['mix-m1']],
      ['severity, source and q', { severity: [1, 2], source: 'host', q: 'LOGIN' }, ['mix-a1'], ['mix-m1']],
      ['rule and q', { rule: 'rule-login', q: 'root' }, ['mix-a3'], []],
      ['everything at once', { severity: [1], source: 'host', server: 'web-1', rule: 'rule-scan', q: 'scan' }, ['mix-a4'], []],
      ['nothing matches', { q: 'no such title' }, [], []]
    ]
    for (const [why, filters, expected, missing] of cases) {
      const page = await searchAlerts(deps, range, { limit: 100, filters })
      t.same(ids(page), expected, `${why}: alerts`)
      t.same(page.missing, missing, `${why}: missing`)
      t.same({ nextCursor: page.nextCursor, partial: page.partial, scannedUntil: page.scannedUntil }, { nextCursor: null, partial: false, scannedUntil: null }, `${why}: one page`)
      for (const limit of [1, 2]) {
        const paged = await allPages(store, deps, range, limit, filters)
        t.same(paged.ids, expected, `${why}, ${limit} a page: the same alerts in the same order`)
        t.same(paged.missing, missing)
        t.ok(paged.reads.every((r) => r <= FILTERED_READS_PER_ALERT * limit), `${why}, ${limit} a page: within the read budget (${paged.reads.join(',')})`)
      }
    }
    const unfiltered = await searchAlerts(deps, range, { limit: 100 })
    t.notOk('partial' in unfiltered || 'scannedUntil' in unfiltered, 'an unfiltered page has the fields it always had')
    t.equal(unfiltered.alerts.length + unfiltered.missing.length, alerts.length)
  })

  t.test('a filter matching one alert in twelve, paged: every match once, each page full or partial', async (t) => {
    const SPARSE = T0 + 120 * 60_000
    const sparse: Seeded[] = Array.from({ length: 120 }, (_, i) => ({
      id: `sparse-${String(i).padStart(4, '0')}`,
      at: SPARSE + i * 500,
      full: { title: `Alert ${i}`, severity: 1 + (i % 3), server_or_region: `web-${i % 4}` }
    }))
    await seedIndexed(store, sparse)
    const expected = sparse.filter((_, i) => i % 3 === 0 && i % 4 === 1).map((a) => a.id)
    const range = { startMs: SPARSE, endMs: SPARSE + 60_000 }
    for (const limit of [1, 4, 9]) {
      const { ids: seen, pages, reads } = await allPages(store, deps, range, limit, { severity: [1], server: 'web-1' }, 150)
      t.same(seen, expected, `limit ${limit}: every match once, in order`)
      t.ok(reads.every((r) => r <= FILTERED_READS_PER_ALERT * limit), `limit ${limit}: within the budget (${Math.max(...reads)})`)
      t.ok(pages.slice(0, -1).every((p) => p.alerts.length === limit || p.partial === true), `limit ${limit}: a page with a cursor is full or says it is partial`)
      t.equal(pages.at(-1)?.nextCursor, null)
    }
  })

  t.test('alerts without a full alert cost a read of their record, within the budget', async (t) => {
    const HALF = T0 + 90 * 60_000
    // Every other alert has no full alert: its record says severity 1.
    const half: Seeded[] = Array.from({ length: 40 }, (_, i) => ({
      id: `half-${String(i).padStart(4, '0')}`,
      at: HALF + i * 1000,
      ...(i % 2 === 0 ? { full: { title: 'x', severity: 2 } } : { record: { severity: '1' } })
    }))
    await seedIndexed(store, half)
    const range = { startMs: HALF, endMs: HALF + 60_000 }
    const { missing, reads, pages } = await allPages(store, deps, range, 3, { severity: [1] }, 60)
    t.same(missing, half.filter((_, i) => i % 2 === 1).map((a) => a.id), 'listed in missing, in order')
    t.ok(reads.every((r) => r <= 6), `at most 2 × limit reads a page (${reads.join(',')})`)
    t.equal(pages.at(-1)?.nextCursor, null)
    const once = await allPages(store, deps, range, 1, { severity: [1] }, 100)
    t.same(once.missing, missing, 'a page of one: its budget of two still judges an alert without its full alert')
    t.ok(once.reads.every((r) => r <= 2))
  })
})
