// npm run soak — steady webhook load for SOAK_SECONDS (120) while the Threat Stack simulator
// and the S3 proxy fail a share of calls at random (Threat Stack HTML 503, 429, hang; S3
// SlowDown, 500). Then checks that every alert answered 200 has both objects in S3, that
// every other answer is the JSON error envelope of the type the injected fault calls for,
// that the service is still alive and healthy, and that its RSS did not grow by 10 % or more
// from the first minute to the last (runs of 2 minutes or more). Prints a summary; exits 1 on
// any violation.
//   SOAK_SECONDS (120)  SOAK_RATE (webhooks/s, 100)  SOAK_CONNECTIONS (32)  FAULT_RATE (0.05)
//   UPSTREAM_LATENCY_MS (5)  BENCH_SERVICE_TSX=1: the service from the sources (no build)
//   SOAK_CHAOS=0: skip the chaos proof that follows the soak (it needs moto_server)
import autocannon from 'autocannon'
import { spawnSync } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'
import { freePort } from '../dev/net.js'
import {
  CREATED_AT, INGEST_TOKEN, READ_TOKEN, incompleteInS3, processStats, serviceEnv, startService, startUpstreamsProcess, stopProcess
} from './lib.js'

const seconds = Number(process.env.SOAK_SECONDS ?? 120)
const rate = Number(process.env.SOAK_RATE ?? 100)
const connections = Number(process.env.SOAK_CONNECTIONS ?? 32)
const faultRate = process.env.FAULT_RATE ?? '0.05'
const latencyMs = process.env.UPSTREAM_LATENCY_MS ?? '5'
const MINUTE_S = 60
const MAX_RSS_GROWTH = 0.10

// Short upstream timeouts and one retry, so that a hang costs a second and some faults outlast
// the retries: both the recovered and the failed paths are exercised.
const SERVICE_SETTINGS = {
  THREATSTACK_TIMEOUT_MS: '1000',
  THREATSTACK_RETRIES: '1',
  THREATSTACK_BUDGET_MS: '5000',
  S3_TIMEOUT_MS: '2000',
  S3_MAX_ATTEMPTS: '2'
}

/** The error type and status each injected fault may surface as, once retries are spent. */
const EXPECTED: Record<string, { type: string, status: number }> = {
  'threatstack:html-503': { type: 'ThreatStackRequestError', status: 502 },
  'threatstack:json-429': { type: 'ThreatStackAPIError', status: 503 },
  'threatstack:hang': { type: 'ThreatStackRequestError', status: 504 },
  's3:slowdown': { type: 'S3ClientError', status: 503 },
  's3:internal': { type: 'S3ClientError', status: 502 }
}
const SHED = { type: 'ServiceUnavailableError', status: 503 }

interface Failure { id: string, status: number, body: string, headers: Record<string, string | string[]> }
interface Envelope { success: false, error: { type: string, message: string, requestId: string } }

function envelopeOf (body: string): Envelope | undefined {
  try {
    const value = JSON.parse(body) as Envelope
    const e = value?.error
    return value.success === false && typeof e?.type === 'string' && typeof e.message === 'string' && typeof e.requestId === 'string' ? value : undefined
  } catch {
    return undefined
  }
}

/** Faults injected per alert id, from the upstreams' fault log: `upstream:fault` each. */
function faultsById (log: string): Map<string, Set<string>> {
  const byId = new Map<string, Set<string>>()
  for (const line of log.split('\n')) {
    if (line === '') continue
    const { upstream, fault, path } = JSON.parse(line) as { upstream: string, fault: string, path: string }
    const id = decodeURIComponent(path.split('?')[0]?.split('/').at(-1) ?? '')
    const set = byId.get(id) ?? new Set()
    set.add(`${upstream}:${fault}`)
    byId.set(id, set)
  }
  return byId
}

const count = (values: string[]): string => {
  const counts = new Map<string, number>()
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1)
  return [...counts].sort().map(([k, n]) => `${k} ×${n}`).join(', ') || 'none'
}

const dir = await mkdtemp(join(tmpdir(), 'ts2s3-soak-'))
const faultLog = join(dir, 'faults.jsonl')
const { child: upstreamsProcess, upstreams } = await startUpstreamsProcess({ UPSTREAM_LATENCY_MS: latencyMs, FAULT_RATE: faultRate, FAULT_LOG: faultLog })
const problems: string[] = []
const lines: string[] = []
try {
  const port = await freePort()
  const service = await startService({ ...serviceEnv(upstreams), ...SERVICE_SETTINGS }, port)
  const url = `http://127.0.0.1:${port}`
  const answered: string[] = []
  const failures: Failure[] = []
  let counter = 0

  // RSS once a second, with the second of the run it was taken at.
  const rss: Array<{ at: number, bytes: number }> = []
  const started = Date.now()
  const sampler = setInterval(() => {
    processStats(service.pid!).then((s) => { rss.push({ at: (Date.now() - started) / 1000, bytes: s.rssBytes }) }, () => {})
  }, 1000)

  const result = await autocannon({
    url: `${url}/api/v1/s3/alert`,
    connections,
    overallRate: rate,
    duration: seconds,
    timeout: 30,
    requests: [{
      method: 'POST',
      headers: { authorization: `Bearer ${INGEST_TOKEN}`, 'content-type': 'application/json' },
      setupRequest: (req: Record<string, unknown>, context: Record<string, unknown>) => {
        const id = `soak-${counter++}`
        context.id = id
        return { ...req, body: JSON.stringify({ id, created_at: String(CREATED_AT), severity: '2', title: 'soak' }) }
      },
      onResponse: (status: number, body: string, context: Record<string, unknown>, headers: Record<string, string | string[]>) => {
        if (status === 200) answered.push(context.id as string)
        else failures.push({ id: context.id as string, status, body, headers })
      }
    } as never]
  })
  clearInterval(sampler)

  // Still serving?
  const alive = service.exitCode === null && service.signalCode === null
  const health = alive ? await request(`${url}/health`).then(async (r) => { await r.body.dump(); return r.statusCode }, () => 0) : 0
  if (!alive) problems.push('the service process ended during the run')
  else if (health !== 200) problems.push(`/health answered ${health} after the run`)
  const metrics = alive
    ? await request(`${url}/metrics`, { headers: { authorization: `Bearer ${READ_TOKEN}` } }).then(async (r) => await r.body.text(), () => '')
    : ''
  const retries = (upstream: string): string =>
    metrics.split('\n').find((l) => l.startsWith(`threatstack_to_s3_upstream_retries_total{upstream="${upstream}"}`))?.split(' ')[1] ?? '0'
  await stopProcess(service)

  // Every 200 is complete in S3.
  const incomplete = await incompleteInS3(upstreams, answered)
  if (incomplete.length > 0) problems.push(`${incomplete.length} alerts answered 200 are not complete in S3: ${incomplete.slice(0, 5).join(', ')}`)

  // Every other answer is an envelope of the type its faults call for.
  await stopProcess(upstreamsProcess)
  const faults = faultsById(await readFile(faultLog, 'utf8').catch(() => ''))
  const allFaults = [...faults.values()].flatMap((s) => [...s])
  const seen: string[] = []
  for (const f of failures) {
    const envelope = envelopeOf(f.body)
    if (envelope === undefined) {
      problems.push(`alert ${f.id}: ${f.status} without the JSON error envelope: ${f.body.slice(0, 120)}`)
      continue
    }
    const { type, requestId } = envelope.error
    seen.push(`${f.status} ${type}`)
    const injected = [...(faults.get(f.id) ?? [])]
    const allowed = [...injected.map((k) => EXPECTED[k]).filter((e) => e !== undefined), SHED]
    if (!allowed.some((e) => e.type === type && e.status === f.status)) {
      problems.push(`alert ${f.id}: ${f.status} ${type}, but the faults injected for it were ${injected.join(', ') || 'none'}`)
    }
    if (f.headers['x-request-id'] !== requestId) problems.push(`alert ${f.id}: requestId ${requestId} is not the x-request-id header`)
    if (f.status === 503 && f.headers['retry-after'] === undefined) problems.push(`alert ${f.id}: 503 without Retry-After`)
  }
  const lost = result.errors + result.timeouts
  if (lost > 0) problems.push(`${lost} requests had no answer (connection errors ${result.errors}, timeouts ${result.timeouts})`)

  // RSS: the first minute against the last (peaks), once the run is long enough to have both.
  const window = (from: number, to: number): number => Math.max(0, ...rss.filter((s) => s.at >= from && s.at < to).map((s) => s.bytes))
  const mb = (b: number): string => `${(b / 1024 / 1024).toFixed(0)} MB`
  let rssLine: string
  if (seconds >= 2 * MINUTE_S) {
    const first = window(0, MINUTE_S)
    const last = window(seconds - MINUTE_S, Number.POSITIVE_INFINITY)
    const growth = (last - first) / first
    rssLine = `peak RSS ${mb(first)} in the first minute, ${mb(last)} in the last (${growth >= 0 ? '+' : ''}${(growth * 100).toFixed(1)} %)`
    if (!(growth < MAX_RSS_GROWTH)) problems.push(`RSS grew ${(growth * 100).toFixed(1)} % from the first minute to the last`)
  } else {
    rssLine = `peak RSS ${mb(window(0, Number.POSITIVE_INFINITY))} (growth not checked: the run is shorter than ${2 * MINUTE_S} s)`
  }

  lines.push(
    `soak summary: ${seconds} s at ${rate} webhooks/s over ${connections} connections, fault rate ${faultRate}, ${latencyMs} ms added per upstream call`,
    `  service settings: ${Object.entries(SERVICE_SETTINGS).map(([k, v]) => `${k}=${v}`).join(' ')}`,
    `  sent ${counter}, answered 200: ${answered.length} (all checked in S3, ${incomplete.length} incomplete), other answers: ${failures.length}, no answer: ${lost}`,
    `  faults injected: ${count(allFaults)}`,
    `  retries: threatstack ${retries('threatstack')}, s3 ${retries('s3')}`,
    `  error answers: ${count(seen)}`,
    `  service alive after the run: ${alive ? 'yes' : 'no'}, /health ${health}`,
    `  ${rssLine}`
  )
} finally {
  await stopProcess(upstreamsProcess)
  await rm(dir, { recursive: true, force: true })
}

// Then the chaos proof (test/chaos.test.ts, on real processes): Threat Stack down, S3 down past
// the sender's three resends, a replica SIGKILLed, the service stopped; after recovery every
// alert must be archived once with both objects and every ledger say 0 missing.
if (process.env.SOAK_CHAOS !== '0') {
  const chaos = spawnSync(process.execPath, ['--import', 'tsx', 'test/chaos.test.ts'], {
    encoding: 'utf8',
    env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    timeout: 330_000
  })
  const out = `${chaos.stdout ?? ''}${chaos.stderr ?? ''}`
  const figures = /chaos figures: (.*)/.exec(out)?.[1]
  const skipped = /moto_server/.test(out) && figures === undefined && chaos.status === 0
  lines.push(`chaos: ${skipped ? 'not run (no moto_server on PATH)' : chaos.status === 0 ? 'every check holds' : 'FAILED'}${figures !== undefined ? `, ${figures}` : ''}`)
  if (chaos.status !== 0) problems.push(`chaos: ${out.split('\n').filter((l) => /not ok/.test(l)).slice(0, 10).join('; ') || `exit ${String(chaos.status)}`}`)
}
process.stdout.write(`${lines.join('\n')}\n`)
process.stdout.write(problems.length === 0 ? 'soak: all checks hold\n' : `${problems.slice(0, 30).map((p) => `FAILED: ${p}`).join('\n')}\n${problems.length > 30 ? `... and ${problems.length - 30} more\n` : ''}`)
process.exit(problems.length === 0 ? 0 : 1)
