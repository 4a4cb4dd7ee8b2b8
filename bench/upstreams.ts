// The upstreams of a benchmark or soak run, in a process of their own so that they do not
// share the load generator's event loop: s3rver on a temp dir behind the S3 proxy, and the
// Threat Stack simulator. Prints one JSON line with their addresses, then serves until killed.
//   UPSTREAM_LATENCY_MS  added to every S3 and Threat Stack call (default 5)
//   FAULT_RATE           share of calls failed at random (default 0): Threat Stack HTML 503,
//                        429, hang; S3 SlowDown, 500
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startLocalS3 } from '../dev/local-s3.js'
import { startS3FaultProxy } from '../dev/s3-fault-proxy.js'
import { startThreatStackSimulator } from '../dev/threatstack-simulator.js'

export const BENCH_BUCKET = 'bench-archive'
export const BENCH_API_KEY = 'bench-api-key'

const latencyMs = Number(process.env.UPSTREAM_LATENCY_MS ?? 5)
const faultRate = Number(process.env.FAULT_RATE ?? 0)

const dir = await mkdtemp(join(tmpdir(), 'ts2s3-bench-'))
const s3 = await startLocalS3({ directory: dir, buckets: [BENCH_BUCKET] })
const proxy = await startS3FaultProxy(s3.endpoint, { latencyMs })
const simulator = await startThreatStackSimulator({ apiKey: BENCH_API_KEY, userId: 'bench-user', organizationId: 'bench-org', latencyMs })
if (faultRate > 0) {
  simulator.failRandomly(faultRate, ['html-503', 'json-429', 'hang'])
  proxy.failRandomly(faultRate, ['slowdown', 'internal'])
}
// The proxy keeps no request log in a long run.
setInterval(() => { proxy.requests.length = 0; simulator.requests.length = 0 }, 1000).unref()

process.stdout.write(`${JSON.stringify({ s3: proxy.endpoint, s3Direct: s3.endpoint, threatstack: simulator.url, bucket: BENCH_BUCKET, apiKey: BENCH_API_KEY })}\n`)

const stop = async (): Promise<void> => {
  await simulator.close()
  await proxy.close()
  await s3.close()
  await rm(dir, { recursive: true, force: true })
  process.exit(0)
}
process.on('SIGTERM', () => { stop().catch(() => process.exit(1)) })
process.on('SIGINT', () => { stop().catch(() => process.exit(1)) })
