// The S3 client as configured by plugins/s3.ts, through a fault-injecting proxy in front of the
// local S3 server: retries, throttling, timeouts, refused connections, and write options.
import t from 'tap'
import { build, BEARER } from '../helpers/build.js'
import { assertError } from '../helpers/requests.js'
import { sample } from '../helpers/metrics.js'

const ALERT = { id: '587c0159a907346eccb84004', created_at: '1484521800000' }
const post = { method: 'POST' as const, url: '/api/v1/s3/alert', headers: BEARER.ingest, payload: { alerts: [ALERT] } }
// The archive's own objects; the search index entry written beside each record is left out.
const archived = (r: { method: string, path: string }): boolean => r.method === 'PUT' && !/^\/[^/]+\/index\//.test(r.path)
const puts = (requests: Array<{ method: string, path: string }>): number => requests.filter(archived).length

t.test('a 500 from S3 is retried by the SDK, within S3_MAX_ATTEMPTS', async (t) => {
  const { app, s3proxy, readObject } = await build(t, { s3Proxy: true, env: { S3_MAX_ATTEMPTS: '3' } })
  await s3proxy!.failWith('internal', { times: 2, match: /^PUT \/[^/]+\/webhooks\// })
  const res = await app.inject(post)
  t.equal(res.statusCode, 200, 'answered once S3 recovers')
  t.equal(puts(s3proxy!.requests), 4, 'two PUTs, one of them tried three times')
  t.ok(await readObject(`webhooks/2017/01/15/23/10/${ALERT.id}`))
  t.ok(await readObject(`alerts/58/7c/${ALERT.id}`))
  const metrics = await app.inject({ method: 'GET', url: '/metrics', headers: BEARER.read })
  t.equal(sample(metrics.body, 'threatstack_to_s3_upstream_retries_total', { upstream: 's3' }), 2)
})

t.test('S3 failing past the attempts is a 502 S3ClientError', async (t) => {
  const { app, s3proxy } = await build(t, { s3Proxy: true, env: { S3_MAX_ATTEMPTS: '2' } })
  await s3proxy!.failWith('internal')
  assertError(t, await app.inject(post), 502, 'S3ClientError')
  t.equal(puts(s3proxy!.requests), 2, 'the record PUT tried twice; no full alert PUT without a stored record')
})

t.test('SlowDown from S3 is a 503 S3ClientError with Retry-After', async (t) => {
  const { app, s3proxy } = await build(t, { s3Proxy: true })
  await s3proxy!.failWith('slowdown')
  const res = await app.inject(post)
  assertError(t, res, 503, 'S3ClientError')
  t.ok(Number(res.headers['retry-after']) >= 1, 'Retry-After')
  const get = await app.inject({ method: 'GET', url: `/api/v1/s3/alert/${ALERT.id}`, headers: BEARER.read })
  assertError(t, get, 503, 'S3ClientError')
})

t.test('a slow S3 is given up after S3_TIMEOUT_MS', async (t) => {
  const { app, s3proxy } = await build(t, { s3Proxy: true, env: { S3_TIMEOUT_MS: '300' } })
  await s3proxy!.failWith('delay', { delayMs: 3000 })
  assertError(t, await app.inject({ method: 'GET', url: `/api/v1/s3/alert/${ALERT.id}`, headers: BEARER.read }), 502, 'S3ClientError')
})

t.test('S3 calls beyond S3_MAX_SOCKETS wait for a socket before the SDK: S3_TIMEOUT_MS counts S3 time, not the wait', async (t) => {
  const { app, s3proxy, readObject } = await build(t, { s3Proxy: true, env: { S3_MAX_SOCKETS: '1', S3_TIMEOUT_MS: '600', S3_MAX_ATTEMPTS: '1', ENRICH_WAIT_MS: '60000' } })
  await s3proxy!.failWith('delay', { delayMs: 200 })
  const alerts = Array.from({ length: 4 }, (_, i) => ({ id: `queued-${i}`, created_at: ALERT.created_at }))
  const started = Date.now()
  const res = await app.inject({ ...post, payload: { alerts } })
  t.equal(res.statusCode, 200, 'eight PUTs through one socket, each within its timeout')
  t.ok(Date.now() - started >= 8 * 200, 'one at a time')
  t.equal(puts(s3proxy!.requests), 8, 'none retried')
  for (const { id } of alerts) t.ok(await readObject(`alerts/${id.slice(0, 2)}/${id.slice(2, 4)}/${id}`), `${id} is complete`)
})

t.test('a refused connection is a 502 S3ClientError, and the service recovers with S3', async (t) => {
  const { app, s3proxy } = await build(t, { s3Proxy: true })
  await s3proxy!.failWith('refuse')
  assertError(t, await app.inject(post), 502, 'S3ClientError')
  await s3proxy!.heal()
  t.equal((await app.inject(post)).statusCode, 200)
})

t.test('encryption, storage class and tags reach S3 on every object written', async (t) => {
  const { app, s3proxy } = await build(t, {
    s3Proxy: true,
    env: { S3_SSE: 'aws:kms', S3_SSE_KMS_KEY_ID: 'alias/threatstack-archive', S3_STORAGE_CLASS: 'STANDARD_IA', S3_OBJECT_TAGS: 'app=threatstack-to-s3&retention=7y' }
  })
  t.equal((await app.inject(post)).statusCode, 200)
  const written = s3proxy!.requests.filter(archived)
  t.equal(written.length, 2)
  const index = s3proxy!.requests.filter((r) => r.method === 'PUT' && !archived(r))
  t.equal(index.length, 1, 'and the index entry')
  for (const { headers } of index) {
    t.equal(headers['x-amz-server-side-encryption'], 'aws:kms', 'the index entry is encrypted')
    t.equal(headers['x-amz-tagging'], 'app=threatstack-to-s3&retention=7y')
    t.equal(headers['x-amz-storage-class'], undefined, 'in the default class: no minimum billable size for an empty object')
  }
  for (const { headers, path } of written) {
    t.equal(headers['x-amz-server-side-encryption'], 'aws:kms', path)
    t.equal(headers['x-amz-server-side-encryption-aws-kms-key-id'], 'alias/threatstack-archive')
    t.equal(headers['x-amz-storage-class'], 'STANDARD_IA')
    t.equal(headers['x-amz-tagging'], 'app=threatstack-to-s3&retention=7y')
  }

  const aes = await build(t, { s3Proxy: true, env: { S3_SSE: 'AES256' } })
  t.equal((await aes.app.inject(post)).statusCode, 200)
  const plain = aes.s3proxy!.requests.filter((r) => r.method === 'PUT')
  t.ok(plain.every((r) => r.headers['x-amz-server-side-encryption'] === 'AES256' && r.headers['x-amz-storage-class'] === undefined))

  const none = await build(t, { s3Proxy: true })
  t.equal((await none.app.inject(post)).statusCode, 200)
  t.ok(none.s3proxy!.requests.every((r) => r.headers['x-amz-server-side-encryption'] === undefined && r.headers['x-amz-tagging'] === undefined),
    'nothing set: the bucket defaults apply')
})

t.test('an S3 that trickles its answers gets the webhook and the read their 502 within S3_BUDGET_MS; the sockets serve again', async (t) => {
  // S3_TIMEOUT_MS (an idle socket) never fires: a byte comes every 100 ms.
  const { app, s3proxy, readObject } = await build(t, { s3Proxy: true, env: { S3_MAX_SOCKETS: '2', S3_TIMEOUT_MS: '30000', S3_BUDGET_MS: '800' } })
  await s3proxy!.failWith('trickle', { delayMs: 100 })
  const [webhook, read] = await Promise.all([
    app.inject(post),
    app.inject({ method: 'GET', url: `/api/v1/s3/alert/${ALERT.id}`, headers: BEARER.read })
  ])
  assertError(t, webhook, 502, 'S3ClientError')
  assertError(t, read, 502, 'S3ClientError')
  t.ok(s3proxy!.requests.some((r) => r.fault === 'trickle'), 'S3 did trickle')

  await s3proxy!.heal()
  const again = await app.inject(post)
  t.equal(again.statusCode, 200, 'the two sockets and slots are free again')
  t.ok(await readObject(`webhooks/2017/01/15/23/10/${ALERT.id}`))
  const get = await app.inject({ method: 'GET', url: `/api/v1/s3/alert/${ALERT.id}`, headers: BEARER.read })
  t.equal(get.statusCode, 200)
})
