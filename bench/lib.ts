// Shared by the benchmark and soak scripts: the upstreams and the service as child processes,
// their resource use, the service's environment, the check that archived alerts are in S3.
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, openSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { createInterface } from 'node:readline'
import { request } from 'undici'
import pLimit from 'p-limit'
import { HeadObjectCommand, S3Client } from '@aws-sdk/client-s3'
import { LOCAL_S3_CREDENTIALS } from '../dev/local-s3.js'
import { alertKey, webhookKey } from '../services/keys.js'

export const ROOT = fileURLToPath(new URL('..', import.meta.url))

export interface Upstreams { s3: string, s3Direct: string, threatstack: string, bucket: string, apiKey: string }

export const INGEST_TOKEN = 'bench-ingest-token-000001'
export const READ_TOKEN = 'bench-read-token-0000001'
/** created_at of every webhook posted: all webhook records share one minute prefix. */
export const CREATED_AT = Date.UTC(2017, 0, 15, 23, 10)

/**
 * Heap size of the service and the plain client, in MB (BENCH_HEAP_MB; 0: Node's default).
 * Node sizes the heap from the memory it may use, a quarter of it: in a 4 GB container, 1024,
 * young generation included. On a host with much more memory V8 takes larger spaces and grows
 * the heap up to four times the live data between collections, which measures the host rather
 * than the service.
 */
export const HEAP_MB = Number(process.env.BENCH_HEAP_MB ?? 1024)

/**
 * autocannon's request for authenticated webhooks: one bare alert per request, each with its own
 * id (`<tag>-<n>`), `onAnswer` told each answer's status and id.
 */
export function webhookRequests (tag: string, onAnswer: (status: number, id: string) => void): never[] {
  let counter = 0
  return [{
    method: 'POST',
    headers: { authorization: `Bearer ${INGEST_TOKEN}`, 'content-type': 'application/json' },
    setupRequest: (req: Record<string, unknown>, context: Record<string, unknown>) => {
      const id = `${tag}-${counter++}`
      context.id = id
      return { ...req, body: JSON.stringify({ id, created_at: String(CREATED_AT), severity: '2', title: 'bench' }) }
    },
    onResponse: (status: number, _body: string, context: Record<string, unknown>) => { onAnswer(status, context.id as string) }
  } as never]
}
const heapArgs = HEAP_MB > 0 ? [`--max-heap-size=${HEAP_MB}`] : []

// Children are ended with this process, however it ends (a timeout's SIGTERM included).
const children = new Set<ChildProcess>()
function track (child: ChildProcess): ChildProcess {
  children.add(child)
  child.once('exit', () => children.delete(child))
  return child
}
process.once('exit', () => { for (const child of children) child.kill('SIGTERM') })
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    for (const child of children) child.kill('SIGTERM')
    process.exit(signal === 'SIGINT' ? 130 : 143)
  })
}

/** The service's environment against `upstreams`. */
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
    READ_TOKENS: READ_TOKEN
  }
}

/**
 * Runs `script` (TypeScript, from the repo root) in its own Node process; resolves with its first
 * stdout line. Its stdin stays open: a script that serves until told (bench/upstreams.ts) ends
 * when this process does.
 */
export async function spawnScript (script: string, env: Record<string, string> = {}, nodeArgs: string[] = []): Promise<{ child: ChildProcess, firstLine: string }> {
  const child = track(spawn(process.execPath, [...nodeArgs, '--import', 'tsx', script], {
    cwd: ROOT,
    env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', ...env },
    stdio: ['pipe', 'pipe', 'inherit']
  }))
  const lines = createInterface({ input: child.stdout! })
  const firstLine = await new Promise<string>((resolve, reject) => {
    lines.once('line', resolve)
    child.once('exit', (code) => reject(new Error(`${script} exited with ${String(code)} before answering`)))
  })
  return { child, firstLine }
}

export async function startUpstreamsProcess (env: Record<string, string> = {}): Promise<{ child: ChildProcess, upstreams: Upstreams }> {
  const { child, firstLine } = await spawnScript('bench/upstreams.ts', env)
  return { child, upstreams: JSON.parse(firstLine) as Upstreams }
}

/** The plain client (bench/plain.ts) with the service's heap limit. */
export async function spawnPlain (env: Record<string, string>): Promise<{ child: ChildProcess, firstLine: string }> {
  return await spawnScript('bench/plain.ts', env, heapArgs)
}

/**
 * The service as `npm start` runs it (dist/server.js: `npm run build` first), or from the
 * sources with tsx when BENCH_SERVICE_TSX=1 (no build needed); ready once /health answers.
 * BENCH_SERVICE_NODE_ARGS adds Node options, e.g. `--cpu-prof --cpu-prof-dir=bench/profiles`;
 * BENCH_SERVICE_LOG=<file> keeps its log.
 */
export async function startService (env: Record<string, string>, port: number): Promise<ChildProcess> {
  const fromSources = process.env.BENCH_SERVICE_TSX === '1'
  if (!fromSources && !existsSync(`${ROOT}dist/server.js`)) throw new Error('dist/server.js is missing: run `npm run build` first, or set BENCH_SERVICE_TSX=1')
  const nodeArgs = [...heapArgs, ...(process.env.BENCH_SERVICE_NODE_ARGS ?? '').split(' ').filter((a) => a !== '')]
  const entry = fromSources ? ['--import', 'tsx', 'server.ts'] : ['dist/server.js']
  const child = track(spawn(process.execPath, [...nodeArgs, ...entry], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', PORT: String(port), HOST: '127.0.0.1', ...env },
    stdio: ['ignore', process.env.BENCH_SERVICE_LOG === undefined ? 'ignore' : openSync(process.env.BENCH_SERVICE_LOG, 'w'), 'inherit']
  }))
  for (let i = 0; i < 600 && child.exitCode === null; i++) {
    const up = await request(`http://127.0.0.1:${port}/health`).then(async (r) => { await r.body.dump(); return r.statusCode === 200 }, () => false)
    if (up) return child
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error('the service did not start')
}

/** CPU seconds (user + system) and resident memory of a process, from /proc. */
export async function processStats (pid: number): Promise<{ cpuSeconds: number, rssBytes: number }> {
  const stat = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]?.split(' ') ?? []
  // Fields 14 and 15 of /proc/PID/stat (utime, stime) are the 12th and 13th after the command name, in clock ticks (100/s on Linux).
  const cpuSeconds = (Number(stat[11]) + Number(stat[12])) / 100
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0)
  return { cpuSeconds, rssBytes: rssKb * 1024 }
}

/** Samples a process's RSS every `everyMs` until stopped; returns the peak and all samples. */
export function sampleRss (pid: number, everyMs = 200): { stop: () => { peak: number, samples: number[] } } {
  const samples: number[] = []
  const timer = setInterval(() => {
    processStats(pid).then((s) => { samples.push(s.rssBytes) }, () => {})
  }, everyMs)
  return { stop: () => { clearInterval(timer); return { peak: Math.max(0, ...samples), samples } } }
}

export function percentile (sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number
}

export async function stopProcess (child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  child.kill('SIGTERM')
  return await exited
}

/** The ids, of those given, whose webhook record or full alert is not in the bucket (read directly, not through the proxy). */
export async function incompleteInS3 (upstreams: Upstreams, ids: string[]): Promise<string[]> {
  const s3 = new S3Client({ region: 'us-east-1', endpoint: upstreams.s3Direct, forcePathStyle: true, credentials: LOCAL_S3_CREDENTIALS })
  const limit = pLimit(32)
  const head = async (key: string): Promise<boolean> => s3.send(new HeadObjectCommand({ Bucket: upstreams.bucket, Key: key })).then(() => true, () => false)
  try {
    const incomplete = await Promise.all(ids.map(async (id) => limit(async () =>
      (await head(webhookKey('', id, CREATED_AT)) && await head(alertKey('', id))) ? undefined : id)))
    return incomplete.filter((id): id is string => id !== undefined)
  } finally {
    s3.destroy()
  }
}
