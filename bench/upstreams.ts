// The upstreams of a benchmark or soak run, in a process of their own so that they do not
// share the load generator's event loop: s3rver on a temp dir behind the S3 proxy, and the
// Threat Stack simulator. Prints one JSON line with their addresses, then serves until killed.
//   UPSTREAM_LATENCY_MS  added to every S3 and Threat Stack call (default 5)
//   THREATSTACK_LATENCY_MS, S3_LATENCY_MS  the same for one upstream only (default UPSTREAM_LATENCY_MS)
//   FAULT_RATE           share of calls failed at random (default 0): Threat Stack HTML 503,
//                        429, hang; S3 SlowDown, 500
//   FAULT_LOG            a file that gets one JSON line per injected fault: upstream, fault, path
// Ends when its parent closes its stdin (or on SIGTERM/SIGINT), so it never outlives a run.
import { appendFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startLocalS3 } from '../dev/local-s3.js'
import { startS3FaultProxy } from '../dev/s3-fault-proxy.js'
import { startThreatStackSimulator } from '../dev/threatstack-simulator.js'

export const BENCH_BUCKET = 'bench-archive'
export const BENCH_API_KEY = 'bench-api-key'

const latencyMs = Number(process.env.UPSTREAM_LATENCY_MS ?? 5)
const s3LatencyMs = Number(process.env.S3_LATENCY_MS ?? latencyMs)
const threatstackLatencyMs = Number(process.env.THREATSTACK_LATENCY_MS ?? latencyMs)
const faultRate = Number(process.env.FAULT_RATE ?? 0)
const faultLog = process.env.FAULT_LOG

const dir = await mkdtemp(join(tmpdir(), 'ts2s3-bench-'))
const s3 = await startLocalS3({ directory: dir, buckets: [BENCH_BUCKET] })
const proxy = await startS3FaultProxy(s3.endpoint, { latencyMs: s3LatencyMs })
const simulator = await startThreatStackSimulator({ apiKey: BENCH_API_KEY, userId: 'bench-user', organizationId: 'bench-org', latencyMs: threatstackLatencyMs })
if (faultRate > 0) {
  simulator.failRandomly(faultRate, ['html-503', 'json-429', 'hang'])
  proxy.failRandomly(faultRate, ['slowdown', 'internal'])
}
// The request logs are emptied every second (a long run keeps none), the faults written out first.
// A simulator request gets its fault after the added latency: only those older than 2 s are taken.
function drain (all = false): void {
  const cutoff = all ? Number.POSITIVE_INFINITY : Date.now() - 2000
  const young = simulator.requests.findIndex((r) => r.at >= cutoff)
  const simulated = simulator.requests.splice(0, young === -1 ? simulator.requests.length : young)
  const proxied = proxy.requests.splice(0, proxy.requests.length)
  const lines = [
    ...simulated.flatMap((r) => r.fault === undefined ? [] : [{ upstream: 'threatstack', fault: r.fault, path: r.path }]),
    ...proxied.flatMap((r) => r.fault === undefined ? [] : [{ upstream: 's3', fault: r.fault, path: r.path }])
  ]
  if (faultLog !== undefined && lines.length > 0) appendFileSync(faultLog, lines.map((l) => `${JSON.stringify(l)}\n`).join(''))
}
setInterval(drain, 1000).unref()

process.stdout.write(`${JSON.stringify({ s3: proxy.endpoint, s3Direct: s3.endpoint, threatstack: simulator.url, bucket: BENCH_BUCKET, apiKey: BENCH_API_KEY })}\n`)

let stopping = false
const stop = async (): Promise<void> => {
  if (stopping) return
  stopping = true
  drain(true)
  await simulator.close()
  await proxy.close()
  await s3.close()
  await rm(dir, { recursive: true, force: true })
  process.exit(0)
}
process.on('SIGTERM', () => { stop().catch(() => process.exit(1)) })
process.on('SIGINT', () => { stop().catch(() => process.exit(1)) })
process.stdin.on('end', () => { stop().catch(() => process.exit(1)) })
process.stdin.resume()
