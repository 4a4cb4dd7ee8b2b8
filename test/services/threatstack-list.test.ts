import t from 'tap'
import { loadConfig } from '../../config.js'
import { ThreatStackAPIError, ThreatStackRequestError } from '../../errors/index.js'
import { closeThreatStackClient, createThreatStackClient, type ThreatStackClient } from '../../services/threatstack.js'
import { listAlerts, type ListOptions, type ListQuery } from '../../services/threatstack-list.js'
import { startUpstreams, type Upstreams } from '../helpers/build.js'
import { assertNoLeak } from '../helpers/leaks.js'

type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

const HOUR = Date.UTC(2026, 10, 30, 10)

async function setup (t: Tap, hawk = true): Promise<Upstreams & { client: ThreatStackClient }> {
  const upstreams = await startUpstreams(t, { hawk })
  const client = createThreatStackClient(loadConfig(upstreams.env).threatstack)
  t.teardown(async () => closeThreatStackClient(client))
  return { ...upstreams, client }
}

async function all (client: ThreatStackClient, query: ListQuery, options: ListOptions = {}): Promise<string[]> {
  const ids: string[] = []
  for await (const entry of listAlerts(client, query, options)) ids.push(entry.id as string)
  return ids
}

const fast: ListOptions = { baseDelayMs: 1, maxDelayMs: 5 }

t.test('lists every page of both statuses, Hawk-signed, in created order', async (t) => {
  const { client, threatstack } = await setup(t)
  const raised = threatstack.raiseAlerts({ count: 250, fromMs: HOUR, untilMs: HOUR + 3_600_000, seed: 7 })
  threatstack.raiseAlerts({ count: 5, fromMs: HOUR + 3_600_000, untilMs: HOUR + 7_200_000, seed: 8 })
  const active = await all(client, { fromMs: HOUR, untilMs: HOUR + 3_600_000, status: 'active' }, fast)
  const dismissed = await all(client, { fromMs: HOUR, untilMs: HOUR + 3_600_000, status: 'dismissed' }, fast)
  t.same(active, raised.filter((a) => a.isDismissed !== true).map((a) => a.id), 'every active alert of the hour, once, in order')
  t.same(dismissed, raised.filter((a) => a.isDismissed === true).map((a) => a.id), 'every dismissed one')
  t.ok(dismissed.length > 0 && active.length > 100, 'more than a page')
  const lists = threatstack.requests.filter((r) => r.path.startsWith('/v2/alerts?'))
  t.ok(lists.every((r) => r.authorized), 'every page authenticated')
  t.equal(lists.length, Math.ceil(active.length / 100) + Math.ceil(dismissed.length / 100), 'pages of 100')
  t.ok(lists.slice(1).some((r) => r.path.includes('token=')), 'later pages ask by token')
  t.match(lists[0]?.path, /from=2026-11-30T10%3A00%3A00\.000Z&until=2026-11-30T11%3A00%3A00\.000Z&status=active/)
})

t.test('the same seed raises the same alerts', async (t) => {
  const { threatstack } = await setup(t)
  const a = threatstack.raiseAlerts({ count: 20, fromMs: HOUR, untilMs: HOUR + 3_600_000, seed: 42 })
  const { threatstack: other } = await setup(t)
  const b = other.raiseAlerts({ count: 20, fromMs: HOUR, untilMs: HOUR + 3_600_000, seed: 42 })
  t.same(a, b)
})

t.test('slows down before the rate limit runs out: no 429 is ever provoked', async (t) => {
  const { client, threatstack } = await setup(t)
  threatstack.raiseAlerts({ count: 50, fromMs: HOUR, untilMs: HOUR + 3_600_000, seed: 3, dismissedShare: 0 })
  threatstack.setPageSize(10)
  threatstack.setRateLimit({ limit: 3, windowMs: 1000 })
  const ids = await all(client, { fromMs: HOUR, untilMs: HOUR + 3_600_000, status: 'active' }, fast)
  t.equal(ids.length, 50, 'all five pages')
  t.equal(threatstack.requests.filter((r) => r.rateLimited === true).length, 0, 'never answered 429')
})

t.test('a 429 is waited out as its Retry-After says, then the listing goes on', async (t) => {
  const { client, threatstack } = await setup(t)
  threatstack.raiseAlerts({ count: 30, fromMs: HOUR, untilMs: HOUR + 3_600_000, seed: 4, dismissedShare: 0 })
  threatstack.setPageSize(10)
  await threatstack.failWith('json-429', 2, { retryAfter: '1' })
  const retries: number[] = []
  const observed = { ...client, observer: { request () {}, retry () { retries.push(1) } } }
  const ids = await all(observed, { fromMs: HOUR, untilMs: HOUR + 3_600_000, status: 'active' }, fast)
  t.equal(ids.length, 30)
  t.equal(retries.length, 2, 'two retries, one per 429')
  t.equal(threatstack.requests.filter((r) => r.fault === 'json-429').length, 2)
})

t.test('bounded retries end in our typed errors', async (t) => {
  const cases = [
    { mode: 'json-429' as const, type: ThreatStackAPIError, status: 503 },
    { mode: 'json-500' as const, type: ThreatStackAPIError, status: 502 },
    { mode: 'html-503' as const, type: ThreatStackRequestError, status: 502 },
    { mode: 'invalid-json' as const, type: ThreatStackRequestError, status: 502 },
    { mode: 'refused' as const, type: ThreatStackRequestError, status: 502 }
  ]
  for (const c of cases) {
    const { client, threatstack } = await setup(t)
    await threatstack.failWith(c.mode, Number.POSITIVE_INFINITY, { retryAfter: '1' })
    const err = await all(client, { fromMs: HOUR, untilMs: HOUR + 3_600_000, status: 'active' }, { ...fast, retries: 2 }).catch((e: unknown) => e)
    t.type(err, c.type, c.mode)
    t.equal((err as ThreatStackAPIError).statusCode, c.status, `${c.mode}: status`)
    assertNoLeak(t, (err as Error).message)
    if (c.mode !== 'refused' && c.mode !== 'invalid-json') t.equal(threatstack.requests.length, 3, `${c.mode}: 1 try + 2 retries`)
  }
})

t.test('a 401 is not retried; a Retry-After beyond the longest wait ends the listing', async (t) => {
  const { client, threatstack } = await setup(t)
  await threatstack.failWith('json-401')
  const err = await all(client, { fromMs: HOUR, untilMs: HOUR + 3_600_000, status: 'active' }, fast).catch((e: unknown) => e)
  t.type(err, ThreatStackAPIError)
  t.equal(threatstack.requests.length, 1)
  await threatstack.failWith('json-429', 1, { retryAfter: '600' })
  const throttled = await all(client, { fromMs: HOUR, untilMs: HOUR + 3_600_000, status: 'active' }, { ...fast, maxWaitMs: 1000 }).catch((e: unknown) => e)
  t.match(throttled, { name: 'ThreatStackAPIError', upstreamStatus: 429 })
})

t.test('an abort stops a wait at once', async (t) => {
  const { client, threatstack } = await setup(t)
  await threatstack.failWith('json-429', 1, { retryAfter: '60' })
  const controller = new AbortController()
  const listing = all(client, { fromMs: HOUR, untilMs: HOUR + 3_600_000, status: 'active' }, { signal: controller.signal })
  while (threatstack.requests.length === 0) await new Promise((resolve) => setTimeout(resolve, 10))
  controller.abort(new Error('stopping'))
  await t.rejects(listing, { message: 'stopping' })
})

t.test('GET /alerts/<id> serves a raised alert; knownOnly makes other ids 404', async (t) => {
  const { threatstack, client } = await setup(t)
  const [alert] = threatstack.raiseAlerts({ count: 1, fromMs: HOUR, untilMs: HOUR + 1000, seed: 9 })
  const { fetchAlert } = await import('../../services/threatstack.js')
  t.same(await fetchAlert(client, alert?.id as string), alert)
  threatstack.knownOnly(true)
  await t.rejects(fetchAlert(client, 'abcdef012345'), { name: 'ThreatStackAPIError', upstreamStatus: 404 })
})

t.test('a list page is read as an alert is: one nested too deeply is Threat Stack failing, not alerts to archive', async (t) => {
  const { client, threatstack } = await setup(t)
  const deep = JSON.parse(`${'['.repeat(40)}${']'.repeat(40)}`) as unknown
  threatstack.raiseAlert({ id: 'deep00000001', createdAt: HOUR + 1000, title: deep })
  const err = await all(client, { fromMs: HOUR, untilMs: HOUR + 3_600_000, status: 'active' }, { ...fast, retries: 0 }).catch((e: unknown) => e)
  t.type(err, ThreatStackRequestError)
  t.match(err, { statusCode: 502, upstreamStatus: 200 })
  t.match(String(((err as Error).cause as Error | undefined)?.message), /^GET \/alerts \(list\) answered 200 \(application\/json[^)]*\): /, 'the answer, for the log')
  t.match(String((((err as Error).cause as Error | undefined)?.cause as Error | undefined)?.message), /nested deeper than 32 levels/)
  assertNoLeak(t, (err as Error).message)
})
