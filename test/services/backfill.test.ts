import t from 'tap'
import { ListObjectsV2Command } from '@aws-sdk/client-s3'
import { loadConfig } from '../../config.js'
import { createS3Client, storeOf } from '../../services/s3-client.js'
import { alertKey, webhookKey } from '../../services/keys.js'
import { putJson, type Store } from '../../services/storage.js'
import { closeThreatStackClient, createThreatStackClient, type ThreatStackClient } from '../../services/threatstack.js'
import { backfillHour, entryCreatedMs, type BackfillDeps } from '../../services/backfill.js'
import { ledgerKey, readLedger } from '../../services/ledger.js'
import { claimLease, leaseKey, putConditional, releaseLease } from '../../services/leases.js'
import { motoStore, startMoto, withMoto } from '../helpers/moto.js'
import { searchAlerts } from '../../services/search.js'
import { startUpstreams, type Upstreams } from '../helpers/build.js'

type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

const HOUR = Date.UTC(2026, 10, 30, 10)

interface Setup extends Upstreams { store: Store, client: ThreatStackClient, deps: BackfillDeps, keys: () => Promise<string[]> }

async function setup (t: Tap, env: Record<string, string> = {}): Promise<Setup> {
  const upstreams = await startUpstreams(t)
  const config = loadConfig({ ...upstreams.env, ...env })
  const s3 = createS3Client(config.s3)
  const store = storeOf(config.s3, s3)
  const client = createThreatStackClient(config.threatstack)
  t.teardown(async () => {
    s3.destroy()
    await closeThreatStackClient(client)
  })
  const keys = async (): Promise<string[]> => {
    const res = await s3.send(new ListObjectsV2Command({ Bucket: store.bucket }))
    return (res.Contents ?? []).map((o) => o.Key as string).sort()
  }
  return { ...upstreams, store, client, deps: { store, threatstack: client, concurrency: 4, list: { baseDelayMs: 1, maxDelayMs: 5 } }, keys }
}

/** Archives alerts as a webhook would have: the record, and the full alert. */
async function archiveAsWebhook (store: Store, alerts: Array<Record<string, unknown>>, full = true): Promise<void> {
  for (const a of alerts) {
    const ms = entryCreatedMs(a)
    await putJson(store, webhookKey(store.prefix, a.id as string, ms), { id: a.id, created_at: String(ms), title: a.title })
    if (full) await putJson(store, alertKey(store.prefix, a.id as string), a)
  }
}

t.test('an hour with some alerts missing: each is archived, record then full alert, and the ledger says so', async (t) => {
  const { store, threatstack, deps, readObject } = await setupWithReader(t)
  const raised = threatstack.raiseAlerts({ count: 40, fromMs: HOUR, untilMs: HOUR + 3_600_000, seed: 11 })
  threatstack.raiseAlerts({ count: 3, fromMs: HOUR + 3_600_000, untilMs: HOUR + 7_200_000, seed: 12 })
  const viaWebhook = raised.slice(0, 30)
  const lacking = raised.slice(30)
  await archiveAsWebhook(store, viaWebhook)

  const report = await backfillHour(deps, HOUR, { now: () => Date.UTC(2026, 10, 30, 12) })
  t.same(report.backfilled, lacking.map((a) => a.id as string).sort(), 'exactly the lacking ones')
  t.equal(report.seen, 40)
  t.same(report.failed, [])
  for (const a of lacking) {
    const ms = entryCreatedMs(a)
    const record = await readObject(webhookKey('', a.id as string, ms))
    const entry = JSON.parse(record?.body ?? 'null') as Record<string, unknown>
    t.equal(entry.createdAt, a.createdAt, 'the list entry as the API gave it')
    t.equal(entry.created_at, ms, 'with created_at added for search')
    t.notOk('details' in entry, 'the entry, not the full alert')
    t.same(JSON.parse((await readObject(alertKey('', a.id as string)))?.body ?? 'null'), a, 'the full alert')
  }
  const ledger = await readLedger(store, HOUR)
  t.match(ledger, {
    version: 1,
    hour: '2026-11-30T10:00:00.000Z',
    checkedAt: '2026-11-30T12:00:00.000Z',
    checks: 1,
    complete: true,
    threatstack: { total: 40 },
    archived: { total: 40, viaWebhook: 30, viaBackfill: 10 },
    missing: [],
    pending: [],
    unknown: []
  })
  t.equal((ledger?.threatstack.active ?? 0) + (ledger?.threatstack.dismissed ?? 0), 40)
  t.ok((ledger?.threatstack.dismissed ?? 0) > 0, 'both statuses listed')
  t.same(ledger?.backfilled, report.backfilled)

  // Search finds a backfilled alert like any other.
  const page = await searchAlerts({ store, concurrency: 4 }, { startMs: HOUR, endMs: HOUR + 3_600_000 }, { limit: 1000 })
  t.equal(page.alerts.length, 40)
  t.same(page.missing, [])

  t.test('a second run over the complete hour archives nothing and counts the check', async (t) => {
    const again = await backfillHour(deps, HOUR)
    t.same(again.backfilled, [])
    t.same(again.enriched, [])
    const second = await readLedger(store, HOUR)
    t.match(second, { checks: 2, complete: true, archived: { total: 40, viaWebhook: 30, viaBackfill: 10 } })
  })
})

async function setupWithReader (t: Tap): Promise<Setup & { readObject: (key: string) => Promise<{ body: string } | undefined> }> {
  const s = await setup(t)
  const { GetObjectCommand } = await import('@aws-sdk/client-s3')
  const readObject = async (key: string): Promise<{ body: string } | undefined> => {
    try {
      const res = await s.store.s3.send(new GetObjectCommand({ Bucket: s.store.bucket, Key: key }))
      return { body: await res.Body?.transformToString() ?? '' }
    } catch {
      return undefined
    }
  }
  return { ...s, readObject }
}

t.test('dry run: says what would be archived and writes nothing', async (t) => {
  const { store, threatstack, deps, keys } = await setup(t)
  const raised = threatstack.raiseAlerts({ count: 12, fromMs: HOUR, untilMs: HOUR + 3_600_000, seed: 5 })
  await archiveAsWebhook(store, raised.slice(0, 4))
  const before = await keys()
  const report = await backfillHour(deps, HOUR, { dryRun: true })
  t.same(report.backfilled, raised.slice(4).map((a) => a.id as string).sort())
  t.equal(report.written, false)
  t.match(report.ledger, { complete: false, missing: report.backfilled })
  t.same(await keys(), before, 'not one object written, not even the ledger')
  t.equal(threatstack.requests.filter((r) => /\/alerts\/[^?]+$/.test(r.path)).length, 0, 'no full alert fetched')
})

t.test('records without a full alert are completed; one Threat Stack does not know is unknown, tried a bounded number of times', async (t) => {
  const { store, threatstack, deps } = await setup(t)
  const raised = threatstack.raiseAlerts({ count: 5, fromMs: HOUR, untilMs: HOUR + 3_600_000, seed: 6 })
  await archiveAsWebhook(store, raised, false)
  const forged = { id: 'f0f0f0f0forged01', createdAt: new Date(HOUR + 60_000).toISOString(), title: 'forged' }
  await archiveAsWebhook(store, [forged], false)
  threatstack.knownOnly(true)

  const first = await backfillHour(deps, HOUR, { maxUnknownTries: 2 })
  t.same(first.enriched, raised.map((a) => a.id as string).sort(), 'full alerts fetched for the records')
  t.match(first.ledger, { complete: true, unknown: [forged.id], pending: [], archived: { total: 6, viaWebhook: 6, viaBackfill: 0 }, threatstack: { total: 5 } })
  await backfillHour(deps, HOUR, { maxUnknownTries: 2 })
  const fetchesOfForged = (): number => threatstack.requests.filter((r) => r.path.endsWith(`/alerts/${forged.id}`)).length
  t.equal(fetchesOfForged(), 2)
  const third = await backfillHour(deps, HOUR, { maxUnknownTries: 2 })
  t.equal(fetchesOfForged(), 2, 'no more tries after the bound')
  t.same(third.ledger.unknown, [forged.id], 'still reported')
})

t.test('a failed fetch leaves the record stored and the alert pending; the next run completes the hour', async (t) => {
  const { store, threatstack, deps } = await setup(t)
  const raised = threatstack.raiseAlerts({ count: 4, fromMs: HOUR, untilMs: HOUR + 3_600_000, seed: 14, dismissedShare: 0 })
  const ids = raised.map((a) => a.id as string).sort()
  await threatstack.failWith('json-500', 4, { path: /\/alerts\/[^/?]+$/ })
  const report = await backfillHour(deps, HOUR)
  t.same(report.backfilled, ids, 'every record stored')
  t.match(report.ledger, { complete: false, pending: ids, missing: [], archived: { total: 4, viaBackfill: 4 } })
  t.same(report.failed.map((f) => f.reason), ids.map(() => 'ThreatStackAPIError: Failure to communicate with Threat Stack (status 500)'), 'why, in fixed sentences')
  const again = await backfillHour(deps, HOUR)
  t.equal(again.ledger.complete, true, 'resumed and completed')
  t.same(again.ledger.pending, [])
  t.same(again.ledger.missing, [])
  const ledger = await readLedger(store, HOUR)
  t.equal(ledger?.checks, 2)
})

t.test('the list API failing leaves the ledger as it was and throws our typed error', async (t) => {
  const { store, threatstack, deps, keys } = await setup(t)
  threatstack.raiseAlerts({ count: 2, fromMs: HOUR, untilMs: HOUR + 3_600_000, seed: 15 })
  await threatstack.failWith('html-503')
  await t.rejects(backfillHour({ ...deps, list: { ...deps.list, retries: 1 } }, HOUR), { name: 'ThreatStackRequestError' })
  t.same(await keys(), [], 'nothing written')
  t.equal(await readLedger(store, HOUR), undefined)
})

t.test('with a key prefix, everything lands under it', async (t) => {
  const { store, threatstack, deps, keys } = await setup(t, { TS_AWS_S3_PREFIX: 'tenant/a' })
  const [a] = threatstack.raiseAlerts({ count: 1, fromMs: HOUR, untilMs: HOUR + 3_600_000, seed: 16 })
  await backfillHour(deps, HOUR)
  t.same(await keys(), [
    alertKey('tenant/a', a?.id as string),
    ledgerKey('tenant/a', HOUR),
    webhookKey('tenant/a', a?.id as string, entryCreatedMs(a as Record<string, unknown>))
  ].sort())
  t.equal(store.prefix, 'tenant/a')
})

withMoto(t, 'leases on an S3 that enforces conditional writes: claimed once, refused to another owner while valid, taken over once expired, released', async (t, executable) => {
  const store = motoStore(t, await startMoto(t, executable, [{ name: 'lease-bucket' }]), 'lease-bucket')
  const now = Date.UTC(2026, 10, 30, 12)
  const claims = await Promise.all(['replica-a', 'replica-b', 'replica-c'].map(async (owner) =>
    claimLease(store, '2026/11/30/10', { owner, ttlMs: 60_000, nowMs: now })))
  const lease = claims.find((c) => c !== undefined)
  t.equal(claims.filter((c) => c !== undefined).length, 1, 'three replicas at once: one wins')
  t.equal(lease?.key, leaseKey('', '2026/11/30/10'))
  const owner = lease?.owner as string
  t.equal(await claimLease(store, '2026/11/30/10', { owner: owner === 'replica-b' ? 'replica-a' : 'replica-b', ttlMs: 60_000, nowMs: now + 1000 }), undefined)
  const again = await claimLease(store, '2026/11/30/10', { owner, ttlMs: 60_000, nowMs: now + 1000 })
  t.ok(again, 'its owner renews it')
  const taken = await claimLease(store, '2026/11/30/10', { owner: 'replica-d', ttlMs: 60_000, nowMs: now + 120_000 })
  t.match(taken, { owner: 'replica-d' }, 'an expired lease is taken over')
  t.equal(await claimLease(store, '2026/11/30/10', { owner: 'replica-e', ttlMs: 60_000, nowMs: now + 120_000 }), undefined, 'and held')
  await releaseLease(store, taken!)
  t.ok(await claimLease(store, '2026/11/30/10', { owner: 'replica-c', ttlMs: 60_000, nowMs: now + 121_000 }), 'a released lease is free')
})

withMoto(t, 'write-once on an S3 that enforces it: the backfill never overwrites a record a webhook stored meanwhile', async (t, executable) => {
  const store = motoStore(t, await startMoto(t, executable, [{ name: 'lease-bucket' }]), 'lease-bucket')
  const key = webhookKey('', 'abcd1234', HOUR)
  t.ok(await putConditional(store, key, '{"id":"abcd1234","from":"webhook"}', { ifNoneMatch: '*' }))
  t.equal(await putConditional(store, key, '{"id":"abcd1234","from":"backfill"}', { ifNoneMatch: '*' }), undefined, '412 is an answer, not an error')
})

t.test('leases on s3rver (conditions ignored): every claim succeeds, so work may run twice', async (t) => {
  const { store, keys } = await setup(t)
  const now = Date.UTC(2026, 10, 30, 12)
  t.ok(await claimLease(store, 'x', { owner: 'replica-a', ttlMs: 60_000, nowMs: now }))
  // Without enforced conditions the first put always succeeds: work may run twice, harmlessly.
  const second = await claimLease(store, 'x', { owner: 'replica-b', ttlMs: 60_000, nowMs: now })
  t.match(second, { owner: 'replica-b' })
  t.same(await keys(), [leaseKey('', 'x')], 'at [prefix/]ledger/leases/')
})
