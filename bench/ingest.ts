// npm run bench — webhooks per second and latency of the service at concurrency 1, 32 and 256,
// beside a plain client doing the same upstream work with no server in front, on local S3
// and the Threat Stack simulator with added latency. Checks afterwards that every alert
// answered 200 is complete in S3, and writes bench/results/.
//   BENCH_CONCURRENCY (1,32,256)  BENCH_DURATION_S (10)  UPSTREAM_LATENCY_MS (5)
//   BENCH_SMOKE=1: a few seconds, figures printed but no target checked (CI)
import autocannon from 'autocannon'
import pLimit from 'p-limit'
import { HeadObjectCommand, S3Client } from '@aws-sdk/client-s3'
import { freePort } from '../dev/net.js'
import { LOCAL_S3_CREDENTIALS } from '../dev/local-s3.js'
import { alertKey, webhookKey } from '../services/keys.js'
import { processStats, sampleRss, spawnScript, startService, startUpstreamsProcess, stopProcess, type Upstreams } from './lib.js'
import { markdown, writeResults, type Row, type Run, type Side } from './report.js'

const smoke = process.env.BENCH_SMOKE === '1'
const concurrencies = (process.env.BENCH_CONCURRENCY ?? (smoke ? '1,8' : '1,32,256')).split(',').map(Number)
const durationS = Number(process.env.BENCH_DURATION_S ?? (smoke ? 2 : 10))
const latencyMs = process.env.UPSTREAM_LATENCY_MS ?? '5'
const INGEST_TOKEN = 'bench-ingest-token-000001'
const CREATED_AT = Date.UTC(2017, 0, 15, 23, 10)

export function serviceEnv (upstreams: Upstreams): Record<string, string> {
  return {
    TS_AWS_S3_BUCKET: upstreams.bucket,
    AWS_ENDPOINT_URL_S3: upstreams.s3,
    AWS_ACCESS_KEY_ID: LOCAL_S3_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: LOCAL_S3_CREDENTIALS.secretAccessKey,
    THREATSTACK_BASE_URL: upstreams.threatstack,
    THREATSTACK_API_KEY: upstreams.apiKey,
    THREATSTACK_USER_ID: 'bench-user',
    THREATSTACK_ORGANIZATION_ID: 'bench-org',
    INGEST_TOKENS: INGEST_TOKEN,
    READ_TOKENS: 'bench-read-token-0000001'
  }
}

async function serviceStep (url: string, pid: number, concurrency: number, answered: string[], tag: string): Promise<Row['service']> {
  let counter = 0
  const before = await processStats(pid)
  const rss = sampleRss(pid)
  const result = await autocannon({
    url: `${url}/api/v1/s3/alert`,
    connections: concurrency,
    duration: durationS,
    requests: [{
      method: 'POST',
      headers: { authorization: `Bearer ${INGEST_TOKEN}`, 'content-type': 'application/json' },
      setupRequest: (req: Record<string, unknown>, context: Record<string, unknown>) => {
        const id = `${tag}-${counter++}`
        context.id = id
        return { ...req, body: JSON.stringify({ id, created_at: String(CREATED_AT), severity: '2', title: 'bench' }) }
      },
      onResponse: (status: number, _body: string, context: Record<string, unknown>) => {
        if (status === 200) answered.push(context.id as string)
      }
    } as never]
  })
  const { peak } = rss.stop()
  const statuses = Object.entries((result as unknown as { statusCodeStats: Record<string, { count: number }> }).statusCodeStats ?? {})
    .filter(([code]) => code !== '200').map(([code, { count }]) => `${code}×${count}`)
  if (statuses.length > 0 || result.errors > 0) process.stderr.write(`  concurrency ${concurrency}: non-200 answers ${statuses.join(' ') || 'none'}, connection errors ${result.errors}, timeouts ${result.timeouts}\n`)
  const after = await processStats(pid)
  const ok = result['2xx']
  return {
    perSecond: ok / result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors + result.timeouts + result.non2xx,
    peakRssMb: peak / 1024 / 1024,
    cpuSecondsPer1000: ok === 0 ? Number.NaN : (after.cpuSeconds - before.cpuSeconds) / (ok / 1000)
  }
}

async function plainStep (upstreams: Upstreams, concurrency: number, tag: string): Promise<Side> {
  const { child, firstLine } = await spawnScript('bench/plain.ts', {
    ...serviceEnv(upstreams),
    PLAIN_CONCURRENCY: String(concurrency),
    PLAIN_DURATION_MS: String(durationS * 1000),
    PLAIN_RUN: tag
  })
  await stopProcess(child)
  const r = JSON.parse(firstLine) as { perSecond: number, p50: number, p99: number, errors: number }
  return { perSecond: r.perSecond, p50: r.p50, p99: r.p99, errors: r.errors }
}

async function checkStored (upstreams: Upstreams, ids: string[]): Promise<string[]> {
  const s3 = new S3Client({ region: 'us-east-1', endpoint: upstreams.s3Direct, forcePathStyle: true, credentials: LOCAL_S3_CREDENTIALS })
  const limit = pLimit(32)
  const head = async (key: string): Promise<boolean> => s3.send(new HeadObjectCommand({ Bucket: upstreams.bucket, Key: key })).then(() => true, () => false)
  const incomplete = await Promise.all(ids.map(async (id) => limit(async () =>
    (await head(webhookKey('', id, CREATED_AT)) && await head(alertKey('', id))) ? undefined : id)))
  s3.destroy()
  return incomplete.filter((id): id is string => id !== undefined)
}

const { child: upstreamsProcess, upstreams } = await startUpstreamsProcess({ UPSTREAM_LATENCY_MS: latencyMs })
const port = await freePort()
const service = await startService({ ...serviceEnv(upstreams), LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info' }, port)
const url = `http://127.0.0.1:${port}`
let exitCode = 0
try {
  const answered: string[] = []
  // Warm-up: JIT, connection pools.
  await serviceStep(url, service.pid!, 8, answered, 'warmup')
  const rows: Row[] = []
  for (const concurrency of concurrencies) {
    const tag = `c${concurrency}`
    const serviceSide = await serviceStep(url, service.pid!, concurrency, answered, `svc-${tag}`)
    const plain = await plainStep(upstreams, concurrency, `plain-${tag}`)
    rows.push({ concurrency, service: serviceSide, plain, latencyRatio: serviceSide.p50 / plain.p50, throughputRatio: serviceSide.perSecond / plain.perSecond })
    process.stderr.write(`concurrency ${concurrency}: service ${serviceSide.perSecond.toFixed(0)}/s p50 ${serviceSide.p50} ms; plain ${plain.perSecond.toFixed(0)}/s p50 ${plain.p50.toFixed(1)} ms\n`)
  }
  const incomplete = await checkStored(upstreams, answered)
  const run: Run = {
    date: new Date().toISOString(), durationS, upstreamLatencyMs: Number(latencyMs), node: process.versions.node, rows, missing: incomplete.length, checked: answered.length
  }
  process.stdout.write(`${markdown(run)}\n`)
  if (!smoke) process.stdout.write(`results written to ${await writeResults(run)}\n`)

  const problems: string[] = []
  if (incomplete.length > 0) problems.push(`${incomplete.length} alerts answered 200 are not complete in S3: ${incomplete.slice(0, 5).join(', ')}`)
  for (const r of rows) if (r.service.errors > 0) problems.push(`${r.service.errors} errors at concurrency ${r.concurrency}`)
  if (!smoke) {
    for (const r of rows) {
      if ((r.concurrency === 1 || r.concurrency === 32) && r.latencyRatio > 1.10) problems.push(`latency ratio ${r.latencyRatio.toFixed(2)} > 1.10 at concurrency ${r.concurrency}`)
      if (r.concurrency === 256 && r.throughputRatio < 0.70) problems.push(`throughput ratio ${r.throughputRatio.toFixed(2)} < 0.70 at concurrency 256`)
      if (r.concurrency === 256 && r.service.peakRssMb > 150) problems.push(`peak RSS ${r.service.peakRssMb.toFixed(0)} MB > 150 MB at concurrency 256`)
    }
  }
  process.stdout.write(problems.length === 0 ? 'all checks hold\n' : `${problems.map((p) => `FAILED: ${p}`).join('\n')}\n`)
  exitCode = problems.length === 0 ? 0 : 1
} finally {
  await stopProcess(service)
  await stopProcess(upstreamsProcess)
}
process.exit(exitCode)
