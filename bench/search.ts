// npm run bench:search — the range search against a whole-prefix scan, on a local S3 server
// filled with webhook records spread over days, at two bucket sizes. Prints latency and S3
// request counts; the range query's count must stay flat as the bucket grows. Then a dense
// minute, with and without index entries (as this service and the Python service wrote it):
// GETs per page and time to first page.
//   SEARCH_BENCH_RECORDS (default 8000), SEARCH_BENCH_DAYS (default 30),
//   SEARCH_BENCH_DENSE (alerts in the dense minute, default 3000), SEARCH_BENCH_PAGES (pages read of it, default 5)
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import pLimit from 'p-limit'
import { PutObjectCommand } from '@aws-sdk/client-s3'
import { createS3Client } from '../services/s3-client.js'
import { LOCAL_S3_CREDENTIALS, startLocalS3 } from '../dev/local-s3.js'
import { alertKey, indexKey, minuteStart, parseWebhookKey, webhookKey, webhooksRoot } from '../services/keys.js'
import { getJson, listKeys, type Store } from '../services/storage.js'
import { decodeCursor, searchAlerts, type Position, type TimeRange } from '../services/search.js'
import { createdAtMs, type Alert } from '../schemas/alert.js'

const RECORDS = Number(process.env.SEARCH_BENCH_RECORDS ?? 8000)
const DAYS = Number(process.env.SEARCH_BENCH_DAYS ?? 30)
const DENSE = Number(process.env.SEARCH_BENCH_DENSE ?? 3000)
const DENSE_PAGES = Number(process.env.SEARCH_BENCH_PAGES ?? 5)
const RUNS = 3
const BUCKET = 'bench-search'
const DAY = 86_400_000
const START = Date.UTC(2017, 0, 1)

const dir = await mkdtemp(join(tmpdir(), 'ts2s3-bench-search-'))
const server = await startLocalS3({ directory: dir, buckets: [BUCKET] })
const s3 = createS3Client({
  region: 'us-east-1',
  endpoint: server.endpoint,
  credentials: LOCAL_S3_CREDENTIALS,
  bucket: BUCKET,
  prefix: '',
  timeoutMs: 30_000,
  connectTimeoutMs: 3000,
  maxSockets: 64,
  maxAttempts: 3
})
let requests = 0
let gets = 0
s3.middlewareStack.add((next, context) => async (args) => {
  requests++
  if (context.commandName === 'GetObjectCommand') gets++
  return await next(args)
}, { step: 'initialize', name: 'count' })
const store: Store = { s3, bucket: BUCKET, prefix: '' }

/** The i-th alert: spread evenly over the days, at a pseudo-random millisecond. */
function alertAt (i: number): { id: string, at: number } {
  const at = START + Math.floor((i / RECORDS) * DAYS * DAY) + ((i * 7919) % 60_000)
  return { id: `bench${String(i).padStart(8, '0')}`, at }
}

const middle = START + Math.floor(DAYS / 2) * DAY
// The queried day's alerts go in first, so both bucket sizes hold the same alerts in range
// and differ only in what lies outside it.
const inQueriedDay = (i: number): boolean => alertAt(i).at >= middle && alertAt(i).at < middle + DAY
const order = Array.from({ length: RECORDS }, (_, i) => i).sort((a, b) => Number(inQueriedDay(b)) - Number(inQueriedDay(a)) || a - b)

async function fill (from: number, to: number): Promise<void> {
  const limit = pLimit(48)
  const put = async (key: string, body: string): Promise<void> => {
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body, ContentType: 'application/json' }))
  }
  await Promise.all(Array.from({ length: to - from }, (_, k) => limit(async () => {
    const { id, at } = alertAt(order[from + k] as number)
    await put(webhookKey('', id, at), JSON.stringify({ id, created_at: String(at) }))
    await put(alertKey('', id), JSON.stringify({ id, created_at: at, title: 'bench' }))
    await put(indexKey('', id, at), '{}')
  })))
}

/** One minute holding `DENSE` alerts, with index entries or, as the Python service wrote it, without. */
async function fillDense (minuteMs: number, indexed: boolean): Promise<void> {
  const limit = pLimit(48)
  const put = async (key: string, body: string): Promise<void> => {
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body, ContentType: 'application/json' }))
  }
  await Promise.all(Array.from({ length: DENSE }, (_, i) => limit(async () => {
    const id = `dense${indexed ? 'i' : 'o'}${String(i).padStart(6, '0')}`
    const at = minuteMs + ((i * 7919) % 60_000)
    await put(webhookKey('', id, at), JSON.stringify({ id, created_at: String(at) }))
    await put(alertKey('', id), JSON.stringify({ id, created_at: at, title: 'bench' }))
    if (indexed) await put(indexKey('', id, at), '{}')
  })))
}

/** Pages of 100 through a range: GETs and S3 requests per page, time to the first page. */
async function pagesOf (range: TimeRange, pages: number): Promise<{ pages: number, gets: number[], requests: number[], firstMs: number, alerts: number }> {
  const out = { pages: 0, gets: [] as number[], requests: [] as number[], firstMs: 0, alerts: 0 }
  let after: Position | undefined
  for (let i = 0; i < pages; i++) {
    gets = 0
    requests = 0
    const t0 = performance.now()
    const page = await searchAlerts({ store, concurrency: 16 }, range, { limit: 100, ...(after !== undefined && { after }) })
    if (i === 0) out.firstMs = performance.now() - t0
    out.pages++
    out.gets.push(gets)
    out.requests.push(requests)
    out.alerts += page.alerts.length
    if (page.nextCursor === null) break
    after = decodeCursor(range, page.nextCursor)
  }
  return out
}

/** What a search costs without key-range listing: list every webhook record, then select. */
async function wholePrefixScan (range: TimeRange): Promise<number> {
  const first = minuteStart(range.startMs)
  const last = minuteStart(range.endMs - 1)
  const limit = pLimit(16)
  const candidates: Array<{ key: string, id: string }> = []
  for await (const key of listKeys(store, { Prefix: webhooksRoot('') })) {
    const parsed = parseWebhookKey('', key)
    if (parsed !== undefined && parsed.minuteMs >= first && parsed.minuteMs <= last) candidates.push({ key, id: parsed.id })
  }
  const found = await Promise.all(candidates.map(async ({ key, id }) => limit(async () => {
    const t = createdAtMs(await getJson(store, key) as Alert)
    return t >= range.startMs && t < range.endMs ? await getJson(store, alertKey('', id)) : undefined
  })))
  return found.filter((a) => a !== undefined).length
}

async function rangeQuery (range: TimeRange): Promise<number> {
  const page = await searchAlerts({ store, concurrency: 16 }, range, { limit: 1000 })
  return page.alerts.length
}

async function measure (fn: (r: TimeRange) => Promise<number>, range: TimeRange): Promise<{ ms: number, requests: number, found: number }> {
  const times: number[] = []
  let count = 0
  let found = 0
  for (let run = 0; run < RUNS; run++) {
    requests = 0
    const t0 = performance.now()
    found = await fn(range)
    times.push(performance.now() - t0)
    count = requests
  }
  times.sort((a, b) => a - b)
  return { ms: times[Math.floor(RUNS / 2)] as number, requests: count, found }
}

const queries: Array<[string, TimeRange]> = [
  ['1 hour', { startMs: middle + 10 * 3_600_000, endMs: middle + 11 * 3_600_000 }],
  ['1 day', { startMs: middle, endMs: middle + DAY }]
]
const rows: string[] = []
const stages = [Math.floor(RECORDS / 4), RECORDS]
let filled = 0
try {
  for (const size of stages) {
    const t0 = performance.now()
    await fill(filled, size)
    filled = size
    process.stderr.write(`filled ${size} alerts (${size * 2} objects) in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`)
    for (const [name, range] of queries) {
      const ranged = await measure(rangeQuery, range)
      const scan = await measure(wholePrefixScan, range)
      if (ranged.found !== scan.found) throw new Error(`${name}: range query found ${ranged.found}, scan ${scan.found}`)
      rows.push(`| ${size * 2} | ${name} | ${ranged.found} | ${ranged.requests} | ${ranged.ms.toFixed(0)} | ${scan.requests} | ${scan.ms.toFixed(0)} | ${(scan.ms / ranged.ms).toFixed(1)}× |`)
    }
  }
  process.stdout.write([
    `Range search vs whole-prefix scan: ${RECORDS} alerts over ${DAYS} days on s3rver, median of ${RUNS} runs`,
    '',
    '| objects in bucket | query | alerts found | range: S3 requests | range: ms | scan: S3 requests | scan: ms | scan / range time |',
    '|---|---|---|---|---|---|---|---|',
    ...rows,
    ''
  ].join('\n'))

  // The dense minutes, in another year, away from everything above.
  const NEW = Date.UTC(2018, 5, 1, 12, 0)
  const OLD = Date.UTC(2018, 5, 1, 13, 0)
  const t0 = performance.now()
  await fillDense(NEW, true)
  await fillDense(OLD, false)
  process.stderr.write(`filled two minutes of ${DENSE} alerts in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`)
  const dense: string[] = []
  const mean = (xs: number[]): string => (xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length)).toFixed(0)
  for (const [what, span, pages] of [['10 ms range, first page', 10, 1], [`whole minute, ${DENSE_PAGES} pages`, 60_000, DENSE_PAGES]] as const) {
    const results = []
    for (const minute of [OLD, NEW]) {
      const range = { startMs: minute + (span === 60_000 ? 0 : 30_000), endMs: minute + (span === 60_000 ? 60_000 : 30_000 + span) }
      results.push(await pagesOf(range, pages))
    }
    const [old, now] = results as [Awaited<ReturnType<typeof pagesOf>>, Awaited<ReturnType<typeof pagesOf>>]
    if (old.alerts !== now.alerts) throw new Error(`${what}: ${old.alerts} alerts without index entries, ${now.alerts} with`)
    dense.push(`| ${what} | ${now.alerts} | ${mean(old.gets)} | ${mean(now.gets)} | ${mean(old.requests)} | ${mean(now.requests)} | ${old.firstMs.toFixed(0)} | ${now.firstMs.toFixed(0)} | ${(old.firstMs / now.firstMs).toFixed(1)}× |`)
  }
  process.stdout.write([
    '',
    `A minute holding ${DENSE} alerts, pages of 100: without index entries (as the Python service wrote it) and with them`,
    '',
    '| query | alerts read | GETs per page, without | with | S3 requests per page, without | with | first page ms, without | with | ratio |',
    '|---|---|---|---|---|---|---|---|---|',
    ...dense,
    ''
  ].join('\n'))
} finally {
  s3.destroy()
  await server.close()
  await rm(dir, { recursive: true, force: true })
}
