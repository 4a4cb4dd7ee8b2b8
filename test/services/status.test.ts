// The dependency check behind GET /status, against s3rver and the Threat Stack simulator:
// both sides, failures reported to onFailure, and the cache that stops it hammering upstreams.
import t, { type Test } from 'tap'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Config } from '../../config.js'
import { S3ClientError, ThreatStackAPIError, ThreatStackRequestError } from '../../errors/index.js'
import { createS3Client } from '../../services/s3-client.js'
import { LOCAL_S3_CREDENTIALS, startLocalS3 } from '../../dev/local-s3.js'
import type { ThreatStackSimulator } from '../../dev/threatstack-simulator.js'
import { createStatusChecker, type DependencyStatus, type StatusDeps } from '../../services/status.js'
import type { Store } from '../../services/storage.js'
import { closeThreatStackClient, createThreatStackClient } from '../../services/threatstack.js'
import { SECRETS, startUpstreams, NO_RETRY } from '../helpers/build.js'

interface Failure { dependency: keyof DependencyStatus, err: unknown }

function store (t: Test, endpoint: string, bucket = SECRETS.bucket): Store {
  const cfg: Config['s3'] = {
    bucket,
    prefix: '',
    region: 'us-east-1',
    endpoint,
    credentials: LOCAL_S3_CREDENTIALS,
    timeoutMs: 2000,
    connectTimeoutMs: 500,
    maxSockets: 4,
    maxAttempts: 1
  }
  const s3 = createS3Client(cfg)
  t.teardown(() => s3.destroy())
  return { s3, bucket, prefix: '' }
}

interface Setup {
  sim: ThreatStackSimulator
  failures: Failure[]
  /** Made on the running S3 (with the bucket) unless `store` is given. */
  checker: (options?: { store?: Store, cacheMs?: number, timeoutMs?: number, now?: () => number }) => () => Promise<DependencyStatus>
  endpoint: string
}

async function setup (t: Test): Promise<Setup> {
  const { s3, threatstack: sim } = await startUpstreams(t)
  const threatstack = createThreatStackClient({
    baseUrl: sim.url,
    apiKey: SECRETS.apiKey,
    auth: { kind: 'hawk', userId: SECRETS.userId, organizationId: SECRETS.organizationId },
    timeoutMs: 2000,
    connectTimeoutMs: 1000,
    maxConnections: 4,
    maxResponseBytes: 64 * 1024,
    retry: NO_RETRY
  })
  t.teardown(async () => closeThreatStackClient(threatstack))
  const failures: Failure[] = []
  const defaultStore = store(t, s3.endpoint)
  return {
    sim,
    failures,
    endpoint: s3.endpoint,
    checker (options = {}) {
      const deps: StatusDeps = {
        store: options.store ?? defaultStore,
        threatstack,
        timeoutMs: options.timeoutMs ?? 1000,
        cacheMs: options.cacheMs ?? 0,
        onFailure: (dependency, err) => { failures.push({ dependency, err }) },
        ...(options.now !== undefined && { now: options.now })
      }
      return createStatusChecker(deps)
    }
  }
}

/** An S3 endpoint where nothing listens any more. */
async function closedEndpoint (t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ts2s3-s3-down-'))
  t.teardown(async () => rm(dir, { recursive: true, force: true }))
  const local = await startLocalS3({ directory: dir, buckets: [SECRETS.bucket] })
  await local.close()
  return local.endpoint
}

t.test('both dependencies up', async (t) => {
  const { sim, failures, checker } = await setup(t)
  t.same(await checker()(), { s3: true, threatstack: true })
  t.same(failures, [], 'onFailure not called')
  t.same(sim.requests.map(({ method, path, authorized }) => ({ method, path, authorized })), [{ method: 'GET', path: '/v2/alerts?count=1', authorized: true }], 'one authenticated GET /alerts?count=1')
})

t.test('bucket missing: s3 false, onFailure("s3")', async (t) => {
  const { sim, failures, checker, endpoint } = await setup(t)
  t.same(await checker({ store: store(t, endpoint, 'no-such-bucket-here') })(), { s3: false, threatstack: true })
  t.equal(failures.length, 1)
  t.equal(failures[0]?.dependency, 's3')
  t.ok(failures[0]?.err instanceof S3ClientError, 'told of the S3ClientError')
  t.equal(sim.requests.length, 1, 'Threat Stack still checked')
})

t.test('S3 down: s3 false', async (t) => {
  const { failures, checker } = await setup(t)
  t.same(await checker({ store: store(t, await closedEndpoint(t)) })(), { s3: false, threatstack: true })
  t.same(failures.map((f) => f.dependency), ['s3'])
  t.equal(((failures[0]?.err as Error).cause as { code?: string }).code, 'ECONNREFUSED')
})

t.test('Threat Stack refusing connections: threatstack false, onFailure("threatstack")', async (t) => {
  const { sim, failures, checker } = await setup(t)
  await sim.failWith('refused')
  t.same(await checker()(), { s3: true, threatstack: false })
  t.same(failures.map((f) => f.dependency), ['threatstack'])
  t.ok(failures[0]?.err instanceof ThreatStackRequestError)

  await sim.heal()
  t.same(await checker()(), { s3: true, threatstack: true }, 'up again after heal()')
  t.equal(failures.length, 1)
})

t.test('Threat Stack rejecting the key or hanging: threatstack false', async (t) => {
  const { sim, failures, checker } = await setup(t)
  await sim.failWith('json-401', 1)
  t.same(await checker()(), { s3: true, threatstack: false })
  t.equal((failures[0]?.err as ThreatStackAPIError).upstreamStatus, 401)

  await sim.failWith('hang', 1)
  t.same(await checker({ timeoutMs: 300 })(), { s3: true, threatstack: false }, 'the short timeout of the check applies')
  t.equal((failures[1]?.err as ThreatStackRequestError).statusCode, 504)
  t.same(failures.map((f) => f.dependency), ['threatstack', 'threatstack'])
})

t.test('both down: both false, onFailure for each', async (t) => {
  const { sim, failures, checker, endpoint } = await setup(t)
  await sim.failWith('html-503')
  t.same(await checker({ store: store(t, endpoint, 'no-such-bucket-here') })(), { s3: false, threatstack: false })
  t.same(failures.map((f) => f.dependency).sort(), ['s3', 'threatstack'])
})

t.test('cached: a second call within cacheMs does not reach the upstreams', async (t) => {
  const { sim, failures, checker } = await setup(t)
  const check = checker({ cacheMs: 60_000 })
  const first = await check()
  t.same(first, { s3: true, threatstack: true })
  for (let i = 0; i < 5; i++) t.same(await check(), first)
  t.equal(sim.requests.length, 1, 'one request to Threat Stack for six calls')

  // A failure is cached too, and reported once, when it happened.
  const failing = checker({ cacheMs: 60_000, store: store(t, await closedEndpoint(t)) })
  await sim.failWith('json-500')
  for (let i = 0; i < 3; i++) t.same(await failing(), { s3: false, threatstack: false })
  t.equal(sim.requests.length, 2)
  t.equal(failures.length, 2, 'onFailure is not called for cached answers')
})

t.test('concurrent calls share one check', async (t) => {
  const { sim, checker } = await setup(t)
  sim.setLatency(100)
  const check = checker({ cacheMs: 60_000 })
  const results = await Promise.all(Array.from({ length: 8 }, async () => check()))
  t.equal(sim.requests.length, 1, 'one request for eight concurrent calls')
  for (const result of results) {
    t.same(result, { s3: true, threatstack: true })
    t.equal(result, results[0], 'the same answer object')
  }
})

t.test('cacheMs 0: every call checks again', async (t) => {
  const { sim, checker } = await setup(t)
  const check = checker({ cacheMs: 0 })
  await check()
  await check()
  await check()
  t.equal(sim.requests.length, 3)
})

t.test('an injected clock expires the cache', async (t) => {
  const { sim, failures, checker } = await setup(t)
  let clock = 1_000_000
  const check = checker({ cacheMs: 5000, now: () => clock })

  t.same(await check(), { s3: true, threatstack: true })
  t.equal(sim.requests.length, 1)

  await sim.failWith('json-500')
  clock += 4999
  t.same(await check(), { s3: true, threatstack: true }, 'still the cached answer 1 ms before expiry')
  t.equal(sim.requests.length, 1)
  t.equal(failures.length, 0)

  clock += 1
  t.same(await check(), { s3: true, threatstack: false }, 'checked again once cacheMs has passed')
  t.equal(sim.requests.length, 2)
  t.same(failures.map((f) => f.dependency), ['threatstack'])

  await sim.heal()
  clock += 4999
  t.same(await check(), { s3: true, threatstack: false }, 'the failure is cached for cacheMs as well')
  clock += 1
  t.same(await check(), { s3: true, threatstack: true })
  t.equal(sim.requests.length, 3)
})
