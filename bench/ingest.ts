// npm run bench — webhooks per second and latency of the service at concurrency 1, 32 and 256,
// beside a plain client doing the same upstream work with no server in front, on local S3
// and the Threat Stack simulator with added latency. Checks afterwards that every alert
// answered 200 is complete in S3, and writes .bench/results/ (untracked), or the committed
// bench/results/ with `npm run bench -- --update-results`.
// Each concurrency is measured in BENCH_ROUNDS rounds, service and plain client taking turns,
// so that both meet the same background load on a shared machine: throughput over all rounds,
// latency percentiles the median of the rounds'.
//   BENCH_CONCURRENCY (1,32,256)  BENCH_DURATION_S (10, per side and concurrency)  BENCH_ROUNDS (3)
//   UPSTREAM_LATENCY_MS (5)  BENCH_HEAP_MB (1024)
//   BENCH_SMOKE=1: a few seconds, figures printed but no target checked and no file written (CI)
//   BENCH_SERVICE_TSX=1: the service from the sources (no build); BENCH_SERVICE_NODE_ARGS, BENCH_SERVICE_LOG
// `--ack` (`npm run bench:ack`): the acknowledgement, now that a webhook is answered once its record
// is stored. Threat Stack slow (BENCH_THREATSTACK_LATENCY_MS, 200), S3 at UPSTREAM_LATENCY_MS, the
// service with ENRICH_WAIT_MS=0 (BENCH_ENRICH_WAIT_MS) so that it never waits for a full alert, and
// the plain client doing one S3 PUT (the webhook record) per webhook: the goal is service p50 ≤
// 1.10 × that PUT's. After the rounds it waits (BENCH_DRAIN_S, 300) for the background enrichment to
// store every full alert, then checks every alert answered 200 complete in S3. Writes ingest-ack.*.
import autocannon from 'autocannon'
import { freePort } from '../dev/net.js'
import {
  HEAP_MB, incompleteInS3, processStats, sampleRss, serviceEnv, spawnPlain, startService,
  startUpstreamsProcess, stopProcess, webhookRequests, type Upstreams
} from './lib.js'
import { markdown, resultsDir, writeResults, type Row, type Run, type Side } from './report.js'

const smoke = process.env.BENCH_SMOKE === '1'
const concurrencies = (process.env.BENCH_CONCURRENCY ?? (smoke ? '1,8' : '1,32,256')).split(',').map(Number)
const durationS = Number(process.env.BENCH_DURATION_S ?? (smoke ? 1 : 10))
const rounds = Math.max(1, Number(process.env.BENCH_ROUNDS ?? (smoke ? 1 : 3)))
const roundS = durationS / rounds

/** One round of one side. */
interface Round { ok: number, seconds: number, p50: number, p99: number, errors: number, peakRssMb: number, cpuSeconds: number }

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid] as number : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
}

function combine (all: Round[]): Side {
  const ok = all.reduce((n, r) => n + r.ok, 0)
  return {
    perSecond: ok / all.reduce((n, r) => n + r.seconds, 0),
    p50: median(all.map((r) => r.p50)),
    p99: median(all.map((r) => r.p99)),
    errors: all.reduce((n, r) => n + r.errors, 0),
    peakRssMb: Math.max(...all.map((r) => r.peakRssMb)),
    cpuSecondsPer1000: ok === 0 ? Number.NaN : all.reduce((n, r) => n + r.cpuSeconds, 0) / (ok / 1000)
  }
}
const latencyMs = process.env.UPSTREAM_LATENCY_MS ?? '5'
const ack = process.argv.includes('--ack')
const threatstackLatencyMs = process.env.BENCH_THREATSTACK_LATENCY_MS ?? '200'
const enrichWaitMs = process.env.BENCH_ENRICH_WAIT_MS ?? '0'
const drainS = Number(process.env.BENCH_DRAIN_S ?? (smoke ? 60 : 300))
// The owed full alerts are fetched in the background at Threat Stack's pace: 8 at once would take
// minutes to drain 200 ms fetches after a 256-connection round.
const ackServiceEnv: Record<string, string> = ack ? { ENRICH_WAIT_MS: enrichWaitMs, ENRICH_CONCURRENCY: process.env.BENCH_ENRICH_CONCURRENCY ?? '64' } : {}

async function serviceStep (url: string, pid: number, concurrency: number, answered: string[], tag: string, seconds = roundS): Promise<Round> {
  const before = await processStats(pid)
  const rss = sampleRss(pid)
  const result = await autocannon({
    url: `${url}/api/v1/s3/alert`,
    connections: concurrency,
    duration: seconds,
    requests: webhookRequests(tag, (status, id) => { if (status === 200) answered.push(id) })
  })
  const { peak } = rss.stop()
  const statuses = Object.entries((result as unknown as { statusCodeStats: Record<string, { count: number }> }).statusCodeStats ?? {})
    .filter(([code]) => code !== '200').map(([code, { count }]) => `${code}×${count}`)
  if (statuses.length > 0 || result.errors > 0) process.stderr.write(`  concurrency ${concurrency}: non-200 answers ${statuses.join(' ') || 'none'}, connection errors ${result.errors}, timeouts ${result.timeouts}\n`)
  const after = await processStats(pid)
  return {
    ok: result['2xx'],
    seconds: result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors + result.timeouts + result.non2xx,
    peakRssMb: peak / 1024 / 1024,
    cpuSeconds: after.cpuSeconds - before.cpuSeconds
  }
}

async function plainStep (upstreams: Upstreams, concurrency: number, tag: string): Promise<Round> {
  const { child, firstLine } = await spawnPlain({
    ...serviceEnv(upstreams),
    PLAIN_CONCURRENCY: String(concurrency),
    PLAIN_DURATION_MS: String(roundS * 1000),
    PLAIN_RUN: tag,
    ...(ack && { PLAIN_MODE: 'put' })
  })
  await stopProcess(child)
  const r = JSON.parse(firstLine) as { sequences: number, seconds: number, p50: number, p99: number, errors: number, peakRssMb: number, cpuSecondsPer1000: number }
  return { ok: r.sequences, seconds: r.seconds, p50: r.p50, p99: r.p99, errors: r.errors, peakRssMb: r.peakRssMb, cpuSeconds: r.cpuSecondsPer1000 * r.sequences / 1000 }
}

const { child: upstreamsProcess, upstreams } = await startUpstreamsProcess(ack
  ? { UPSTREAM_LATENCY_MS: latencyMs, THREATSTACK_LATENCY_MS: threatstackLatencyMs }
  : { UPSTREAM_LATENCY_MS: latencyMs })
let exitCode = 1
try {
  const port = await freePort()
  const service = await startService({ ...serviceEnv(upstreams), LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info', ...ackServiceEnv }, port)
  const url = `http://127.0.0.1:${port}`
  try {
    const answered: string[] = []
    // Warm-up: JIT, connection pools.
    await serviceStep(url, service.pid!, 8, answered, 'warmup', Math.min(durationS, 5))
    const rows: Row[] = []
    for (const concurrency of concurrencies) {
      const serviceRounds: Round[] = []
      const plainRounds: Round[] = []
      for (let round = 0; round < rounds; round++) {
        const tag = `c${concurrency}-r${round}`
        serviceRounds.push(await serviceStep(url, service.pid!, concurrency, answered, `svc-${tag}`))
        plainRounds.push(await plainStep(upstreams, concurrency, `plain-${tag}`))
      }
      const serviceSide = combine(serviceRounds)
      const plain = combine(plainRounds)
      rows.push({ concurrency, service: serviceSide, plain, latencyRatio: serviceSide.p50 / plain.p50, throughputRatio: serviceSide.perSecond / plain.perSecond })
      process.stderr.write(`concurrency ${concurrency}: service ${serviceSide.perSecond.toFixed(0)}/s p50 ${serviceSide.p50} ms; plain ${plain.perSecond.toFixed(0)}/s p50 ${plain.p50.toFixed(1)} ms\n`)
    }
    const alive = service.exitCode === null && service.signalCode === null
    // An answer that did not wait for the full alert owes it: the background enrichment drains, bounded.
    const drainStarted = Date.now()
    let incomplete = await incompleteInS3(upstreams, answered)
    const drainRounds = ack ? Math.ceil(drainS / 2) : 0
    for (let i = 0; i < drainRounds && incomplete.length > 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 2000))
      incomplete = await incompleteInS3(upstreams, incomplete)
    }
    const drainSeconds = (Date.now() - drainStarted) / 1000
    const run: Run = {
      date: new Date().toISOString(),
      durationS,
      rounds,
      upstreamLatencyMs: Number(latencyMs),
      heapMb: HEAP_MB,
      node: process.versions.node,
      rows,
      missing: incomplete.length,
      checked: answered.length,
      ...(ack && { ack: { threatstackLatencyMs: Number(threatstackLatencyMs), enrichWaitMs: Number(enrichWaitMs), drainSeconds } })
    }
    process.stdout.write(`${markdown(run)}\n`)
    if (!smoke) process.stdout.write(`results written to ${await writeResults(run, resultsDir(process.argv.slice(2)), ack ? 'ingest-ack' : 'ingest')}\n`)

    const problems: string[] = []
    if (!alive) problems.push('the service process ended during the run')
    if (incomplete.length > 0) problems.push(`${incomplete.length} alerts answered 200 are not complete in S3: ${incomplete.slice(0, 5).join(', ')}`)
    for (const r of rows) if (r.service.errors > 0) problems.push(`${r.service.errors} errors at concurrency ${r.concurrency}`)
    if (!smoke && ack) {
      for (const r of rows) if (r.latencyRatio > 1.10) problems.push(`p50 ${r.latencyRatio.toFixed(2)} × the bare PUT's > 1.10 at concurrency ${r.concurrency}`)
    } else if (!smoke) {
      for (const r of rows) {
        if ((r.concurrency === 1 || r.concurrency === 32) && r.latencyRatio > 1.10) problems.push(`latency ratio ${r.latencyRatio.toFixed(2)} > 1.10 at concurrency ${r.concurrency}`)
        if (r.concurrency === 256 && r.throughputRatio < 0.70) problems.push(`throughput ratio ${r.throughputRatio.toFixed(2)} < 0.70 at concurrency 256`)
        if (r.concurrency === 256 && r.service.peakRssMb > 150) problems.push(`peak RSS ${r.service.peakRssMb.toFixed(0)} MB > 150 MB at concurrency 256`)
      }
    }
    process.stdout.write(problems.length === 0
      ? `all checks hold${smoke ? ' (smoke run: targets not checked)' : ''}\n`
      : `${problems.map((p) => `FAILED: ${p}`).join('\n')}\n`)
    exitCode = problems.length === 0 ? 0 : 1
  } finally {
    await stopProcess(service)
  }
} finally {
  await stopProcess(upstreamsProcess)
}
process.exit(exitCode)
