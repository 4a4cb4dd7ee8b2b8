// npm run bench:search — the range search against a whole-prefix scan, on a local S3 server
// filled with webhook records spread over days, at two bucket sizes. Prints latency and S3
// request counts; the range query's count must stay flat as the bucket grows.
//   SEARCH_BENCH_RECORDS (default 8000), SEARCH_BENCH_DAYS (default 30)
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import pLimit from 'p-limit'
import { PutObjectCommand } from '@aws-sdk/client-s3'
import { createS3Client } from '../plugins/s3.js'
import { LOCAL_S3_CREDENTIALS, startLocalS3 } from '../dev/local-s3.js'
import { alertKey, minuteStart, parseWebhookKey, webhookKey, webhooksRoot } from '../services/keys.js'
import { getJson, listKeys, type Store } from '../services/storage.js'
import { searchAlerts, type TimeRange } from '../services/search.js'
import { createdAtMs, type Alert } from '../schemas/alert.js'

const RECORDS = Number(process.env.SEARCH_BENCH_RECORDS ?? 8000)
const DAYS = Number(process.env.SEARCH_BENCH_DAYS ?? 30)
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
s3.middlewareStack.add((next) => async (args) => { requests++; return await next(args) }, { step: 'initialize', name: 'count' })
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
  })))
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
} finally {
  s3.destroy()
  await server.close()
  await rm(dir, { recursive: true, force: true })
}
