// The background enrichment on real parts (s3rver, the Threat Stack simulator): a full alert
// written once and only after its record, a bounded queue that leaves the overflow to the
// sweeper, and a close that lets fetches under way finish within ENRICH_DRAIN_MS, then aborts.
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { BEARER, build } from '../helpers/build.js'
import { CREATED_AT, WEBHOOK_MINUTE, postAlerts } from '../helpers/requests.js'
import { sample } from '../helpers/metrics.js'
import { enrichAlert } from '../../services/enrichment.js'
import { webhookKey } from '../../services/keys.js'

async function eventually (check: () => Promise<boolean>, tries = 150, ms = 100): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    if (await check()) return true
    await sleep(ms)
  }
  return false
}

t.test('enrichAlert completes an alert whose record is stored, and nothing without its record', async (t) => {
  const built = await build(t)
  const deps = { store: built.app.store, threatstack: built.app.threatstack }
  const recordKey = webhookKey('', 'sweep001', CREATED_AT)
  t.equal(await enrichAlert(deps, 'sweep001', recordKey), 'no-record')
  t.equal(built.threatstack.requests.length, 0, 'nothing fetched for an alert without its record')
  t.equal(await built.readObject('alerts/sw/ee/sweep001'), undefined)

  t.equal((await postAlerts(built.app, { id: 'sweep001', created_at: CREATED_AT }, {})).statusCode, 200)
  const stored = await built.readObject('alerts/sw/ee/sweep001')
  t.ok(stored)
  // s3rver does not enforce conditional writes (the integrity tests prove putOnce on a server that does).
  await enrichAlert(deps, 'sweep001', recordKey)
  t.same(await built.readObject('alerts/sw/ee/sweep001'), stored, 'a second completion changes nothing')
})

t.test('a full queue leaves the overflow to the sweeper, counted; every record is stored', async (t) => {
  const built = await build(t, { env: { ENRICH_QUEUE_MAX: '1', ENRICH_WAIT_MS: '0', THREATSTACK_TIMEOUT_MS: '5000' } })
  built.threatstack.setLatency(500)
  const ids = ['full0001', 'full0002', 'full0003']
  const res = await postAlerts(built.app, { alerts: ids.map((id) => ({ id, created_at: CREATED_AT })) })
  t.equal(res.statusCode, 200)
  t.same(res.json(), { success: true, archived: [], pending: ids.map((id) => ({ id })) })
  for (const id of ids) t.ok(await built.readObject(`${WEBHOOK_MINUTE}/${id}`), `record of ${id}`)
  t.equal(built.app.enrichment.size, 1, 'the queue holds its bound')
  const metrics = await built.app.inject({ method: 'GET', url: '/metrics', headers: BEARER.read })
  t.equal(sample(metrics.body, 'threatstack_to_s3_enrichment_deferred_total', { reason: 'full' }), 2, 'the two left to the sweeper are counted')
  t.equal(sample(metrics.body, 'threatstack_to_s3_alerts_pending'), 1, 'pending gauge = queue size')
  t.ok(await eventually(async () => await built.readObject('alerts/fu/ll/full0001') !== undefined), 'the one owed is completed')
  t.equal(await built.readObject('alerts/fu/ll/full0002'), undefined, 'the others wait for the sweeper')
})

t.test('close gives a fetch under way ENRICH_DRAIN_MS: one that ends in time is stored', async (t) => {
  const built = await build(t, { env: { ENRICH_WAIT_MS: '0', ENRICH_DRAIN_MS: '20000', THREATSTACK_TIMEOUT_MS: '10000' } })
  built.threatstack.setLatency(400)
  const res = await postAlerts(built.app, { id: 'drain001', created_at: CREATED_AT })
  t.same(res.json(), { success: true, archived: [], pending: [{ id: 'drain001' }] })
  await built.app.close()
  t.ok(await built.readObject('alerts/dr/ai/drain001'), 'the fetch under way finished before the close did')
  t.equal(built.app.enrichment.size, 0)
})

t.test('close aborts what is still under way at ENRICH_DRAIN_MS: the record stays for the sweeper', async (t) => {
  const built = await build(t, { env: { ENRICH_WAIT_MS: '0', ENRICH_DRAIN_MS: '200', THREATSTACK_TIMEOUT_MS: '30000' } })
  // Far longer than the drain: if close waited for it, the full alert would be stored.
  built.threatstack.setLatency(8000)
  const res = await postAlerts(built.app, { id: 'abort001', created_at: CREATED_AT })
  t.same(res.json(), { success: true, archived: [], pending: [{ id: 'abort001' }] })
  await built.app.close()
  t.equal(built.app.enrichment.size, 0, 'nothing left under way')
  t.ok(await built.readObject(`${WEBHOOK_MINUTE}/abort001`), 'the record stays')
  await sleep(200)
  t.equal(await built.readObject('alerts/ab/or/abort001'), undefined, 'the aborted fetch wrote nothing')
  t.ok(built.logs.some((l) => l.msg === 'full alert left to the sweeper' && l.reason === 'stopped'), 'and says so in the log')
})

t.test('close ends the waits between retries at once', async (t) => {
  const built = await build(t, { env: { ENRICH_DRAIN_MS: '20000', ENRICH_RETRY_MAX_DELAY_MS: '60000', THREATSTACK_RETRY_BASE_MS: '60000' } })
  await built.threatstack.failWith('json-500')
  const res = await postAlerts(built.app, { id: 'sleep001', created_at: CREATED_AT })
  t.equal(res.statusCode, 200)
  t.ok(await eventually(async () => built.app.enrichment.size === 1), 'owed, waiting for its retry')
  const closed = built.app.close().then(() => 'closed')
  // Bounded: a close that waited for the retry would still be waiting at the end of this.
  const first = await Promise.race([closed, sleep(15_000).then(() => 'still waiting')])
  t.equal(first, 'closed', 'the retry wait did not hold the close')
})

t.test('the request never holds the answer for a fetch under way after a record failed', async (t) => {
  const built = await build(t, { s3Proxy: true, env: { ARCHIVE_CONCURRENCY: '2' } })
  await built.s3proxy!.failWith('internal', { match: /^PUT \/[^/]+\/webhooks\/.*bad00001/ })
  const res = await postAlerts(built.app, { alerts: [{ id: 'good0001', created_at: CREATED_AT }, { id: 'bad00001', created_at: CREATED_AT }] })
  t.equal(res.statusCode, 502, 'a record that cannot be stored fails the request: the sender resends')
  t.equal((res.json() as { error: { type: string } }).error.type, 'S3ClientError')
  t.ok(await built.readObject(`${WEBHOOK_MINUTE}/good0001`), 'what was stored stays stored')
  t.equal(await built.readObject(`${WEBHOOK_MINUTE}/bad00001`), undefined)
  t.ok(await eventually(async () => await built.readObject('alerts/go/od/good0001') !== undefined), 'the stored one is still completed')
  await sleep(200)
  t.equal(await built.readObject('alerts/ba/d0/bad00001'), undefined, 'no full alert without its record')
})

t.test('a fetch that fails while its record is still being stored is retried once the record is there, not dropped', async (t) => {
  // Threat Stack answers 503 at once, the record's PUT takes 1.5 s: the queue's first retry
  // comes long before the PUT ends, and must not read the record's absence as a failed PUT.
  const built = await build(t, { s3Proxy: true, env: { THREATSTACK_RETRY_BASE_MS: '20', ENRICH_RETRY_MAX_DELAY_MS: '200', S3_TIMEOUT_MS: '10000' } })
  await built.s3proxy!.failWith('delay', { times: 1, delayMs: 1500, match: /^PUT [^?]*\/webhooks\// })
  await built.threatstack.failWith('html-503')
  const res = await postAlerts(built.app, { id: 'slowrec1', created_at: CREATED_AT }, {})
  t.equal(res.statusCode, 200)
  t.same(res.json().pending.map((p: { id: string }) => p.id), ['slowrec1'])
  t.ok(await built.readObject(`${WEBHOOK_MINUTE}/slowrec1`), 'the record is stored')
  t.equal(built.app.enrichment.size, 1, 'the alert is still owed once its record is stored')
  await built.threatstack.heal()
  t.ok(await eventually(async () => await built.readObject('alerts/sl/ow/slowrec1') !== undefined, 600), 'the background retry stores the full alert')
})

t.test('40 alerts waiting between retries at once: no MaxListenersExceededWarning', async (t) => {
  const warnings: string[] = []
  const onWarning = (w: Error): void => { warnings.push(w.name) }
  process.on('warning', onWarning)
  t.teardown(() => { process.off('warning', onWarning) })
  const built = await build(t, { env: { ENRICH_WAIT_MS: '0', ENRICH_CONCURRENCY: '32', THREATSTACK_TIMEOUT_MS: '10000' } })
  // Threat Stack failing: all 40 wait between retries at once, each listening for the close.
  await built.threatstack.failWith('json-500')
  const alerts = Array.from({ length: 40 }, (_, i) => ({ id: `many${String(i).padStart(4, '0')}`, created_at: CREATED_AT }))
  const res = await postAlerts(built.app, { alerts }, {})
  t.equal(res.statusCode, 200)
  t.equal(res.json().pending.length, 40, 'every full alert owed by the queue')
  await sleep(1000)
  await built.threatstack.heal()
  t.ok(await eventually(async () => built.app.enrichment.size === 0), 'all of them stored')
  await sleep(50) // warnings are emitted on the next tick
  t.same(warnings.filter((w) => w === 'MaxListenersExceededWarning'), [])
})
