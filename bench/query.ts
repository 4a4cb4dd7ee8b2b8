// npm run bench:query — two questions over a synthetic archive, answered three ways: the search
// route paged to the end, `query` over the table tier, `query` over the JSON objects only. Wall
// time and S3 requests side by side in one run; where the table tier's time goes; compaction
// time per day. The archive is written with the service's own storage calls, the three objects
// archiveAlert writes for each alert (the webhook record with putOnce, its search index entry,
// the full alert with putJson), 64 alerts at once, into s3rver on a temp folder.
//   QUERY_BENCH_ALERTS (default 10000), QUERY_BENCH_DAYS (default 10)
//   QUERY_BENCH_SEARCH_DAYS (default: all): the search route pages over the first N days only
//     and its figures are scaled to the whole range (said so in the results)
//   QUERY_BENCH_S3 (default s3rver): or fauxqs, an S3 implementation in memory, several times faster
//   --update-results: write bench/results/query.{md,json,svg} (else .bench/results/)
import Fastify from 'fastify'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import app, { serverOptions } from '../app.js'
import { loadConfig } from '../config.js'
import pLimit from 'p-limit'
import { LOCAL_S3_CREDENTIALS, startFauxqsS3, startLocalS3 } from '../dev/local-s3.js'
import { startThreatStackSimulator } from '../dev/threatstack-simulator.js'
import { alertKey, webhookKey } from '../services/keys.js'
import { putIndexEntry } from '../services/search-index.js'
import { putJson, putOnce } from '../services/storage.js'
import { storeOf } from '../services/s3-client.js'
import { compactDay, dayOf, DAY_MS } from '../services/tables.js'
import { queryAlerts, type AlertsQueryResult } from '../services/query.js'
import { resultsDir, writeQueryResults, type QueryRun } from './report.js'

const ALERTS = Number(process.env.QUERY_BENCH_ALERTS ?? 10_000)
const DAYS = Number(process.env.QUERY_BENCH_DAYS ?? 10)
const SEARCH_DAYS = Math.min(DAYS, Number(process.env.QUERY_BENCH_SEARCH_DAYS ?? DAYS))
const START = Date.UTC(2017, 0, 1)
const END = START + DAYS * DAY_MS
const HOSTS = 50
const BUCKET = 'bench-query'
const READ = 'bench-read-token-0000001'
const INGEST = 'bench-ingest-token-000001'
const HOST = 'host-07'

interface Synthetic { id: string, at: number, severity: number, host: string, rule: string }

/** The i-th alert: spread evenly over the days, severity 1 for one in ten, 50 hosts, 20 rules. */
function synthetic (i: number): Synthetic {
  const at = START + Math.floor((i / ALERTS) * DAYS * DAY_MS) + ((i * 7919) % 60_000)
  const id = Math.floor(at / 1000).toString(16).padStart(8, '0') + i.toString(16).padStart(16, '0')
  return { id, at, severity: i % 10 === 0 ? 1 : i % 3 === 0 ? 3 : 2, host: `host-${String(i % HOSTS).padStart(2, '0')}`, rule: `rule-${i % 20}` }
}

type Question = 'severity' | 'host'
const QUESTIONS: Question[] = ['severity', 'host']

/** The right answers, from the generator itself: every way must give exactly these. */
function expected (question: Question, endMs: number): string {
  const perDay = new Map<string, number>()
  const host: string[] = []
  for (let i = 0; i < ALERTS; i++) {
    const a = synthetic(i)
    if (a.at >= endMs) continue
    const key = `${dayOf(a.at)}|${a.severity}`
    perDay.set(key, (perDay.get(key) ?? 0) + 1)
    if (a.host === HOST && a.severity === 1) host.push(a.id)
  }
  return JSON.stringify(question === 'severity' ? [...perDay.entries()].sort() : host.sort())
}

const dir = await mkdtemp(join(tmpdir(), 'ts2s3-bench-query-'))
const S3_SERVER = process.env.QUERY_BENCH_S3 ?? 's3rver'
const s3server = S3_SERVER === 'fauxqs' ? await startFauxqsS3({ buckets: [BUCKET] }) : await startLocalS3({ directory: dir, buckets: [BUCKET] })
// Only the app's boot needs it: the full alerts are written directly.
const sim = await startThreatStackSimulator({ apiKey: 'bench-api-key' })
const config = loadConfig({
  TS_AWS_S3_BUCKET: BUCKET,
  AWS_ENDPOINT_URL_S3: s3server.endpoint,
  AWS_ACCESS_KEY_ID: LOCAL_S3_CREDENTIALS.accessKeyId,
  AWS_SECRET_ACCESS_KEY: LOCAL_S3_CREDENTIALS.secretAccessKey,
  THREATSTACK_BASE_URL: sim.url,
  THREATSTACK_API_KEY: 'bench-api-key',
  INGEST_TOKENS: INGEST,
  READ_TOKENS: READ,
  S3_TIMEOUT_MS: '30000',
  S3_BUDGET_MS: '120000',
  S3_MAX_SOCKETS: '64',
  LOAD_MAX_EVENT_LOOP_DELAY_MS: '0',
  LOAD_MAX_EVENT_LOOP_UTILIZATION: '0',
  SWEEP_INTERVAL_S: '0',
  LOG_LEVEL: 'silent'
})
const service = Fastify({ ...serverOptions(config), logger: { level: process.env.QUERY_BENCH_LOG ?? 'silent' } })
await service.register(app, { config })
await service.ready()
let requests = 0
service.store.s3.middlewareStack.add((next) => async (args) => { requests++; return await next(args) }, { step: 'initialize', name: 'benchCount' })
const store = storeOf(config.s3, service.store.s3)
const deps = { store, concurrency: 32 }

interface Measured { name: string, ms: number, requests: number, value: string, timings?: AlertsQueryResult['timings'] }

async function measure (name: string, fn: () => Promise<{ value: string, timings?: AlertsQueryResult['timings'] }>): Promise<Measured> {
  process.stderr.write(`${name.replace('|', ': ')}\n`)
  requests = 0
  const t0 = performance.now()
  const { value, timings } = await fn()
  return { name, ms: performance.now() - t0, requests, value, ...(timings !== undefined && { timings }) }
}

/**
 * A question from the search route, as a client would ask it: every page of the range; the
 * host question with the route's own filters (server, severity), the counts made here.
 */
async function viaSearch (question: Question, endMs: number): Promise<{ value: string }> {
  const perDay = new Map<string, number>()
  const host: string[] = []
  const filters = question === 'host' ? `&server=${HOST}&severity=1` : ''
  let cursor: string | null = null
  for (let page = 0; page < 1_000_000; page++) {
    const url: string = `/api/v1/s3/alert?start=${new Date(START).toISOString()}&end=${new Date(endMs).toISOString()}&limit=1000${filters}${cursor === null ? '' : `&cursor=${cursor}`}`
    const res = await service.inject({ method: 'GET', url, headers: { authorization: `Bearer ${READ}` } })
    if (res.statusCode !== 200) throw new Error(`search answered ${res.statusCode}: ${res.body}`)
    const body = JSON.parse(res.body) as { alerts: Array<Record<string, unknown>>, nextCursor: string | null }
    for (const a of body.alerts) {
      const key = `${dayOf(Number(a.created_at))}|${String(a.severity)}`
      perDay.set(key, (perDay.get(key) ?? 0) + 1)
      if (a.server_or_region === HOST && Number(a.severity) === 1) host.push(String(a.id))
    }
    cursor = body.nextCursor
    if (cursor === null) break
  }
  return { value: JSON.stringify(question === 'severity' ? [...perDay.entries()].sort() : host.sort()) }
}

const SQL: Record<Question, string> = {
  severity: 'SELECT dt, severity, count(*) AS n FROM alerts GROUP BY dt, severity ORDER BY dt, severity',
  host: `SELECT id FROM alerts WHERE server_or_region = '${HOST}' AND severity = 1 ORDER BY id`
}

async function viaQuery (question: Question, useTables: boolean): Promise<{ value: string, timings: AlertsQueryResult['timings'] }> {
  const res = await queryAlerts(deps, { startMs: START, endMs: END }, SQL[question], { useTables })
  if (useTables && res.load.compactedDays !== DAYS) throw new Error('not every day came from the table tier')
  const value = question === 'severity'
    ? res.rows.map((r) => [`${String(r[0])}|${String(r[1])}`, Number(r[2])]).sort()
    : res.rows.map((r) => String(r[0])).sort()
  return { value: JSON.stringify(value), timings: res.timings }
}

try {
  const t0 = performance.now()
  const limit = pLimit(64)
  const { prefix } = store
  for (let i = 0; i < ALERTS; i += 5000) {
    const batch = Array.from({ length: Math.min(5000, ALERTS - i) }, (_, k) => i + k)
    await Promise.all(batch.map(async (n) => limit(async () => {
      const a = synthetic(n)
      const record = { id: a.id, created_at: String(a.at), severity: String(a.severity), title: 'Synthetic', server_or_region: a.host }
      const full = { id: a.id, created_at: a.at, title: `Synthetic alert ${n % 97}`, severity: a.severity, server_or_region: a.host, source: 'host', organization_id: 'bench-org', agent_id: `agent-${n % HOSTS}`, rule: { id: a.rule, name: `Rule ${a.rule}`, ruleset_id: 'ruleset-1' }, dismissed: false }
      // As archiveAlert: the record first (the full alert never exists without it), its index entry beside it.
      await Promise.all([putOnce(store, webhookKey(prefix, a.id, a.at), JSON.stringify(record)), putIndexEntry(store, record)])
      await putJson(store, alertKey(prefix, a.id), full)
    })))
    process.stderr.write(`archived ${i + batch.length}/${ALERTS} (${((performance.now() - t0) / 1000).toFixed(0)} s)\n`)
  }
  const seedS = (performance.now() - t0) / 1000
  process.stderr.write(`archived ${ALERTS} alerts (${ALERTS * 3} objects) in ${seedS.toFixed(1)} s\n`)

  // JSON-only answers first, while no table exists (they ignore it anyway).
  const searchEnd = START + SEARCH_DAYS * DAY_MS
  const scale = DAYS / SEARCH_DAYS
  const results: Measured[] = []
  for (const q of QUESTIONS) {
    const search = await measure(`${q}|search route`, async () => viaSearch(q, searchEnd))
    if (search.value !== expected(q, searchEnd)) throw new Error(`the search route's answer to ${q} is wrong`)
    results.push({ ...search, ms: search.ms * scale, requests: Math.round(search.requests * scale) })
    results.push(await measure(`${q}|query, JSON only`, async () => viaQuery(q, false)))
  }
  const compactions: number[] = []
  let compactRequests = 0
  let compactBytes = 0
  const c0 = performance.now()
  for (let d = 0; d < DAYS; d++) {
    const day = dayOf(START + d * DAY_MS)
    requests = 0
    const t1 = performance.now()
    const r = await compactDay(deps, day)
    compactions.push(performance.now() - t1)
    compactRequests += requests
    compactBytes += r.bytes
    process.stderr.write(`compacted ${day}: ${r.rows} rows, ${r.bytes} bytes in ${((performance.now() - t1) / 1000).toFixed(1)} s\n`)
  }
  const compactAllMs = performance.now() - c0
  for (const q of QUESTIONS) results.push(await measure(`${q}|query, table tier`, async () => viaQuery(q, true)))
  for (const r of results) {
    const q = r.name.split('|')[0] as Question
    if (!r.name.endsWith('search route') && r.value !== expected(q, END)) throw new Error(`${r.name} answered wrong`)
  }

  const label: Record<Question, string> = { severity: 'count by severity per day', host: `one host (${HOST}), severity 1, whole range` }
  const run: QueryRun = {
    date: new Date().toISOString(),
    s3: S3_SERVER,
    node: process.versions.node,
    alerts: ALERTS,
    days: DAYS,
    seedS,
    searchDays: SEARCH_DAYS,
    rows: results.map((r) => {
      const [q, how] = r.name.split('|') as [Question, string]
      return { question: label[q], how, seconds: r.ms / 1000, requests: r.requests, ...(r.timings !== undefined && { timings: r.timings }) }
    }),
    compaction: { perDayS: compactions.map((ms) => ms / 1000), allS: compactAllMs / 1000, requests: compactRequests, bytes: compactBytes }
  }
  const out = await writeQueryResults(run, resultsDir(process.argv))
  process.stderr.write(`results in ${out}\n`)
} finally {
  await service.close()
  await sim.close()
  await s3server.close()
  await rm(dir, { recursive: true, force: true })
}
