// npm run bench:query — two questions over a synthetic archive, answered three ways: the search
// route paged to the end (then counted by the client), `query` over the table tier, `query` over
// the JSON objects only. Wall time and S3 requests side by side; compaction time per day.
// The archive is written through the service itself (POST /api/v1/s3/alert, full alerts fetched
// from the Threat Stack simulator) into s3rver on a temp folder.
//   QUERY_BENCH_ALERTS (default 10000), QUERY_BENCH_DAYS (default 10)
import Fastify from 'fastify'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import app, { serverOptions } from '../app.js'
import { loadConfig } from '../config.js'
import { LOCAL_S3_CREDENTIALS, startLocalS3 } from '../dev/local-s3.js'
import { startThreatStackSimulator } from '../dev/threatstack-simulator.js'
import { storeOf } from '../services/s3-client.js'
import { compactDay, dayOf, DAY_MS } from '../services/tables.js'
import { queryAlerts } from '../services/query.js'

const ALERTS = Number(process.env.QUERY_BENCH_ALERTS ?? 10_000)
const DAYS = Number(process.env.QUERY_BENCH_DAYS ?? 10)
const START = Date.UTC(2017, 0, 1)
const END = START + DAYS * DAY_MS
const HOSTS = 50
const BUCKET = 'bench-query'
const READ = 'bench-read-token-0000001'
const INGEST = 'bench-ingest-token-000001'

interface Synthetic { id: string, at: number, severity: number, host: string, rule: string }

/** The i-th alert: spread evenly over the days, severity 1 for one in ten, 50 hosts, 20 rules. */
function synthetic (i: number): Synthetic {
  const at = START + Math.floor((i / ALERTS) * DAYS * DAY_MS) + ((i * 7919) % 60_000)
  const id = Math.floor(at / 1000).toString(16).padStart(8, '0') + i.toString(16).padStart(16, '0')
  return { id, at, severity: i % 10 === 0 ? 1 : i % 3 === 0 ? 3 : 2, host: `host-${String(i % HOSTS).padStart(2, '0')}`, rule: `rule-${i % 20}` }
}

const dir = await mkdtemp(join(tmpdir(), 'ts2s3-bench-query-'))
const s3server = await startLocalS3({ directory: dir, buckets: [BUCKET] })
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
  S3_MAX_SOCKETS: '64',
  LOAD_MAX_EVENT_LOOP_DELAY_MS: '0',
  LOAD_MAX_EVENT_LOOP_UTILIZATION: '0',
  LOG_LEVEL: 'silent'
})
const service = Fastify({ ...serverOptions(config), logger: false })
await service.register(app, { config })
await service.ready()
let requests = 0
service.store.s3.middlewareStack.add((next) => async (args) => { requests++; return await next(args) }, { step: 'initialize', name: 'benchCount' })
const store = storeOf(config.s3, service.store.s3)
const deps = { store, concurrency: 32 }

const HOST = 'host-07'

async function measure (name: string, fn: () => Promise<unknown>): Promise<{ name: string, ms: number, requests: number, value: unknown }> {
  if (name !== 'compact') process.stderr.write(`${name.replace('|', ': ')}\n`)
  requests = 0
  const t0 = performance.now()
  const value = await fn()
  return { name, ms: performance.now() - t0, requests, value }
}

/** Both questions from the search route: every page of the range, counted and filtered here. */
async function viaSearch (question: 'severity' | 'host'): Promise<unknown> {
  const perDay = new Map<string, number>()
  const host: string[] = []
  let cursor: string | null = null
  for (let page = 0; page < 100_000; page++) {
    const url: string = `/api/v1/s3/alert?start=${new Date(START).toISOString()}&end=${new Date(END).toISOString()}&limit=1000${cursor === null ? '' : `&cursor=${cursor}`}`
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
  return question === 'severity' ? [...perDay.entries()].sort() : host.sort()
}

const SQL = {
  severity: 'SELECT dt, severity, count(*) AS n FROM alerts GROUP BY dt, severity ORDER BY dt, severity',
  host: `SELECT id FROM alerts WHERE server_or_region = '${HOST}' AND severity = 1 ORDER BY id`
}

async function viaQuery (question: 'severity' | 'host', useTables: boolean): Promise<unknown> {
  const res = await queryAlerts(deps, { startMs: START, endMs: END }, SQL[question], { useTables })
  if (useTables && res.load.compactedDays !== DAYS) throw new Error('not every day came from the table tier')
  return question === 'severity'
    ? res.rows.map((r) => [`${String(r[0])}|${String(r[1])}`, Number(r[2])]).sort()
    : res.rows.map((r) => String(r[0])).sort()
}

try {
  const t0 = performance.now()
  for (let i = 0; i < ALERTS; i++) {
    const a = synthetic(i)
    sim.setAlert(a.id, { id: a.id, created_at: a.at, title: `Synthetic alert ${i % 97}`, severity: a.severity, server_or_region: a.host, source: 'host', organization_id: 'bench-org', agent_id: `agent-${i % HOSTS}`, rule: { id: a.rule, name: `Rule ${a.rule}`, ruleset_id: 'ruleset-1' }, dismissed: false })
  }
  for (let i = 0; i < ALERTS; i += 100) {
    const batch = Array.from({ length: Math.min(100, ALERTS - i) }, (_, k) => synthetic(i + k))
    const res = await service.inject({
      method: 'POST',
      url: '/api/v1/s3/alert',
      headers: { authorization: `Bearer ${INGEST}` },
      payload: { alerts: batch.map((a) => ({ id: a.id, created_at: String(a.at), severity: String(a.severity), title: 'Synthetic', server_or_region: a.host })) }
    })
    if (res.statusCode !== 200) throw new Error(`ingest answered ${res.statusCode}`)
    if (process.stderr.isTTY) process.stderr.write(`\rarchived ${i + batch.length}/${ALERTS}`)
  }
  process.stderr.write(`${process.stderr.isTTY ? '\n' : ''}archived ${ALERTS} alerts (${ALERTS * 2} objects) through the service in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`)

  // JSON-only answers first, while no table exists (they ignore it anyway).
  const results: Array<Awaited<ReturnType<typeof measure>>> = []
  for (const q of ['severity', 'host'] as const) {
    results.push(await measure(`${q}|search route`, async () => viaSearch(q)))
    results.push(await measure(`${q}|query, JSON only`, async () => viaQuery(q, false)))
  }
  const compactions: number[] = []
  const c0 = performance.now()
  let compactRequests = 0
  for (let d = 0; d < DAYS; d++) {
    const r = await measure('compact', async () => compactDay(deps, dayOf(START + d * DAY_MS)))
    compactions.push(r.ms)
    compactRequests += r.requests
  }
  const compactAll = performance.now() - c0
  for (const q of ['severity', 'host'] as const) results.push(await measure(`${q}|query, table tier`, async () => viaQuery(q, true)))

  for (const q of ['severity', 'host']) {
    const answers = results.filter((r) => r.name.startsWith(`${q}|`)).map((r) => JSON.stringify(r.value))
    if (new Set(answers).size !== 1) throw new Error(`the three ways disagree on ${q}`)
  }
  const byName = new Map(results.map((r) => [r.name, r]))
  const label = { severity: 'count by severity per day', host: `one host (${HOST}), severity 1, whole range` }
  const rows = (['severity', 'host'] as const).flatMap((q) => {
    const json = byName.get(`${q}|query, JSON only`)!
    const table = byName.get(`${q}|query, table tier`)!
    return ['search route', 'query, JSON only', 'query, table tier'].map((how) => {
      const r = byName.get(`${q}|${how}`)!
      return `| ${label[q]} | ${how} | ${(r.ms / 1000).toFixed(2)} | ${r.requests} | ${how === 'query, table tier' ? `${(json.requests / table.requests).toFixed(0)}× fewer, ${(json.ms / table.ms).toFixed(0)}× faster` : ''} |`
    })
  })
  const sorted = [...compactions].sort((a, b) => a - b)
  process.stdout.write([
    `Query benchmark: ${ALERTS} alerts over ${DAYS} days (${Math.round(ALERTS / DAYS)} a day) on s3rver, one run`,
    '',
    '| question | how | wall time (s) | S3 requests | table tier vs JSON only |',
    '|---|---|---|---|---|',
    ...rows,
    '',
    `Compaction of one day (${Math.round(ALERTS / DAYS)} alerts): median ${(sorted[Math.floor(sorted.length / 2)]! / 1000).toFixed(2)} s ` +
      `(min ${(sorted[0]! / 1000).toFixed(2)} s, max ${(sorted.at(-1)! / 1000).toFixed(2)} s); all ${DAYS} days ${(compactAll / 1000).toFixed(1)} s, ${compactRequests} S3 requests.`,
    ''
  ].join('\n'))
} finally {
  await service.close()
  await sim.close()
  await s3server.close()
  await rm(dir, { recursive: true, force: true })
}
