// npm run bench:completeness — what proving the archive complete costs.
// Backfill: the backfill CLI (its own process, as an operator runs it) imports a day of alerts
// that the Threat Stack simulator lists, into s3rver on a temp folder behind the S3 proxy: once
// with no rate limit (how fast we go), once with the API limited below that (the run follows the
// limit: its request rate is the limit's, not ours). Alerts/s, Threat Stack requests (list pages,
// full-alert GETs, 429s) and S3 requests; every hour's ledger must say complete.
// Sweeper: over the day once archived and ledgered, a sweep with nothing to do (every ledger
// fresh), then the re-check of every complete hour (what a due re-check runs under its lease):
// S3 requests (counted by a middleware on the sweeper's client) and Threat Stack requests per hour.
//   COMPLETENESS_BENCH_ALERTS (20000 per day)  COMPLETENESS_BENCH_LIMITED_ALERTS (5000, the day of the limited run)
//   COMPLETENESS_BENCH_CONCURRENCY (8, the CLI's default)
//   COMPLETENESS_BENCH_RATE_LIMIT (requests per window; default half the unlimited run's request rate)
//   COMPLETENESS_BENCH_RATE_WINDOW_MS (1000)
//   BENCH_SMOKE=1: 240 and 120 alerts, figures printed, nothing checked but the ledgers, no file written (CI)
// Writes .bench/results/completeness.{json,md}, or bench/results/ with --update-results.
import { spawn } from 'node:child_process'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { loadConfig } from '../config.js'
import { LOCAL_S3_CREDENTIALS, startLocalS3 } from '../dev/local-s3.js'
import { startS3FaultProxy } from '../dev/s3-fault-proxy.js'
import { startThreatStackSimulator } from '../dev/threatstack-simulator.js'
import { createS3Client, storeOf } from '../services/s3-client.js'
import { closeThreatStackClient, createThreatStackClient } from '../services/threatstack.js'
import { HOUR_MS, readLedger } from '../services/ledger.js'
import { backfillHour } from '../services/backfill.js'
import { sweepOnce } from '../services/sweeper.js'
import { ROOT } from './lib.js'
import { resultsDir } from './report.js'

const smoke = process.env.BENCH_SMOKE === '1'
const ALERTS = Number(process.env.COMPLETENESS_BENCH_ALERTS ?? (smoke ? 240 : 20_000))
// Enough for the limited run to settle at the limit's pace, short of a second long run.
const LIMITED_ALERTS = Number(process.env.COMPLETENESS_BENCH_LIMITED_ALERTS ?? (smoke ? 120 : 5000))
const CONCURRENCY = Number(process.env.COMPLETENESS_BENCH_CONCURRENCY ?? 8)
const WINDOW_MS = Number(process.env.COMPLETENESS_BENCH_RATE_WINDOW_MS ?? 1000)
const DAY_MS = 24 * HOUR_MS
// Two past days, a day apart: the sweep's window over the first ends in an hour of no alerts.
const DAY_FREE = Date.UTC(2025, 5, 1)
const DAY_LIMITED = Date.UTC(2025, 5, 3)
const BUCKET = 'bench-completeness'
const USER = 'bench-user'
const ORG = 'bench-org'
const KEY = 'bench-api-key'

const dir = await mkdtemp(join(tmpdir(), 'ts2s3-bench-completeness-'))
const s3server = await startLocalS3({ directory: dir, buckets: [BUCKET] })
const proxy = await startS3FaultProxy(s3server.endpoint)
const sim = await startThreatStackSimulator({ apiKey: KEY, userId: USER, organizationId: ORG })
const env = {
  TS_AWS_S3_BUCKET: BUCKET,
  AWS_ENDPOINT_URL_S3: proxy.endpoint,
  AWS_ACCESS_KEY_ID: LOCAL_S3_CREDENTIALS.accessKeyId,
  AWS_SECRET_ACCESS_KEY: LOCAL_S3_CREDENTIALS.secretAccessKey,
  THREATSTACK_BASE_URL: sim.url,
  THREATSTACK_API_KEY: KEY,
  THREATSTACK_USER_ID: USER,
  THREATSTACK_ORGANIZATION_ID: ORG,
  AUTH_MODE: 'none',
  LOG_LEVEL: 'silent'
}
const config = loadConfig(env)
const s3 = createS3Client(config.s3)
let s3Requests = 0
s3.middlewareStack.add((next) => async (args) => { s3Requests++; return await next(args) }, { step: 'initialize', name: 'benchCount' })
const store = storeOf(config.s3, s3)
const threatstack = createThreatStackClient(config.threatstack)

interface Backfill {
  label: string
  alerts: number
  /** From the first Threat Stack request to the exit. */
  seconds: number
  /** From the spawn to the exit. */
  wallSeconds: number
  alertsPerSecond: number
  /** `perSecond`: requests answered (not 429) per second. */
  threatstack: { requests: number, listPages: number, alertGets: number, rateLimited: number, perSecond: number }
  s3Requests: number
  rateLimit?: { limit: number, windowMs: number, perSecond: number }
  /** The limited run's request rate over the limit's: near 1, the API bounds the run. */
  shareOfLimit?: number
  hoursComplete: number
  exitCode: number | null
}

const isList = (path: string): boolean => /\/alerts\?/.test(path)

/** The backfill CLI over one day; the simulator's and the proxy's records tell what it asked. */
async function backfillDay (label: string, dayMs: number, alerts: number): Promise<Backfill> {
  sim.raiseAlerts({ count: alerts, fromMs: dayMs, untilMs: dayMs + DAY_MS, seed: dayMs / DAY_MS })
  const tsBefore = sim.requests.length
  const s3Before = proxy.requests.length
  process.stderr.write(`backfill ${label}: ${alerts} alerts over ${new Date(dayMs).toISOString().slice(0, 10)}\n`)
  const started = performance.now()
  const child = spawn(process.execPath, ['--import', 'tsx', 'cli/backfill.ts', '--start', new Date(dayMs).toISOString(), '--end', new Date(dayMs + DAY_MS).toISOString(), '--concurrency', String(CONCURRENCY)], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let out = ''
  child.stdout.on('data', (chunk: Buffer) => { out += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { out += chunk.toString() })
  const exitCode = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  const exitedAt = Date.now()
  const wallSeconds = (performance.now() - started) / 1000
  if (exitCode !== 0) process.stderr.write(`backfill ${label}: exit code ${String(exitCode)}\n${out.split('\n').slice(-12).join('\n')}\n`)
  const asked = sim.requests.slice(tsBefore)
  // The work itself, from its first Threat Stack request: Node and tsx starting are not the backfill's pace.
  const seconds = asked[0] === undefined ? wallSeconds : (exitedAt - asked[0].at) / 1000
  let hoursComplete = 0
  for (let h = dayMs; h < dayMs + DAY_MS; h += HOUR_MS) if ((await readLedger(store, h))?.complete === true) hoursComplete++
  return {
    label,
    alerts,
    seconds,
    wallSeconds,
    alertsPerSecond: alerts / seconds,
    threatstack: {
      requests: asked.length,
      listPages: asked.filter((r) => isList(r.path) && r.rateLimited !== true).length,
      alertGets: asked.filter((r) => !isList(r.path) && r.rateLimited !== true).length,
      rateLimited: asked.filter((r) => r.rateLimited === true).length,
      perSecond: asked.filter((r) => r.rateLimited !== true).length / seconds
    },
    s3Requests: proxy.requests.length - s3Before,
    hoursComplete,
    exitCode
  }
}

interface SweepCost { label: string, hours: number, s3Requests: number, threatstackRequests: number, s3PerHour: number, threatstackPerHour: number, seconds: number }

async function measureSweep (label: string, hours: number, work: () => Promise<unknown>): Promise<SweepCost> {
  const s3Before = s3Requests
  const tsBefore = sim.requests.length
  const started = performance.now()
  await work()
  const s3Count = s3Requests - s3Before
  const tsCount = sim.requests.length - tsBefore
  return { label, hours, s3Requests: s3Count, threatstackRequests: tsCount, s3PerHour: s3Count / hours, threatstackPerHour: tsCount / hours, seconds: (performance.now() - started) / 1000 }
}

const f = (n: number, digits = 1): string => Number.isFinite(n) ? n.toLocaleString('en', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : '–'

function markdown (run: { date: string, node: string, concurrency: number, backfill: Backfill[], sweep: SweepCost[] }): string {
  return [
    `Run of ${run.date} (Node ${run.node}; backfill CLI at --concurrency ${run.concurrency}, in its own process, against s3rver behind the S3 proxy and the Threat Stack simulator, both on loopback with no added latency; ` +
      'seconds from its first Threat Stack request to its exit, the process start left out; the API limit counts the requests it answers, not its 429s).',
    '',
    '| backfill of a day | alerts | seconds | alerts/s | Threat Stack requests (list pages, alert GETs, 429s) | answered/s | API limit, requests/s | share of the limit used | S3 requests | hours complete |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...run.backfill.map((b) => `| ${b.label} | ${b.alerts.toLocaleString('en')} | ${f(b.seconds)} | ${f(b.alertsPerSecond, 0)} | ` +
      `${b.threatstack.requests.toLocaleString('en')} (${b.threatstack.listPages}, ${b.threatstack.alertGets.toLocaleString('en')}, ${b.threatstack.rateLimited}) | ` +
      `${f(b.threatstack.perSecond, 0)} | ${b.rateLimit === undefined ? 'none' : f(b.rateLimit.perSecond, 0)} | ${b.shareOfLimit === undefined ? '–' : f(b.shareOfLimit, 2)} | ` +
      `${b.s3Requests.toLocaleString('en')} | ${b.hoursComplete}/24 |`),
    '',
    '| sweeper, nothing to do | hours | S3 requests | per hour | Threat Stack requests | per hour | seconds |',
    '|---|---|---|---|---|---|---|',
    ...run.sweep.map((s) => `| ${s.label} | ${s.hours} | ${s.s3Requests} | ${f(s.s3PerHour, 2)} | ${s.threatstackRequests} | ${f(s.threatstackPerHour, 2)} | ${f(s.seconds, 2)} |`),
    ''
  ].join('\n')
}

let exitCode = 1
try {
  const free = await backfillDay('no rate limit', DAY_FREE, ALERTS)
  const limit = Number(process.env.COMPLETENESS_BENCH_RATE_LIMIT ?? Math.max(1, Math.floor(free.threatstack.perSecond / 2 * WINDOW_MS / 1000)))

  // The day is archived and every hour ledgered: a sweep whose window is the day and the (empty) hour after.
  const sweepNow = DAY_FREE + DAY_MS + 30 * 60_000
  const deps = { store, threatstack, concurrency: 8, owner: 'bench-sweeper', backfill: true, lookbackHours: 25, backfillDelayMs: 15 * 60_000, intervalMs: 60_000 }
  const idle = await measureSweep('sweep, every ledger fresh (24 closed hours and the open one)', 25, async () => {
    const report = await sweepOnce(deps, sweepNow)
    if (report.hoursChecked > 1 || report.backfilled > 0 || report.enriched > 0) throw new Error(`the idle sweep did work: ${JSON.stringify(report)}`)
  })
  const recheck = await measureSweep('re-check of a complete hour (due), per hour', 24, async () => {
    for (let h = DAY_FREE; h < DAY_FREE + DAY_MS; h += HOUR_MS) {
      const hour = await backfillHour(deps, h)
      if (hour.backfilled.length > 0 || hour.enriched.length > 0) throw new Error(`the re-check of ${new Date(h).toISOString()} did work`)
    }
  })

  sim.setRateLimit({ limit, windowMs: WINDOW_MS })
  const limited = await backfillDay(`API limited to ${limit} requests per ${WINDOW_MS} ms`, DAY_LIMITED, LIMITED_ALERTS)
  sim.setRateLimit(undefined)
  limited.rateLimit = { limit, windowMs: WINDOW_MS, perSecond: limit * 1000 / WINDOW_MS }
  limited.shareOfLimit = limited.threatstack.perSecond / limited.rateLimit.perSecond

  const run = { date: new Date().toISOString(), node: process.versions.node, concurrency: CONCURRENCY, backfill: [free, limited], sweep: [idle, recheck] }
  const md = markdown(run)
  process.stdout.write(`${md}\n`)
  if (!smoke) {
    const out = resultsDir(process.argv.slice(2))
    await mkdir(out, { recursive: true })
    await writeFile(join(out, 'completeness.json'), `${JSON.stringify(run, null, 2)}\n`)
    await writeFile(join(out, 'completeness.md'), `# Completeness benchmark: backfill and sweeper\n\n${md}`)
    process.stdout.write(`results written to ${out}\n`)
  }
  const problems = [free, limited].flatMap((b) => [
    ...(b.hoursComplete === 24 ? [] : [`${b.label}: ${24 - b.hoursComplete} hours not complete`]),
    ...(b.exitCode === 0 ? [] : [`${b.label}: the backfill exited ${String(b.exitCode)}`])
  ])
  process.stdout.write(problems.length === 0 ? 'all checks hold\n' : `${problems.map((p) => `FAILED: ${p}`).join('\n')}\n`)
  exitCode = problems.length === 0 ? 0 : 1
} finally {
  s3.destroy()
  await closeThreatStackClient(threatstack)
  await sim.close()
  await proxy.close()
  await s3server.close()
  await rm(dir, { recursive: true, force: true })
}
process.exit(exitCode)
