// Builds the app for a test on real parts: s3rver on a temp dir and the Threat Stack simulator,
// both on 127.0.0.1 port 0, and the app with a Config made by the real config loader.
import Fastify, { type FastifyInstance } from 'fastify'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3'
import app, { loggerOptions, serverOptions } from '../../app.js'
import { loadConfig, type Config } from '../../config.js'
import { LOCAL_S3_CREDENTIALS, startLocalS3, type LocalS3 } from '../../dev/local-s3.js'
import { startThreatStackSimulator, type ThreatStackSimulator } from '../../dev/threatstack-simulator.js'
import { startS3FaultProxy, type S3FaultProxy } from '../../dev/s3-fault-proxy.js'
import { Agent, type Dispatcher } from 'undici'

type Tap = { teardown: (fn: () => unknown) => void }

/** Values that must never show in a response (and, for the secrets, never in a log). */
export const SECRETS = {
  apiKey: 'tsk-SECRET-api-key-5f2c9e',
  userId: 'tsu-SECRET-user-77a1',
  organizationId: 'tso-SECRET-org-9b3e',
  bucket: 'secret-archive-bucket-4d1'
}
/** A Threat Stack client policy of one attempt per call, for tests of single failures. */
export const NO_RETRY = { retries: 0, baseDelayMs: 1, maxDelayMs: 1, budgetMs: 60_000 }

export const TOKENS = {
  ingest: 'ingest-SECRET-token-0001',
  read: 'read-SECRET-token-000001'
}
export const BEARER = {
  ingest: { authorization: `Bearer ${TOKENS.ingest}` },
  read: { authorization: `Bearer ${TOKENS.read}` }
}

export interface Upstreams {
  s3: LocalS3
  threatstack: ThreatStackSimulator
  env: Record<string, string>
}

/** Local S3 (with the bucket) and the simulator, closed at teardown. */
export async function startUpstreams (t: Tap, options: { hawk?: boolean } = {}): Promise<Upstreams> {
  const hawk = options.hawk ?? true
  const dir = await mkdtemp(join(tmpdir(), 'ts2s3-s3-'))
  const s3 = await startLocalS3({ directory: dir, buckets: [SECRETS.bucket] })
  const threatstack = await startThreatStackSimulator({
    apiKey: SECRETS.apiKey,
    ...(hawk && { userId: SECRETS.userId, organizationId: SECRETS.organizationId })
  })
  t.teardown(async () => {
    await threatstack.close()
    await s3.close()
    await rm(dir, { recursive: true, force: true })
  })
  const env: Record<string, string> = {
    TS_AWS_S3_BUCKET: SECRETS.bucket,
    AWS_ENDPOINT_URL_S3: s3.endpoint,
    AWS_ACCESS_KEY_ID: LOCAL_S3_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: LOCAL_S3_CREDENTIALS.secretAccessKey,
    THREATSTACK_BASE_URL: threatstack.url,
    THREATSTACK_API_KEY: SECRETS.apiKey,
    ...(hawk && { THREATSTACK_USER_ID: SECRETS.userId, THREATSTACK_ORGANIZATION_ID: SECRETS.organizationId }),
    INGEST_TOKENS: TOKENS.ingest,
    READ_TOKENS: TOKENS.read,
    // Keep failing upstream calls quick in tests.
    THREATSTACK_TIMEOUT_MS: '1500',
    // Each failure mode is seen once; the retry tests set their own policy.
    THREATSTACK_RETRIES: '0',
    S3_TIMEOUT_MS: '2000',
    S3_MAX_ATTEMPTS: '1',
    STATUS_TIMEOUT_MS: '1000',
    // Shedding on event-loop pressure would answer 503 at random on a busy machine;
    // test/plugins/load.test.ts turns it on where it is the subject.
    LOAD_MAX_EVENT_LOOP_DELAY_MS: '0',
    LOAD_MAX_EVENT_LOOP_UTILIZATION: '0',
    LOG_LEVEL: 'silent',
    // The periodic digest job writes to the bucket; the tests that are about it turn it on.
    SWEEP_INTERVAL_S: '0',
    // An answer waits for its full alerts as long as Threat Stack answers, so that `archived` does
    // not turn into `pending` on a loaded machine; the tests of the wait set their own.
    ENRICH_WAIT_MS: '60000'
  }
  return { s3, threatstack, env }
}

export interface Built extends Upstreams {
  app: FastifyInstance
  /** With `s3Proxy`: the fault-injecting proxy the app reaches S3 through. */
  s3proxy: S3FaultProxy | undefined
  config: Config
  /** Every log line of the app, parsed. */
  logs: Array<Record<string, unknown>>
  /** Reads an object back from the local S3 server, undefined when absent. */
  readObject: (key: string) => Promise<{ body: string, contentType: string | undefined } | undefined>
}

export interface BuildOptions {
  /** Environment overrides; a value of undefined removes the variable. */
  env?: Record<string, string | undefined>
  hawk?: boolean
  /** Log level captured into `logs` (default: info). */
  logLevel?: string
  /** Put a fault-injecting, request-recording proxy between the app and S3. */
  s3Proxy?: boolean
  /** Where SNS certificate fetches and confirmations go; default: nowhere (tests reach no network). */
  snsDispatcher?: Dispatcher
}

/** A dispatcher whose every connection fails at once: what an SNS call reaches in a test that set none. */
function noNetwork (t: Tap): Dispatcher {
  const agent = new Agent({ connect: (_options, callback) => { callback(new Error('tests reach no network'), null) } })
  t.teardown(async () => agent.close())
  return agent
}

export async function build (t: Tap, options: BuildOptions = {}): Promise<Built> {
  const upstreams = await startUpstreams(t, { hawk: options.hawk ?? true })
  let s3proxy: S3FaultProxy | undefined
  if (options.s3Proxy === true) {
    const proxy = await startS3FaultProxy(upstreams.s3.endpoint)
    t.teardown(async () => proxy.close())
    s3proxy = proxy
  }
  const config = loadConfig({
    ...upstreams.env,
    ...(s3proxy !== undefined && { AWS_ENDPOINT_URL_S3: s3proxy.endpoint }),
    ...options.env
  })
  const logs: Array<Record<string, unknown>> = []
  const stream = new Writable({
    write (chunk, _encoding, done) {
      for (const line of String(chunk).split('\n')) if (line !== '') logs.push(JSON.parse(line) as Record<string, unknown>)
      done()
    }
  })
  const instance = Fastify({ ...serverOptions(config), logger: { ...loggerOptions(options.logLevel ?? 'info'), stream } })
  await instance.register(app, { config, snsDispatcher: options.snsDispatcher ?? noNetwork(t) })
  await instance.ready()
  t.teardown(async () => instance.close())

  const reader = new S3Client({
    region: 'us-east-1',
    endpoint: upstreams.s3.endpoint,
    forcePathStyle: true,
    credentials: LOCAL_S3_CREDENTIALS
  })
  t.teardown(() => reader.destroy())
  async function readObject (key: string): Promise<{ body: string, contentType: string | undefined } | undefined> {
    try {
      const res = await reader.send(new GetObjectCommand({ Bucket: SECRETS.bucket, Key: key }))
      return { body: await res.Body!.transformToString(), contentType: res.ContentType }
    } catch (err) {
      if ((err as { name?: string }).name === 'NoSuchKey') return undefined
      throw err
    }
  }

  return { ...upstreams, app: instance, s3proxy, config, logs, readObject }
}
