// The sweeper as the app runs it: on its own every SWEEP_INTERVAL_S, with its metrics and its
// log line, off with the legacy key's backfill or SWEEP_INTERVAL_S=0, and stopped by close with
// the hour it left half done finished by the next app. s3rver and the Threat Stack simulator.
import t from 'tap'
import Fastify from 'fastify'
import app, { serverOptions } from '../../app.js'
import { loadConfig } from '../../config.js'
import { entryCreatedMs } from '../../services/backfill.js'
import { alertKey, webhookKey } from '../../services/keys.js'
import { HOUR_MS, hourStart, ledgerKey, type Ledger } from '../../services/ledger.js'
import { build, BEARER } from '../helpers/build.js'

const SWEEPING = { SWEEP_INTERVAL_S: '1', BACKFILL_DELAY_MIN: '0', SWEEP_LOOKBACK_HOURS: '2' }
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/** Polls `fn` until it gives a value: at most `tries` times, 250 ms apart. */
async function until<T> (fn: () => Promise<T | undefined>, tries = 120): Promise<T | undefined> {
  for (let i = 0; i < tries; i++) {
    const value = await fn()
    if (value !== undefined) return value
    await sleep(250)
  }
  return undefined
}

/** The previous hour: closed at once with BACKFILL_DELAY_MIN=0. */
const previousHour = (): number => hourStart(Date.now()) - HOUR_MS

t.test('the app sweeps on its own: missing alerts archived, the ledger written, metrics and one log line per sweep', async (t) => {
  const { app, threatstack, readObject, logs } = await build(t, { env: SWEEPING })
  const hour = previousHour()
  const raised = threatstack.raiseAlerts({ count: 12, fromMs: hour, untilMs: hour + HOUR_MS, seed: 21 })
  const ledger = await until(async () => {
    const found = await readObject(ledgerKey('', hour))
    const value = found === undefined ? undefined : JSON.parse(found.body) as Ledger
    return value?.threatstack.total === 12 ? value : undefined
  })
  t.match(ledger, { missing: [], pending: [], complete: true, archived: { total: 12, viaBackfill: 12 } })
  for (const a of raised) {
    t.ok(await readObject(webhookKey('', a.id as string, entryCreatedMs(a))), 'record')
    t.ok(await readObject(alertKey('', a.id as string)), 'full alert')
  }
  const metrics = (await app.inject({ url: '/metrics', headers: BEARER.read })).body
  t.match(metrics, /threatstack_to_s3_alerts_backfilled_total 12/)
  t.match(metrics, /threatstack_to_s3_alerts_missing 0/)
  t.match(metrics, /threatstack_to_s3_sweep_duration_seconds_count [1-9]/)
  t.match(metrics, /threatstack_to_s3_table_days_compacted_total \d+/)
  const line = logs.find((l) => l.msg === 'sweep done' && Number(l.backfilled) > 0)
  t.match(line, { level: 30, hoursChecked: Number, backfilled: 12, missing: 0, compacted: Number, compactFailed: 0 })
  t.notOk(logs.some((l) => l.msg === 'sweep done' && JSON.stringify(l).includes(raised[0]?.id as string)), 'no alert ids in the sweep line')
})

t.test('the legacy key: one log line at start says backfill is off; nothing is listed', async (t) => {
  const { threatstack, readObject, logs } = await build(t, { hawk: false, env: SWEEPING })
  const hour = previousHour()
  threatstack.raiseAlerts({ count: 3, fromMs: hour, untilMs: hour + HOUR_MS, seed: 22 })
  t.ok(await until(async () => logs.filter((l) => l.msg === 'sweep done').length >= 2 ? true : undefined), 'two sweeps done')
  t.equal(logs.filter((l) => String(l.msg).startsWith('backfill is off')).length, 1, 'said once')
  t.equal(threatstack.requests.filter((r) => r.path.includes('from=')).length, 0, 'the list API is never called')
  t.equal(await readObject(ledgerKey('', hour)), undefined, 'no ledger')
})

t.test('SWEEP_INTERVAL_S=0: no sweep, no digest, nothing asked of Threat Stack', async (t) => {
  const { threatstack, readObject, logs } = await build(t, { env: { ...SWEEPING, SWEEP_INTERVAL_S: '0' } })
  const hour = previousHour()
  threatstack.raiseAlerts({ count: 3, fromMs: hour, untilMs: hour + HOUR_MS, seed: 23 })
  // Three intervals of the setting above: a sweep would have run by then.
  await sleep(3000)
  t.equal(threatstack.requests.length, 0)
  t.notOk(logs.some((l) => l.msg === 'sweep done'))
  t.ok(logs.some((l) => String(l.msg).startsWith('the sweeper is off')), 'says so at start')
  t.equal(await readObject(ledgerKey('', hour)), undefined, 'no ledger')
})

t.test('close during a sweep stops it within the shutdown deadline; the next app finishes the hour', async (t) => {
  const built = await build(t, { env: { ...SWEEPING, ARCHIVE_CONCURRENCY: '1' } })
  const { threatstack, readObject } = built
  const hour = previousHour()
  const raised = threatstack.raiseAlerts({ count: 40, fromMs: hour, untilMs: hour + HOUR_MS, seed: 24 })
  threatstack.setLatency(150)
  const fetches = (): number => threatstack.requests.filter((r) => /\/alerts\/[^/?]+$/.test(r.path)).length
  t.ok(await until(async () => fetches() >= 2 ? true : undefined), 'the sweep is backfilling')
  const deadline = built.config.server.shutdownGraceMs
  let timer: NodeJS.Timeout | undefined
  const closed = await Promise.race([
    built.app.close().then(() => 'closed'),
    new Promise((resolve) => { timer = setTimeout(() => resolve('deadline passed'), deadline) })
  ])
  clearTimeout(timer)
  t.equal(closed, 'closed', 'closed within SHUTDOWN_GRACE_MS')
  const atClose = fetches()
  t.ok(atClose < raised.length, 'the hour was left half done')
  t.equal(await readObject(ledgerKey('', hour)), undefined, 'no ledger for it')

  threatstack.setLatency(0)
  const config = loadConfig({ ...built.env, ...SWEEPING })
  const next = Fastify({ ...serverOptions(config), logger: false })
  await next.register(app, { config })
  await next.ready()
  t.teardown(async () => next.close())
  const ledger = await until(async () => {
    const found = await readObject(ledgerKey('', hour))
    return found === undefined ? undefined : JSON.parse(found.body) as Ledger
  })
  t.match(ledger, { missing: [], pending: [], complete: true, archived: { total: 40 } })
  for (const a of raised) t.ok(await readObject(alertKey('', a.id as string)), 'full alert')
})
