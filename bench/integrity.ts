// npm run bench:integrity: what integrity costs, on moto (the S3 here that enforces it).
//   - ingest side: PUTs of webhook-sized JSON, write-once + SHA-256 checksum (the service's
//     putJson) vs a plain PutObject, alternated in rounds, same client, same objects;
//   - the digest job's time for one hour of BENCH_DIGEST_ALERTS alerts (two objects each);
//   - verify's throughput over BENCH_VERIFY_ALERTS alerts (whole hours of BENCH_DIGEST_ALERTS).
// Needs moto_server on PATH. Sizes: BENCH_PUTS (default 2000), BENCH_DIGEST_ALERTS (default
// 5000), BENCH_VERIFY_ALERTS (default 10000).
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { generateKeyPairSync } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { CreateBucketCommand, PutObjectCommand } from '@aws-sdk/client-s3'
import pLimit from 'p-limit'
import { createS3Client, storeOf } from '../services/s3-client.js'
import { alertKey, webhookKey } from '../services/keys.js'
import { putJson } from '../services/storage.js'
import { HOUR_MS, runDigestJob } from '../services/digest.js'
import { ed25519Signer } from '../services/signer.js'
import { verifyArchive } from '../services/verify.js'

const PUTS = Number(process.env.BENCH_PUTS ?? 2000)
const ALERTS = Number(process.env.BENCH_DIGEST_ALERTS ?? 5000)
const HOURS = Math.max(1, Math.ceil(Number(process.env.BENCH_VERIFY_ALERTS ?? 10_000) / ALERTS))
const CONCURRENCY = 16

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

const results: Record<'integrity' | 'plain', Array<{ perSecond: number, p50: number }>> = { integrity: [], plain: [] }
const rounds = 4
for (let r = 0; r < rounds; r++) {
  for (const name of (r % 2 === 0 ? ['plain', 'integrity'] : ['integrity', 'plain']) as Array<'integrity' | 'plain'>) {
    results[name].push(await round(name, Math.ceil(PUTS / rounds), r * PUTS))
  }
}
const median = (xs: number[]): number => percentile(xs, 0.5)
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
  server: 'moto 5 (in memory, one Python process)',
  concurrency: CONCURRENCY,
  ingest: { puts: PUTS, ...ingest, cost: 1 - (ingest.integrity?.putsPerSecond ?? 0) / (ingest.plain?.putsPerSecond ?? 1) },
  digest: { alertsPerHour: ALERTS, objectsPerHour: ALERTS * 2, secondsPerHour: median(digestSeconds) },
  verify: { ok: report.ok, alerts: ALERTS * HOURS, objects: report.objectsChecked, seconds: verifySeconds, objectsPerSecond: report.objectsChecked / verifySeconds }
}
process.stdout.write(`${JSON.stringify(out, null, 2)}\n`)
if (!report.ok) process.exitCode = 1
s3.destroy()
moto.kill('SIGTERM')
await once(moto, 'exit')
