// Archiving against s3rver and the Threat Stack simulator (real servers on loopback):
// both objects per alert, the webhook record whatever the fetch does, retries harmless,
// invalid input refused before any write, and the concurrency bound.
import t, { type Test } from 'tap'
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3'
import type { Config } from '../../config.js'
import { S3ClientError, ThreatStackAPIError, ThreatStackRequestError, WebhookDataError } from '../../errors/index.js'
import { createS3Client } from '../../services/s3-client.js'
import { LOCAL_S3_CREDENTIALS, startLocalS3 } from '../../dev/local-s3.js'
import { simulatedAlert, type ThreatStackSimulator } from '../../dev/threatstack-simulator.js'
import { archiveAlert, archiveAlerts, assertArchivable, type ArchiveDeps } from '../../services/archive.js'
import { closeThreatStackClient, createThreatStackClient, type ThreatStackClient } from '../../services/threatstack.js'
import type { Store } from '../../services/storage.js'
import type { Alert } from '../../schemas/alert.js'
import { SECRETS, startUpstreams, NO_RETRY } from '../helpers/build.js'
import { startS3FaultProxy } from '../../dev/s3-fault-proxy.js'

const ID = '587c0159a907346eccb84004'
const ALERT: Alert = {
  id: ID,
  created_at: '1484521800000',
  severity: '2',
  title: 'Login from an unexpected address',
  organization_id: 'org-1',
  // Unknown fields are archived as received.
  ...{ rule_id: 'r-9', tags: ['a', 'b'] }
}

function store (t: Test, endpoint: string, prefix = ''): Store {
  const cfg: Config['s3'] = {
    bucket: SECRETS.bucket,
    prefix,
    region: 'us-east-1',
    endpoint,
    credentials: LOCAL_S3_CREDENTIALS,
    timeoutMs: 2000,
    connectTimeoutMs: 500,
    maxSockets: 16,
    maxAttempts: 1
  }
  const s3 = createS3Client(cfg)
  t.teardown(() => s3.destroy())
  return { s3, bucket: cfg.bucket, prefix }
}

function threatStack (t: Test, baseUrl: string, timeoutMs = 2000): ThreatStackClient {
  const client = createThreatStackClient({
    baseUrl,
    apiKey: SECRETS.apiKey,
    auth: { kind: 'hawk', userId: SECRETS.userId, organizationId: SECRETS.organizationId },
    timeoutMs,
    connectTimeoutMs: 1000,
    maxConnections: 16,
    maxResponseBytes: 64 * 1024,
    retry: NO_RETRY
  })
  t.teardown(async () => closeThreatStackClient(client))
  return client
}

/** An independent client to look at the bucket. */
function reader (t: Test, endpoint: string): { read: (key: string) => Promise<{ body: unknown, contentType: string | undefined } | undefined>, keys: () => Promise<string[]> } {
  const s3 = new S3Client({ region: 'us-east-1', endpoint, forcePathStyle: true, credentials: LOCAL_S3_CREDENTIALS, maxAttempts: 1 })
  t.teardown(() => s3.destroy())
  return {
    async read (key) {
      try {
        const res = await s3.send(new GetObjectCommand({ Bucket: SECRETS.bucket, Key: key }))
        return { body: JSON.parse(await res.Body!.transformToString()), contentType: res.ContentType }
      } catch (err) {
        if ((err as { name?: string }).name === 'NoSuchKey') return undefined
        throw err
      }
    },
    async keys () {
      const res = await s3.send(new ListObjectsV2Command({ Bucket: SECRETS.bucket }))
      t.notOk(res.IsTruncated, 'the listing is complete')
      // The search index (index/…) is derived state beside the archive: test/services/search.test.ts looks at it.
      return (res.Contents ?? []).map((o) => o.Key as string).filter((k) => !/(^|\/)index\//.test(k)).sort()
    }
  }
}

async function setup (t: Test, prefix = ''): Promise<{ deps: ArchiveDeps, sim: ThreatStackSimulator, bucket: ReturnType<typeof reader>, endpoint: string }> {
  const { s3, threatstack: sim } = await startUpstreams(t)
  const deps: ArchiveDeps = { store: store(t, s3.endpoint, prefix), threatstack: threatStack(t, sim.url), concurrency: 4 }
  return { deps, sim, bucket: reader(t, s3.endpoint), endpoint: s3.endpoint }
}

async function rejection<T> (t: Test, promise: Promise<unknown>, Class: abstract new (...args: never[]) => T): Promise<T> {
  let error: unknown
  try {
    await promise
  } catch (err) {
    error = err
  }
  t.ok(error instanceof Class, `rejects with ${Class.name} (got ${String(error)})`)
  if (!(error instanceof Class)) throw new Error(`expected ${Class.name}, got ${String(error)}`)
  return error
}

/** An S3 endpoint where nothing listens any more. */
async function closedEndpoint (t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ts2s3-s3-down-'))
  t.teardown(async () => rm(dir, { recursive: true, force: true }))
  const local = await startLocalS3({ directory: dir, buckets: [SECRETS.bucket] })
  await local.close()
  return local.endpoint
}

/**
 * A real HTTP proxy in front of the simulator that counts the requests in flight and, while
 * `hold` is on, keeps them waiting until release(). Headers (Host included) pass unchanged,
 * so Hawk signatures made for the proxy's address still verify.
 */
async function countingProxy (t: Test, sim: ThreatStackSimulator): Promise<{ url: string, inFlight: () => number, max: () => number, hold: (on: boolean) => void, held: () => number }> {
  let inFlight = 0
  let max = 0
  let holding = false
  const waiting: Array<() => void> = []

  function forward (req: IncomingMessage, res: ServerResponse): void {
    const upstream = httpRequest({ host: '127.0.0.1', port: sim.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers)
      answer.pipe(res)
    })
    upstream.on('error', () => res.destroy())
    req.pipe(upstream)
  }

  const server = createServer((req, res) => {
    inFlight += 1
    max = Math.max(max, inFlight)
    res.on('close', () => { inFlight -= 1 })
    if (holding) waiting.push(() => forward(req, res))
    else forward(req, res)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(async () => {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  })
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('no address')
  return {
    url: `http://127.0.0.1:${address.port}/v2`,
    inFlight: () => inFlight,
    max: () => max,
    held: () => waiting.length,
    hold (on) {
      holding = on
      if (!on) for (const release of waiting.splice(0)) release()
    }
  }
}

/** Polls `condition` (bounded: 5 s). */
async function until (condition: () => boolean | Promise<boolean>): Promise<boolean> {
  for (let i = 0; i < 250; i++) {
    if (await condition()) return true
    await sleep(20)
  }
  return false
}

t.test('archiveAlerts writes the webhook record and the full alert of every alert', async (t) => {
  const { deps, sim, bucket } = await setup(t)
  const other: Alert = { id: 'abcd_EF-12', created_at: 0 }
  const full = { id: ID, title: 'full alert from the API', created_at: 1484521800000, severity: 2, extra: { a: [1] } }
  sim.setAlert(ID, full)

  t.same(await archiveAlerts(deps, [ALERT, other]), [ID, 'abcd_EF-12'], 'the ids, in the order received')

  const webhook = await bucket.read(`webhooks/2017/01/15/23/10/${ID}`)
  t.same(webhook, { body: ALERT, contentType: 'application/json' }, 'the webhook record is the alert as received')
  t.same(await bucket.read(`alerts/58/7c/${ID}`), { body: full, contentType: 'application/json' }, 'the full alert is what the API answered')
  t.same(await bucket.read('webhooks/1970/01/01/00/00/abcd_EF-12'), { body: other, contentType: 'application/json' })
  t.same(await bucket.read('alerts/ab/cd/abcd_EF-12'), { body: simulatedAlert('abcd_EF-12'), contentType: 'application/json' })

  t.same(await bucket.keys(), [
    'alerts/58/7c/587c0159a907346eccb84004',
    'alerts/ab/cd/abcd_EF-12',
    'webhooks/1970/01/01/00/00/abcd_EF-12',
    'webhooks/2017/01/15/23/10/587c0159a907346eccb84004'
  ], 'nothing else')
  t.same(sim.requests.map((r) => [r.path, r.authorized]).sort(), [
    [`/v2/alerts/${ID}`, true],
    ['/v2/alerts/abcd_EF-12', true]
  ], 'one authenticated GET per alert')
})

t.test('the prefix goes in front of both keys', async (t) => {
  const { deps, bucket } = await setup(t, 'archive/ts')
  await archiveAlert(deps, ALERT)
  t.same(await bucket.keys(), [
    `archive/ts/alerts/58/7c/${ID}`,
    `archive/ts/webhooks/2017/01/15/23/10/${ID}`
  ])
})

t.test('the webhook record is written when Threat Stack fails, and the Threat Stack error is thrown', async (t) => {
  const { deps, sim, bucket } = await setup(t)
  await sim.failWith('json-500')
  const err = await rejection(t, archiveAlerts(deps, [ALERT]), ThreatStackAPIError)
  t.equal(err.upstreamStatus, 500)
  t.equal(err.statusCode, 502)
  t.same(await bucket.keys(), [`webhooks/2017/01/15/23/10/${ID}`], 'the webhook record only')
  t.same((await bucket.read(`webhooks/2017/01/15/23/10/${ID}`))?.body, ALERT)

  // Healed, a retried delivery completes the archive.
  await sim.heal()
  await archiveAlert(deps, ALERT)
  t.same((await bucket.read(`alerts/58/7c/${ID}`))?.body, simulatedAlert(ID), 'a retried delivery completes the archive')
})

t.test('the webhook record is written when Threat Stack does not answer in time', async (t) => {
  const { deps, sim, bucket } = await setup(t)
  await sim.failWith('hang', 1)
  const err = await rejection(t, archiveAlert({ ...deps, threatstack: threatStack(t, sim.url, 300) }, ALERT), ThreatStackRequestError)
  t.equal(err.statusCode, 504)
  t.same(await bucket.keys(), [`webhooks/2017/01/15/23/10/${ID}`], 'the webhook record only')
})

t.test('Threat Stack refusing connections: ThreatStackRequestError, webhook record written', async (t) => {
  const { deps, sim, bucket } = await setup(t)
  await sim.failWith('refused')
  const err = await rejection(t, archiveAlerts(deps, [ALERT]), ThreatStackRequestError)
  t.equal(err.statusCode, 502)
  t.same(await bucket.keys(), [`webhooks/2017/01/15/23/10/${ID}`])
})

t.test('S3 down: S3ClientError', async (t) => {
  const { threatstack: sim } = await startUpstreams(t)
  const deps: ArchiveDeps = { store: store(t, await closedEndpoint(t)), threatstack: threatStack(t, sim.url), concurrency: 2 }
  const err = await rejection(t, archiveAlerts(deps, [ALERT]), S3ClientError)
  t.equal(err.statusCode, 502)
  t.equal((err.cause as { code?: string }).code, 'ECONNREFUSED')
  t.equal(sim.requests.length, 1, 'the fetch did not wait for the failed write')

  // Both upstreams failing: still an S3ClientError (the webhook record is the first failure).
  await sim.failWith('json-500')
  await rejection(t, archiveAlert(deps, ALERT), S3ClientError)
})

t.test('a missing bucket: S3ClientError, even when Threat Stack answered', async (t) => {
  const { s3, threatstack: sim } = await startUpstreams(t)
  const st = store(t, s3.endpoint)
  const deps: ArchiveDeps = { store: { ...st, bucket: 'no-such-bucket-here' }, threatstack: threatStack(t, sim.url), concurrency: 2 }
  const err = await rejection(t, archiveAlerts(deps, [ALERT]), S3ClientError)
  t.equal((err.cause as { name?: string }).name, 'NoSuchBucket')
  t.equal(sim.requests.length, 1)
})

t.test('the same alert twice writes the same keys and nothing more', async (t) => {
  const { deps, sim, bucket } = await setup(t)
  await archiveAlerts(deps, [ALERT])
  const first = await bucket.keys()
  t.equal(first.length, 2)
  await archiveAlerts(deps, [ALERT])
  await archiveAlerts(deps, [ALERT, ALERT])
  t.same(await bucket.keys(), first, 'the same two keys')
  t.same((await bucket.read(`webhooks/2017/01/15/23/10/${ID}`))?.body, ALERT)
  t.equal(sim.requests.length, 4)
})

t.test('a created_at beyond 9999 is a WebhookDataError before any write', async (t) => {
  const { deps, sim, bucket } = await setup(t)
  const beyond: Alert = { id: 'far-future', created_at: '999999999999999' }
  const err = await rejection(t, archiveAlerts(deps, [ALERT, beyond]), WebhookDataError)
  t.equal(err.statusCode, 400)
  t.same(err.details, ['created_at of alert far-future must be milliseconds within the years 1970 to 9999'])
  t.same(await bucket.keys(), [], 'not even the valid alert was written')
  t.equal(sim.requests.length, 0, 'nothing was fetched')

  t.throws(() => assertArchivable([{ id: 'edge', created_at: '253402300800000' }]), WebhookDataError, 'one millisecond past the bound')
  t.doesNotThrow(() => assertArchivable([{ id: 'edge', created_at: '253402300799999' }, { id: 'zero', created_at: '0' }, { id: 'nnnn', created_at: 5 }]))
})

t.test('one alert failing does not stop the others; whatever was stored stays stored', async (t) => {
  const { deps, sim, bucket } = await setup(t)
  const alerts: Alert[] = ['aaaa1', 'bbbb2', 'cccc3'].map((id) => ({ id, created_at: 1484521800000 }))
  await sim.failWith('json-404', 1)
  const err = await rejection(t, archiveAlerts({ ...deps, concurrency: 1 }, alerts), ThreatStackAPIError)
  t.equal(err.upstreamStatus, 404)
  const keys = await bucket.keys()
  t.same(keys, [
    'alerts/bb/bb/bbbb2',
    'alerts/cc/cc/cccc3',
    'webhooks/2017/01/15/23/10/aaaa1',
    'webhooks/2017/01/15/23/10/bbbb2',
    'webhooks/2017/01/15/23/10/cccc3'
  ])
})

t.test('the webhook record does not wait for the fetch', async (t) => {
  const { s3, threatstack: sim } = await startUpstreams(t)
  const proxy = await countingProxy(t, sim)
  const deps: ArchiveDeps = { store: store(t, s3.endpoint), threatstack: threatStack(t, proxy.url), concurrency: 1 }
  const bucket = reader(t, s3.endpoint)
  proxy.hold(true)
  const done = archiveAlerts(deps, [ALERT])
  t.ok(await until(() => proxy.held() === 1), 'the fetch is under way')
  t.ok(await until(async () => (await bucket.read(`webhooks/2017/01/15/23/10/${ID}`)) !== undefined), 'the webhook record is written while the fetch waits')
  t.equal(await bucket.read(`alerts/58/7c/${ID}`), undefined, 'the full alert is not there yet')
  proxy.hold(false)
  t.same(await done, [ID])
  t.same((await bucket.read(`alerts/58/7c/${ID}`))?.body, simulatedAlert(ID))
  t.equal(sim.requests[0]?.authorized, true, 'Hawk still verifies through the proxy')
})

t.test('the fetch does not wait for the webhook record, the full alert does: no full alert without its record', async (t) => {
  const { s3, threatstack: sim } = await startUpstreams(t)
  const proxy = await startS3FaultProxy(s3.endpoint)
  t.teardown(async () => proxy.close())
  const deps: ArchiveDeps = { store: store(t, proxy.endpoint), threatstack: threatStack(t, sim.url), concurrency: 1 }
  const bucket = reader(t, s3.endpoint)
  await proxy.failWith('hold', { match: /^PUT \/[^/]+\/webhooks\// })
  const done = archiveAlerts(deps, [ALERT])
  t.ok(await until(() => sim.requests.length === 1), 'the fetch reaches Threat Stack while the record is held')
  t.ok(await until(() => proxy.requests.some((r) => r.fault === 'hold')), 'the record PUT is held')
  // The fetch has been answered; give a full alert PUT every chance to go out (it must not).
  await sleep(300)
  t.notOk(proxy.requests.some((r) => r.method === 'PUT' && r.path.includes('/alerts/')), 'no full alert PUT while the record is held')
  t.same((await bucket.keys()).filter((k) => !k.startsWith('index/')), [], 'nothing stored yet')
  await proxy.heal()
  t.same(await done, [ID], 'the alert is answered once both are stored')
  // The search index entry goes out on its own, at any time: only the record and the full alert are ordered.
  const puts = proxy.requests.filter((r) => r.method === 'PUT').map((r) => r.path.split('/')[2]).filter((folder) => folder !== 'index')
  t.same(puts, ['webhooks', 'alerts'], 'the record PUT, then the full alert PUT')
  t.same(await bucket.keys(), [`alerts/58/7c/${ID}`, `webhooks/2017/01/15/23/10/${ID}`])
})

t.test('a record PUT that fails: no full alert is written, the S3 error is thrown', async (t) => {
  const { s3, threatstack: sim } = await startUpstreams(t)
  const proxy = await startS3FaultProxy(s3.endpoint)
  t.teardown(async () => proxy.close())
  const deps: ArchiveDeps = { store: store(t, proxy.endpoint), threatstack: threatStack(t, sim.url), concurrency: 1 }
  const bucket = reader(t, s3.endpoint)
  await proxy.failWith('internal', { match: /^PUT \/[^/]+\/webhooks\// })
  const err = await rejection(t, archiveAlerts(deps, [ALERT]), S3ClientError)
  t.equal(err.statusCode, 502)
  t.equal(sim.requests.length, 1, 'the fetch ran alongside')
  t.notOk(proxy.requests.some((r) => r.method === 'PUT' && r.path.includes('/alerts/')), 'no full alert PUT was made')
  t.same(await bucket.keys(), [], 'nothing stored')
  // Healed, the sender's retry archives both.
  await proxy.heal()
  t.same(await archiveAlerts(deps, [ALERT]), [ID])
  t.same(await bucket.keys(), [`alerts/58/7c/${ID}`, `webhooks/2017/01/15/23/10/${ID}`])
})

t.test('the webhook record is stored byte for byte as given', async (t) => {
  const { deps, bucket, endpoint } = await setup(t)
  const text = '{ "id" : "587c0159a907346eccb84004",\n\t"created_at": "1484521800000", "big": 12345678901234567890, "t": "\\u00e9\u00e9" }'
  await archiveAlert(deps, JSON.parse(text) as Alert, text)
  const s3 = new S3Client({ region: 'us-east-1', endpoint, forcePathStyle: true, credentials: LOCAL_S3_CREDENTIALS, maxAttempts: 1 })
  t.teardown(() => s3.destroy())
  const res = await s3.send(new GetObjectCommand({ Bucket: SECRETS.bucket, Key: `webhooks/2017/01/15/23/10/${ID}` }))
  t.same(Buffer.from(await res.Body!.transformToByteArray()), Buffer.from(text, 'utf8'), 'the same bytes')
  t.equal(res.ContentType, 'application/json')
  t.same((await bucket.read(`alerts/58/7c/${ID}`))?.body, simulatedAlert(ID), 'the full alert as usual')
})

t.test('ids that break the id rule are refused before any write or fetch, whoever calls', async (t) => {
  const { deps, sim, bucket } = await setup(t)
  for (const id of ['../../../../etc/passwd', '..', 'ab/cd/ef', 'abc', 12345678, 'x'.repeat(129)]) {
    const bad = { id, created_at: '1484521800000' } as unknown as Alert
    const err = await rejection(t, archiveAlerts(deps, [ALERT, bad]), WebhookDataError)
    t.equal(err.statusCode, 400)
    t.match(err.details, [/^id of alert 1 must be 4 to 128 characters/])
    await rejection(t, archiveAlert(deps, bad), WebhookDataError)
  }
  t.same(await bucket.keys(), [], 'nothing written')
  t.equal(sim.requests.length, 0, 'nothing fetched')
})

t.test('Threat Stack answering 200 with JSON nested too deeply is a Threat Stack error, not an S3 one', async (t) => {
  const { deps, sim, bucket } = await setup(t)
  await sim.failWith('deep-json')
  const err = await rejection(t, archiveAlerts(deps, [ALERT]), ThreatStackRequestError)
  t.equal(err.statusCode, 502)
  t.equal(err.upstreamStatus, 200)
  t.same(await bucket.keys(), [`webhooks/2017/01/15/23/10/${ID}`], 'the webhook record only')
})

t.test('the concurrency bound is respected', async (t) => {
  const { s3, threatstack: sim } = await startUpstreams(t)
  const proxy = await countingProxy(t, sim)
  const deps: ArchiveDeps = { store: store(t, s3.endpoint), threatstack: threatStack(t, proxy.url), concurrency: 2 }
  const bucket = reader(t, s3.endpoint)
  const alerts: Alert[] = Array.from({ length: 10 }, (_, i) => ({ id: `alert-${String(i).padStart(2, '0')}`, created_at: 1484521800000 + i }))

  proxy.hold(true)
  const done = archiveAlerts(deps, alerts)
  t.ok(await until(() => proxy.held() === 2), 'two fetches under way')
  // With every fetch held, an unbounded archive would have all 10 in flight by now.
  await sleep(200)
  t.equal(proxy.held(), 2, 'no third fetch while two alerts are in progress')
  t.equal(sim.requests.length, 0, 'none reached Threat Stack yet')
  proxy.hold(false)

  t.same(await done, alerts.map((a) => a.id))
  t.equal(proxy.max(), 2, 'at most two in flight, ever')
  t.equal(proxy.inFlight(), 0)
  t.equal(sim.requests.length, 10)
  t.equal((await bucket.keys()).length, 20, 'every alert archived')
})
