// npm run bench:integrity: what integrity costs, on moto (the S3 here that enforces it).
//   - ingest, per webhook: the service (bench/integrity-service.ts, its own process, app.ts as
//     `npm start` runs it) against moto and the Threat Stack simulator, authenticated webhooks
//     posted BENCH_WEBHOOKS times per variant at BENCH_WEBHOOK_CONCURRENCY, in ABBA rounds: as in
//     production, and "plain", the same process with the write-once condition and the checksum
//     headers removed from its S3 requests on the wire (the service still computes every SHA-256);
//   - ingest, per PUT: PUTs of webhook-sized JSON, write-once + SHA-256 checksum (the service's
//     putJson) vs a plain PutObject, alternated in rounds, same client, same objects;
//   - the digest job's time for one hour of BENCH_DIGEST_ALERTS alerts (two objects each);
//   - verify's throughput over BENCH_VERIFY_ALERTS alerts (whole hours of BENCH_DIGEST_ALERTS).
// Needs moto_server on PATH. Sizes: BENCH_WEBHOOKS (default 3000 per variant),
// BENCH_WEBHOOK_CONCURRENCY (16), BENCH_PUTS (default 2000), BENCH_DIGEST_ALERTS (default 5000),
// BENCH_VERIFY_ALERTS (default 10000). Prints the figures as JSON; writes .bench/results/integrity.json
// (untracked), or bench/results/ with --update-results; BENCH_SMOKE=1 writes nothing.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { generateKeyPairSync } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { createInterface } from 'node:readline'
import { CreateBucketCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3'
import autocannon from 'autocannon'
import pLimit from 'p-limit'
import { startThreatStackSimulator } from '../dev/threatstack-simulator.js'
import { createS3Client, storeOf } from '../services/s3-client.js'
import { alertKey, webhookKey } from '../services/keys.js'
import { putJson } from '../services/storage.js'
import { HOUR_MS, runDigestJob } from '../services/digest.js'
import { ed25519Signer } from '../services/signer.js'
import { verifyArchive } from '../services/verify.js'
import { CREATED_AT, HEAP_MB, incompleteInS3, processStats, serviceEnv, spawnScript, stopProcess, webhookRequests } from './lib.js'
import { resultsDir } from './report.js'

const PUTS = Number(process.env.BENCH_PUTS ?? 2000)
const ALERTS = Number(process.env.BENCH_DIGEST_ALERTS ?? 5000)
const HOURS = Math.max(1, Math.ceil(Number(process.env.BENCH_VERIFY_ALERTS ?? 10_000) / ALERTS))
const CONCURRENCY = 16
const WEBHOOKS = Number(process.env.BENCH_WEBHOOKS ?? 3000)
const WEBHOOK_CONCURRENCY = Number(process.env.BENCH_WEBHOOK_CONCURRENCY ?? 16)
const THREATSTACK_LATENCY_MS = Number(process.env.BENCH_THREATSTACK_LATENCY_MS ?? 0)
const smoke = process.env.BENCH_SMOKE === '1'

const moto = spawn('moto_server', ['-H', '127.0.0.1', '-p', '0'], { stdio: ['ignore', 'pipe', 'pipe'] })
const port = await new Promise<number>((resolve, reject) => {
  let out = ''
  const timer = setTimeout(() => reject(new Error('moto_server did not start')), 30_000)
  const onData = (c: Buffer): void => {
    out += c.toString()
    const m = /Running on http:\/\/127\.0\.0\.1:(\d+)/.exec(out)
    if (m !== null) { clearTimeout(timer); resolve(Number(m[1])) }
  }
  moto.stdout.on('data', onData)
  moto.stderr.on('data', onData)
  moto.once('error', reject)
})
moto.stdout.resume()
moto.stderr.resume()
// However this process ends (a timeout's SIGTERM included), moto ends with it.
process.once('exit', () => moto.kill('SIGTERM'))

const cfg = {
  bucket: 'bench-integrity',
  prefix: '',
  region: 'us-east-1',
  endpoint: `http://127.0.0.1:${port}`,
  credentials: { accessKeyId: 'bench', secretAccessKey: 'bench' },
  timeoutMs: 30_000,
  connectTimeoutMs: 3000,
  maxSockets: 64,
  maxAttempts: 3
}
const s3 = createS3Client(cfg)
const store = storeOf(cfg, s3)
await s3.send(new CreateBucketCommand({ Bucket: cfg.bucket }))

const body = (id: string): Record<string, unknown> => ({ id, created_at: '1484521800000', severity: 2, title: 'Bench alert with a title of usual length', organization_id: 'org-0001', server_or_region: 'i-0123456789', source: 'host' })
const percentile = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))] ?? 0

async function round (name: 'integrity' | 'plain', n: number, offset: number): Promise<{ perSecond: number, p50: number }> {
  const limit = pLimit(CONCURRENCY)
  const latencies: number[] = []
  const t0 = performance.now()
  await Promise.all(Array.from({ length: n }, async (_, i) => limit(async () => {
    const id = `${name}-${offset + i}`
    const key = `bench/${name}/${id}`
    const s = performance.now()
    if (name === 'integrity') await putJson(store, key, body(id))
    else await s3.send(new PutObjectCommand({ Bucket: cfg.bucket, Key: key, Body: JSON.stringify(body(id)), ContentType: 'application/json' }))
    latencies.push(performance.now() - s)
  })))
  return { perSecond: n / ((performance.now() - t0) / 1000), p50: percentile(latencies, 0.5) }
}

type Variant = 'integrity' | 'plain'
const rounds = 4
/** ABBA: plain first in even rounds, integrity first in odd ones, so neither always follows the other. */
const orderOf = (r: number): Variant[] => r % 2 === 0 ? ['plain', 'integrity'] : ['integrity', 'plain']
const median = (xs: number[]): number => percentile(xs, 0.5)

// Webhooks through the service, in a bucket of their own.
const webhookBucket = 'bench-integrity-webhooks'
await s3.send(new CreateBucketCommand({ Bucket: webhookBucket }))
const sim = await startThreatStackSimulator({ apiKey: 'bench-api-key', userId: 'bench-user', organizationId: 'bench-org', latencyMs: THREATSTACK_LATENCY_MS })
const upstreams = { s3: cfg.endpoint, s3Direct: cfg.endpoint, threatstack: sim.url, bucket: webhookBucket, apiKey: 'bench-api-key' }
// The sweeper off and shedding by event-loop load off, in both variants alike: neither is
// integrity, and either would put background work or 503s into one round and not the other.
const { child: serviceProcess, firstLine } = await spawnScript('bench/integrity-service.ts', {
  ...serviceEnv(upstreams),
  SWEEP_INTERVAL_S: '0',
  LOAD_MAX_EVENT_LOOP_DELAY_MS: '0',
  LOAD_MAX_EVENT_LOOP_UTILIZATION: '0',
  LOG_LEVEL: 'warn'
}, HEAP_MB > 0 ? [`--max-heap-size=${HEAP_MB}`] : [])
const serviceUrl = (JSON.parse(firstLine) as { url: string }).url
const replies = createInterface({ input: serviceProcess.stdout! })[Symbol.asyncIterator]()
/** Puts the service in `variant`; resolves with its count of requests stripped so far. */
async function switchTo (variant: Variant): Promise<number> {
  serviceProcess.stdin!.write(`${variant}\n`)
  const reply = await replies.next()
  if (reply.done === true) throw new Error('the bench service ended')
  return (JSON.parse(reply.value as string) as { stripped: number }).stripped
}

interface WebhookRound { ok: number, errors: number, seconds: number, p50: number, p99: number, serviceCpu: number, motoCpu: number }
async function webhookRound (variant: Variant, n: number, tag: string, answered: Map<string, Variant>): Promise<WebhookRound> {
  const service0 = await processStats(serviceProcess.pid!)
  const moto0 = await processStats(moto.pid!)
  // The round's time is measured here, to its last answer: autocannon's own is counted in its
  // sample ticks.
  const t0 = performance.now()
  let last = t0
  const result = await autocannon({
    url: `${serviceUrl}/api/v1/s3/alert`,
    connections: WEBHOOK_CONCURRENCY,
    amount: n,
    timeout: 60,
    requests: webhookRequests(tag, (status, id) => {
      last = performance.now()
      if (status === 200) answered.set(id, variant)
    })
  })
  const seconds = (last - t0) / 1000
  const service1 = await processStats(serviceProcess.pid!)
  const moto1 = await processStats(moto.pid!)
  sim.requests.splice(0, sim.requests.length)
  return {
    ok: result['2xx'],
    errors: result.errors + result.timeouts + result.non2xx,
    seconds,
    p50: result.latency.p50,
    p99: result.latency.p99,
    serviceCpu: service1.cpuSeconds - service0.cpuSeconds,
    motoCpu: moto1.cpuSeconds - moto0.cpuSeconds
  }
}

const answered = new Map<string, Variant>()
const webhookRounds: Record<Variant, WebhookRound[]> = { integrity: [], plain: [] }
const stripped: Record<Variant, number> = { integrity: 0, plain: 0 }
// Warm-up of both variants (JIT, pools, moto's first objects): not counted.
const warmup = Math.max(WEBHOOK_CONCURRENCY, Math.ceil(WEBHOOKS / 10))
for (const variant of orderOf(0)) {
  await switchTo(variant)
  await webhookRound(variant, warmup, `warmup-${variant}`, answered)
}
for (let r = 0; r < rounds; r++) {
  for (const variant of orderOf(r)) {
    const before = await switchTo(variant)
    webhookRounds[variant].push(await webhookRound(variant, Math.max(WEBHOOK_CONCURRENCY, Math.ceil(WEBHOOKS / rounds)), `${variant}-r${r}`, answered))
    // Asked for the count again, under the same variant: what this round stripped.
    stripped[variant] += (await switchTo(variant)) - before
  }
}
const closed = new Promise((resolve) => serviceProcess.once('exit', resolve))
serviceProcess.stdin!.end()
await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 15_000))])
await stopProcess(serviceProcess)
await sim.close()

// What each variant left in S3: every alert answered 200 complete, and stored with a SHA-256 or not.
const missing = await incompleteInS3(upstreams, [...answered.keys()])
const storedChecksum = async (variant: Variant): Promise<boolean> => {
  const id = [...answered].find(([, v]) => v === variant)?.[0]
  if (id === undefined) return false
  const head = await s3.send(new HeadObjectCommand({ Bucket: webhookBucket, Key: webhookKey('', id, CREATED_AT), ChecksumMode: 'ENABLED' }))
  return head.ChecksumSHA256 !== undefined
}
const checksums = { integrity: await storedChecksum('integrity'), plain: await storedChecksum('plain') }
const sideOf = (all: WebhookRound[]): { webhooksPerSecond: number, p50Ms: number, p99Ms: number, errors: number, serviceCpuMsPerWebhook: number, motoCpuMsPerWebhook: number } => {
  const ok = all.reduce((n, r) => n + r.ok, 0)
  return {
    webhooksPerSecond: ok / all.reduce((n, r) => n + r.seconds, 0),
    p50Ms: median(all.map((r) => r.p50)),
    p99Ms: median(all.map((r) => r.p99)),
    errors: all.reduce((n, r) => n + r.errors, 0),
    serviceCpuMsPerWebhook: 1000 * all.reduce((n, r) => n + r.serviceCpu, 0) / ok,
    motoCpuMsPerWebhook: 1000 * all.reduce((n, r) => n + r.motoCpu, 0) / ok
  }
}
const webhookSides = { integrity: sideOf(webhookRounds.integrity), plain: sideOf(webhookRounds.plain) }
const throughputRatio = webhookSides.integrity.webhooksPerSecond / webhookSides.plain.webhooksPerSecond
const webhooks = {
  perVariant: WEBHOOKS,
  concurrency: WEBHOOK_CONCURRENCY,
  rounds,
  threatstackLatencyMs: THREATSTACK_LATENCY_MS,
  ...webhookSides,
  throughputRatio,
  p50Ratio: webhookSides.integrity.p50Ms / webhookSides.plain.p50Ms,
  cost: 1 - throughputRatio,
  strippedRequests: stripped,
  storedChecksum: checksums,
  checked: answered.size,
  missing: missing.length
}
process.stderr.write(`webhooks: integrity ${webhookSides.integrity.webhooksPerSecond.toFixed(1)}/s p50 ${webhookSides.integrity.p50Ms} ms; plain ${webhookSides.plain.webhooksPerSecond.toFixed(1)}/s p50 ${webhookSides.plain.p50Ms} ms\n`)

const results: Record<Variant, Array<{ perSecond: number, p50: number }>> = { integrity: [], plain: [] }
for (let r = 0; r < rounds; r++) {
  for (const name of orderOf(r)) {
    results[name].push(await round(name, Math.ceil(PUTS / rounds), r * PUTS))
  }
}
const ingest = Object.fromEntries(Object.entries(results).map(([k, v]) => [k, { putsPerSecond: median(v.map((x) => x.perSecond)), p50Ms: median(v.map((x) => x.p50)) }]))

const first = Date.UTC(2017, 0, 15, 12)
const limit = pLimit(CONCURRENCY)
const pair = generateKeyPairSync('ed25519')
const signer = ed25519Signer(pair.privateKey.export({ type: 'pkcs8', format: 'pem' }))
// Hour by hour, as the job runs: each hour of ALERTS alerts is archived, then digested.
const digestSeconds: number[] = []
for (let h = 0; h < HOURS; h++) {
  const hour = first + h * HOUR_MS
  await Promise.all(Array.from({ length: ALERTS }, async (_, i) => limit(async () => {
    const id = `digest${String(h).padStart(2, '0')}${String(i).padStart(6, '0')}`
    const ms = hour + (i % 60) * 60_000
    await putJson(store, webhookKey('', id, ms), body(id))
    await putJson(store, alertKey('', id), { ...body(id), details: 'full alert' })
  })))
  const d0 = performance.now()
  await runDigestJob({ store, signer, owner: 'bench', lookbackHours: 1 }, hour + HOUR_MS + 5 * 60_000)
  digestSeconds.push((performance.now() - d0) / 1000)
}
const { publicKey } = pair
const v0 = performance.now()
const report = await verifyArchive({ store, publicKey }, { startMs: first, endMs: first + HOURS * HOUR_MS })
const verifySeconds = (performance.now() - v0) / 1000

const out = {
  date: new Date().toISOString(),
  node: process.versions.node,
  server: 'moto 5 (in memory, one Python process)',
  concurrency: CONCURRENCY,
  webhooks,
  ingest: { puts: PUTS, ...ingest, cost: 1 - (ingest.integrity?.putsPerSecond ?? 0) / (ingest.plain?.putsPerSecond ?? 1) },
  digest: { alertsPerHour: ALERTS, objectsPerHour: ALERTS * 2, secondsPerHour: median(digestSeconds) },
  verify: { ok: report.ok, alerts: ALERTS * HOURS, objects: report.objectsChecked, seconds: verifySeconds, objectsPerSecond: report.objectsChecked / verifySeconds }
}
process.stdout.write(`${JSON.stringify(out, null, 2)}\n`)
function markdown (): string {
  const f = (x: number, digits = 1): string => x.toFixed(digits)
  const w = webhooks
  const i = ingest.integrity
  const p = ingest.plain
  return [
    '# Integrity benchmark',
    '',
    `Run of ${out.date} (Node ${out.node}, ${out.server}). Webhooks: ${w.perVariant} per variant at concurrency ${w.concurrency}, ${w.rounds} ABBA rounds, Threat Stack simulator with ${w.threatstackLatencyMs} ms added; "plain" is the same service process with If-None-Match and the checksum headers removed from its S3 requests. PUTs: ${out.ingest.puts} per variant at concurrency ${out.concurrency}.`,
    '',
    '| measure | with integrity | plain | ratio (integrity / plain) |',
    '|---|---|---|---|',
    `| webhooks/s | ${f(w.integrity.webhooksPerSecond)} | ${f(w.plain.webhooksPerSecond)} | ${f(w.throughputRatio, 3)} |`,
    `| webhook p50 ms | ${w.integrity.p50Ms} | ${w.plain.p50Ms} | ${f(w.p50Ratio, 3)} |`,
    `| webhook p99 ms | ${w.integrity.p99Ms} | ${w.plain.p99Ms} | ${f(w.integrity.p99Ms / w.plain.p99Ms, 3)} |`,
    `| service CPU ms / webhook | ${f(w.integrity.serviceCpuMsPerWebhook, 2)} | ${f(w.plain.serviceCpuMsPerWebhook, 2)} | ${f(w.integrity.serviceCpuMsPerWebhook / w.plain.serviceCpuMsPerWebhook, 3)} |`,
    `| moto CPU ms / webhook | ${f(w.integrity.motoCpuMsPerWebhook, 2)} | ${f(w.plain.motoCpuMsPerWebhook, 2)} | ${f(w.integrity.motoCpuMsPerWebhook / w.plain.motoCpuMsPerWebhook, 3)} |`,
    `| PUTs/s | ${f(i?.putsPerSecond ?? Number.NaN)} | ${f(p?.putsPerSecond ?? Number.NaN)} | ${f((i?.putsPerSecond ?? Number.NaN) / (p?.putsPerSecond ?? Number.NaN), 3)} |`,
    `| PUT p50 ms | ${f(i?.p50Ms ?? Number.NaN)} | ${f(p?.p50Ms ?? Number.NaN)} | ${f((i?.p50Ms ?? Number.NaN) / (p?.p50Ms ?? Number.NaN), 3)} |`,
    '',
    '| job | objects | seconds | objects/s |',
    '|---|---|---|---|',
    `| digest job, one hour of ${out.digest.alertsPerHour} alerts (median of ${HOURS} hours) | ${out.digest.objectsPerHour} | ${f(out.digest.secondsPerHour)} | ${f(out.digest.objectsPerHour / out.digest.secondsPerHour)} |`,
    `| verify, ${out.verify.alerts} alerts | ${out.verify.objects} | ${f(out.verify.seconds)} | ${f(out.verify.objectsPerSecond)} |`,
    ''
  ].join('\n')
}

if (!smoke) {
  const dir = resultsDir(process.argv.slice(2))
  await mkdir(dir, { recursive: true })
  await writeFile(join(dir, 'integrity.json'), `${JSON.stringify(out, null, 2)}\n`)
  await writeFile(join(dir, 'integrity.md'), markdown())
  process.stderr.write(`results written to ${dir}\n`)
}
// The run measured what it says only if the stripped variant sent no integrity header and stored
// no checksum, the other did both, and every alert answered 200 is in S3.
const problems = [
  ...(report.ok ? [] : ['the archive does not verify']),
  ...(stripped.plain > 0 ? [] : ['no request had its integrity headers removed in the plain rounds']),
  ...(stripped.integrity === 0 ? [] : [`${stripped.integrity} requests had headers removed in the integrity rounds`]),
  ...(checksums.integrity && !checksums.plain ? [] : [`stored checksums: integrity ${String(checksums.integrity)}, plain ${String(checksums.plain)}`]),
  ...(missing.length === 0 ? [] : [`${missing.length} alerts answered 200 are not complete in S3`]),
  ...(webhookSides.integrity.errors + webhookSides.plain.errors === 0 ? [] : [`${webhookSides.integrity.errors + webhookSides.plain.errors} webhooks not answered 200`])
]
for (const p of problems) process.stderr.write(`FAILED: ${p}\n`)
if (problems.length > 0) process.exitCode = 1
s3.destroy()
moto.kill('SIGTERM')
await once(moto, 'exit')
