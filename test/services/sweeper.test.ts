// One sweep over the window, on s3rver and the Threat Stack simulator (and on moto where the
// leases must really exclude): closed hours are backfilled and ledgered, open ones completed,
// hours re-checked on their schedule, replicas share hours, an aborted sweep is resumed, and
// closed days whose ledgers are all written are compacted into the table tier (again when they change).
import t from 'tap'
import { loadConfig } from '../../config.js'
import { createS3Client, storeOf } from '../../services/s3-client.js'
import { alertKey, webhookKey } from '../../services/keys.js'
import { exists, putJson, type Store } from '../../services/storage.js'
import { closeThreatStackClient, createThreatStackClient, type ThreatStackClient } from '../../services/threatstack.js'
import { entryCreatedMs } from '../../services/backfill.js'
import { HOUR_MS, readLedger } from '../../services/ledger.js'
import { ledgersOf, nextCheckMs, sweepOnce, windowDays, windowHours, type SweepDeps } from '../../services/sweeper.js'
import { dayLeaseName, manifestKey, partKey, readManifest } from '../../services/tables.js'
import { queryAlerts } from '../../services/query.js'
import { claimLease, releaseLease } from '../../services/leases.js'
import { motoStore, startMoto, withMoto } from '../helpers/moto.js'
import { startUpstreams, type Upstreams } from '../helpers/build.js'

type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

const HOUR = Date.UTC(2026, 10, 30, 10)
/** 20 minutes into the hour after next: HOUR and HOUR + 1 h are closed (delay 15 min), HOUR + 2 h is open. */
const NOW = HOUR + 2 * HOUR_MS + 20 * 60_000

/** An S3 call the sweeper made: the command and the key (or listing prefix) it named. */
interface Call { command: string, key: string | undefined }

async function setup (t: Tap, store?: Store): Promise<Upstreams & { store: Store, client: ThreatStackClient, calls: Call[], onCall: { fn?: (c: Call) => void }, deps: (owner: string) => SweepDeps }> {
  const upstreams = await startUpstreams(t)
  const config = loadConfig(upstreams.env)
  const s3 = createS3Client(config.s3)
  const calls: Call[] = []
  const onCall: { fn?: (c: Call) => void } = {}
  s3.middlewareStack.add((next, context) => async (args) => {
    const call = { command: context.commandName ?? '', key: (args.input as { Key?: string, Prefix?: string }).Key ?? (args.input as { Prefix?: string }).Prefix }
    calls.push(call)
    onCall.fn?.(call)
    return await next(args)
  }, { step: 'initialize', name: 'sweeperTestCalls' })
  const own = storeOf(config.s3, s3)
  const client = createThreatStackClient(config.threatstack)
  t.teardown(async () => {
    s3.destroy()
    await closeThreatStackClient(client)
  })
  const used = store ?? own
  return {
    ...upstreams,
    store: used,
    client,
    calls,
    onCall,
    deps: (owner) => ({
      store: used,
      threatstack: client,
      concurrency: 4,
      list: { baseDelayMs: 1, maxDelayMs: 5 },
      owner,
      backfill: true,
      lookbackHours: 3,
      backfillDelayMs: 15 * 60_000,
      intervalMs: 60_000
    })
  }
}

async function archiveAsWebhook (store: Store, alerts: Array<Record<string, unknown>>, full: boolean): Promise<void> {
  for (const a of alerts) {
    const ms = entryCreatedMs(a)
    await putJson(store, webhookKey(store.prefix, a.id as string, ms), { id: a.id, created_at: String(ms) })
    if (full) await putJson(store, alertKey(store.prefix, a.id as string), a)
  }
}

const ids = (alerts: Array<Record<string, unknown>>): string[] => alerts.map((a) => a.id as string).sort()

t.test('the schedule: incomplete hours every sweep, complete ones when they have aged as much again', async (t) => {
  const end = HOUR + HOUR_MS
  const at = (ms: number): string => new Date(ms).toISOString()
  t.equal(nextCheckMs(HOUR, { checkedAt: at(end + 15 * 60_000), missing: [], pending: [] }, 60_000), end + 30 * 60_000)
  t.equal(nextCheckMs(HOUR, { checkedAt: at(end + 4 * HOUR_MS), missing: [], pending: [] }, 60_000), end + 8 * HOUR_MS)
  t.equal(nextCheckMs(HOUR, { checkedAt: at(end), missing: [], pending: [] }, 60_000), end + 60_000, 'never sooner than one interval')
  t.equal(nextCheckMs(HOUR, { checkedAt: at(end + HOUR_MS), missing: ['x'], pending: [] }, 60_000), Number.NEGATIVE_INFINITY)
  t.equal(nextCheckMs(HOUR, { checkedAt: at(end + HOUR_MS), missing: [], pending: ['x'] }, 60_000), Number.NEGATIVE_INFINITY)
  t.same(windowHours(NOW, 3), [HOUR, HOUR + HOUR_MS, HOUR + 2 * HOUR_MS], 'the window ends with the current hour')
})

t.test('a closed hour with alerts missing from the archive gets them in one sweep; its ledger says 0 missing', async (t) => {
  const { store, threatstack, deps } = await setup(t)
  const raised = threatstack.raiseAlerts({ count: 20, fromMs: HOUR, untilMs: HOUR + HOUR_MS, seed: 3 })
  const open = threatstack.raiseAlerts({ count: 4, fromMs: HOUR + 2 * HOUR_MS, untilMs: HOUR + 2 * HOUR_MS + 10 * 60_000, seed: 4 })
  await archiveAsWebhook(store, raised.slice(0, 10), true)
  await archiveAsWebhook(store, raised.slice(10, 14), false)
  // The open hour: records without their full alert, and two alerts no webhook brought (yet).
  await archiveAsWebhook(store, open.slice(0, 2), false)

  const report = await sweepOnce(deps('replica-a'), NOW)
  t.match(report, { hoursChecked: 3, hoursHeld: 0, hoursFailed: 0, backfilled: 6, enriched: 4 + 2, missing: 0, pending: 0, aborted: false })
  for (const a of raised) {
    t.ok(await exists(store, webhookKey('', a.id as string, entryCreatedMs(a))), 'record')
    t.ok(await exists(store, alertKey('', a.id as string)), 'full alert')
  }
  t.ok(await exists(store, alertKey('', open[0]?.id as string)), 'an open hour\'s record is completed')
  t.notOk(await exists(store, webhookKey('', open[3]?.id as string, entryCreatedMs(open[3] ?? {}))), 'an open hour is not backfilled yet')
  t.match(await readLedger(store, HOUR), { checks: 1, complete: true, missing: [], pending: [], threatstack: { total: 20 }, archived: { total: 20, viaWebhook: 14, viaBackfill: 6 } })
  t.same((await readLedger(store, HOUR))?.backfilled, ids(raised.slice(14)))
  t.match(await readLedger(store, HOUR + HOUR_MS), { checks: 1, complete: true, threatstack: { total: 0 } })
  t.equal(await readLedger(store, HOUR + 2 * HOUR_MS), undefined, 'no ledger for an open hour')

  const lists = (): number => threatstack.requests.filter((r) => r.path.includes('from=')).length
  const before = lists()
  const again = await sweepOnce(deps('replica-a'), NOW + 60_000)
  t.equal(lists(), before, 'a complete hour is not listed again before its re-check')
  t.match(again, { backfilled: 0, missing: 0 })

  // A late alert of the closed hour: caught at the re-check (the hour was checked 80 min after its end: again at 160 min).
  const late = { ...raised[0], id: 'late0000000000000001' }
  threatstack.raiseAlert(late)
  const wide = { ...deps('replica-b'), lookbackHours: 6 }
  // The hour that was open is closed by then: its two alerts no webhook brought are backfilled.
  t.match(await sweepOnce(wide, HOUR + HOUR_MS + 158 * 60_000), { backfilled: 2 }, 'the late alert\'s hour is not yet due')
  t.match(await readLedger(store, HOUR), { checks: 1 })
  t.match(await sweepOnce(wide, HOUR + HOUR_MS + 162 * 60_000), { backfilled: 1 }, 'the re-check catches it')
  t.match(await readLedger(store, HOUR), { checks: 2, missing: [], threatstack: { total: 21 }, archived: { viaBackfill: 7 } })
})

t.test('Threat Stack down: the hour fails, is counted, and the next sweep does it', async (t) => {
  const { store, threatstack, deps } = await setup(t)
  threatstack.raiseAlerts({ count: 5, fromMs: HOUR, untilMs: HOUR + HOUR_MS, seed: 5 })
  await threatstack.failWith('json-500')
  const report = await sweepOnce({ ...deps('a'), lookbackHours: 2 }, HOUR + HOUR_MS + 20 * 60_000)
  t.match(report, { hoursChecked: 1, hoursFailed: 1, backfilled: 0 }, 'the open hour only')
  t.equal(await readLedger(store, HOUR), undefined)
  await threatstack.heal()
  t.match(await sweepOnce({ ...deps('a'), lookbackHours: 2 }, HOUR + HOUR_MS + 21 * 60_000), { hoursChecked: 2, hoursFailed: 0, backfilled: 5, missing: 0 })
})

t.test('an aborted sweep leaves its hour for the next one, which finishes it', async (t) => {
  const { store, threatstack, deps } = await setup(t)
  const raised = threatstack.raiseAlerts({ count: 30, fromMs: HOUR, untilMs: HOUR + HOUR_MS, seed: 6 })
  threatstack.setLatency(40)
  const controller = new AbortController()
  const d = { ...deps('a'), concurrency: 1, lookbackHours: 2 }
  let fetched = 0
  const report = await sweepOnce({ ...d, onBackfilled: () => { if (++fetched === 3) controller.abort() } }, HOUR + HOUR_MS + 20 * 60_000, { signal: controller.signal })
  t.equal(report.aborted, true)
  t.equal(await readLedger(store, HOUR), undefined, 'no ledger for a half-done hour')
  threatstack.setLatency(0)
  const next = await sweepOnce(d, HOUR + HOUR_MS + 21 * 60_000)
  t.match(next, { hoursChecked: 2, missing: 0, aborted: false })
  t.equal(next.backfilled + fetched, raised.length, 'each alert backfilled once over the two sweeps')
  t.match(await readLedger(store, HOUR), { complete: true, missing: [], pending: [], archived: { total: 30 } })
})

t.test('the legacy key: records are completed, nothing is listed, no ledger', async (t) => {
  const { store, threatstack, deps } = await setup(t)
  const raised = threatstack.raiseAlerts({ count: 4, fromMs: HOUR, untilMs: HOUR + HOUR_MS, seed: 7 })
  await archiveAsWebhook(store, raised.slice(0, 2), false)
  const report = await sweepOnce({ ...deps('a'), backfill: false, enrichedAt: new Map() }, NOW)
  t.match(report, { enriched: 2, backfilled: 0 })
  t.equal(threatstack.requests.filter((r) => r.path.includes('from=')).length, 0, 'the list API is never called')
  t.equal(await readLedger(store, HOUR), undefined)
  t.notOk(await exists(store, webhookKey('', raised[3]?.id as string, entryCreatedMs(raised[3] ?? {}))))
})

withMoto(t, 'two replicas sweeping the same window at once: each hour is checked once, each alert backfilled once', async (t, executable) => {
  const moto = await startMoto(t, executable, [{ name: 'sweep-bucket' }])
  const store = motoStore(t, moto, 'sweep-bucket')
  const { threatstack, deps } = await setup(t, store)
  const raised = threatstack.raiseAlerts({ count: 24, fromMs: HOUR, untilMs: HOUR + 2 * HOUR_MS, seed: 8 })
  await archiveAsWebhook(store, raised.slice(0, 8), true)
  const [a, b] = await Promise.all([sweepOnce(deps('replica-a'), NOW), sweepOnce(deps('replica-b'), NOW)])
  t.equal((a?.backfilled ?? 0) + (b?.backfilled ?? 0), 16, 'sixteen alerts backfilled in all')
  t.equal((a?.hoursChecked ?? 0) + (b?.hoursChecked ?? 0) + (a?.hoursHeld ?? 0) + (b?.hoursHeld ?? 0) <= 6, true)
  t.match(await readLedger(store, HOUR), { checks: 1, missing: [] }, 'the first hour checked once')
  t.match(await readLedger(store, HOUR + HOUR_MS), { checks: 1, missing: [] }, 'the second hour checked once')
  const fullFetches = threatstack.requests.filter((r) => /\/alerts\/[^/?]+$/.test(r.path)).length
  t.equal(fullFetches, 16, 'each backfilled alert fetched once')
})

// The day of the table tier tests: swept 20 min after its end, the window covering it all.
const DAY = Date.UTC(2026, 10, 29)
const DAY_END = DAY + 24 * HOUR_MS
const day = '2026-11-29'

t.test('the days of the window: those it touches that are over', async (t) => {
  t.same(windowDays(DAY_END + 20 * 60_000, 26, DAY_END + 5 * 60_000), [DAY - 24 * HOUR_MS, DAY], 'the day before touches the window too')
  t.same(windowDays(DAY_END + 10 * 60_000, 26, DAY_END - 5 * 60_000), [DAY - 24 * HOUR_MS], 'the last hour is not closed yet')
  const ledger = { version: 1 as const, hour: 'h', checkedAt: 'a', checks: 1, complete: true, threatstack: { total: 1, active: 1, dismissed: 0 }, archived: { total: 1, viaWebhook: 1, viaBackfill: 0 }, missing: [], pending: [], unknown: [], backfilled: [], unknownTries: {} }
  t.equal(ledgersOf([ledger]).hash, ledgersOf([{ ...ledger, checkedAt: 'b', checks: 2, threatstack: { total: 1, active: 0, dismissed: 1 } }]).hash, 'a re-check that finds nothing new is the same fingerprint')
  t.not(ledgersOf([ledger]).hash, ledgersOf([{ ...ledger, pending: ['x'] }]).hash)
  t.match(ledgersOf([ledger, { ...ledger, missing: ['m'], complete: false }]), { complete: false, missing: 1, pending: 0 })
})

t.test('a swept closed day gets its table; a sweep with nothing changed writes nothing and reads no alert; a late alert rewrites it', async (t) => {
  const { store, threatstack, calls, deps } = await setup(t)
  const raised = threatstack.raiseAlerts({ count: 12, fromMs: DAY, untilMs: DAY_END - HOUR_MS, seed: 11 })
  await archiveAsWebhook(store, raised.slice(0, 8), true)
  const d = { ...deps('a'), lookbackHours: 26, tables: { concurrency: 4 } }
  const now = DAY_END + 20 * 60_000

  const first = await sweepOnce(d, now)
  t.match(first, { hoursFailed: 0, backfilled: 4, missing: 0, compacted: 1, compactFailed: 0 })
  const manifest = await readManifest(store, day)
  t.match(manifest, { rows: 12, withoutFullAlert: 0, parts: ['part-0.parquet'], ledgers: { complete: true, missing: 0, pending: 0 } })
  t.ok(await exists(store, partKey('', day, 0)))
  t.equal(await readManifest(store, '2026-11-28'), undefined, 'the day before: 23 of its hours were never checked, so it is not compacted')

  calls.length = 0
  const second = await sweepOnce(d, now + 60_000)
  t.match(second, { compacted: 0, compactFailed: 0 })
  t.same(calls.filter((c) => c.command === 'PutObjectCommand' && c.key?.startsWith('tables/') === true), [], 'nothing of the table tier is written')
  t.same(calls.filter((c) => c.key?.startsWith('alerts/') === true || c.key?.startsWith('webhooks/2026/11/29') === true || (c.key?.startsWith('tables/') === true && c.key !== manifestKey('', day))), [],
    'no full alert read, no listing of the day: its ledgers tell it is unchanged')
  t.same(calls.filter((c) => c.key === manifestKey('', day)).length, 1, 'one read of the manifest')

  // A late alert of the day's last hour, found at its re-check (checked 20 min after its end: due again at 40 min).
  const late = threatstack.raiseAlerts({ count: 1, fromMs: DAY_END - 30 * 60_000, untilMs: DAY_END - 29 * 60_000, seed: 12 })
  const third = await sweepOnce(d, DAY_END + 41 * 60_000)
  t.match(third, { backfilled: 1, compacted: 1 })
  t.match(await readManifest(store, day), { rows: 13 })
  const res = await queryAlerts({ store, concurrency: 4 }, { startMs: DAY, endMs: DAY_END }, 'SELECT id FROM alerts ORDER BY id')
  t.same(res.rows.map((r) => r[0]), ids([...raised, ...late]))
  t.match(res.load, { compactedDays: 1, staleDays: 0, jsonAlerts: 0 }, 'answered from the rewritten parts')
})

t.test('a record Threat Stack does not know, whose full alert never comes, does not hold its day back', async (t) => {
  const { store, threatstack, deps } = await setup(t)
  const raised = threatstack.raiseAlerts({ count: 2, fromMs: DAY + HOUR_MS, untilMs: DAY + 2 * HOUR_MS, seed: 13 })
  await archiveAsWebhook(store, raised, true)
  threatstack.knownOnly(true)
  await archiveAsWebhook(store, [{ id: 'gone0000000000000001', created_at: DAY + 3 * HOUR_MS }], false)
  const d = { ...deps('a'), lookbackHours: 25, tables: { concurrency: 4 } }
  t.match(await sweepOnce(d, DAY_END + 20 * 60_000), { compacted: 1 })
  t.match(await readManifest(store, day), { rows: 3, withoutFullAlert: 1 }, 'its row comes from the record')
  t.match(await readLedger(store, DAY + 3 * HOUR_MS), { unknown: ['gone0000000000000001'] })
})

t.test('a day not over is not compacted', async (t) => {
  const { store, threatstack, deps } = await setup(t)
  threatstack.raiseAlerts({ count: 4, fromMs: DAY, untilMs: DAY_END - HOUR_MS, seed: 14 })
  const d = { ...deps('a'), lookbackHours: 25, tables: { concurrency: 4 } }
  // 10 min after the day's end: its last hour is not closed (15 min delay), so not checked.
  t.match(await sweepOnce(d, DAY_END + 10 * 60_000), { compacted: 0 })
  t.equal(await readManifest(store, day), undefined)
  t.equal(await readLedger(store, DAY_END - HOUR_MS), undefined, 'the last hour has no ledger yet')
  t.match(await sweepOnce(d, DAY_END + 20 * 60_000), { compacted: 1 }, 'once it is, the day is')
})

withMoto(t, 'a day whose lease another writer holds (the compact command) waits for the next sweep', async (t, executable) => {
  const moto = await startMoto(t, executable, [{ name: 'sweep-bucket' }])
  const store = motoStore(t, moto, 'sweep-bucket')
  const { threatstack, deps } = await setup(t, store)
  threatstack.raiseAlerts({ count: 3, fromMs: DAY, untilMs: DAY_END - HOUR_MS, seed: 15 })
  const d = { ...deps('replica-a'), lookbackHours: 25, tables: { concurrency: 4 } }
  const held = await claimLease(store, dayLeaseName(day), { owner: 'compact-cli', ttlMs: 60_000 })
  t.ok(held)
  t.match(await sweepOnce(d, DAY_END + 20 * 60_000), { compacted: 0, compactFailed: 0 })
  t.equal(await readManifest(store, day), undefined)
  await releaseLease(store, held!)
  t.match(await sweepOnce(d, DAY_END + 21 * 60_000), { compacted: 1 })
  t.match(await readManifest(store, day), { rows: 3 })
})

t.test('a sweep stopped while it compacts a day writes nothing of it; the next sweep compacts it', async (t) => {
  const { store, threatstack, onCall, deps } = await setup(t)
  const raised = threatstack.raiseAlerts({ count: 20, fromMs: DAY, untilMs: DAY_END - HOUR_MS, seed: 16 })
  await archiveAsWebhook(store, raised, true)
  const d = { ...deps('a'), lookbackHours: 25 }
  const now = DAY_END + 20 * 60_000
  t.match(await sweepOnce(d, now), { compacted: 0 }, 'no table step configured: ledgers only')
  const controller = new AbortController()
  // The first full alert the compaction reads stops the sweep.
  onCall.fn = (c) => { if (c.key?.startsWith('alerts/') === true) controller.abort() }
  const stopped = await sweepOnce({ ...d, tables: { concurrency: 1 } }, now + 60_000, { signal: controller.signal })
  t.match(stopped, { aborted: true, compacted: 0, compactFailed: 0 })
  t.equal(await readManifest(store, day), undefined)
  t.notOk(await exists(store, partKey('', day, 0)))
  onCall.fn = undefined
  t.match(await sweepOnce({ ...d, tables: { concurrency: 1 } }, now + 120_000), { aborted: false, compacted: 1 })
  t.match(await readManifest(store, day), { rows: 20 })
})
