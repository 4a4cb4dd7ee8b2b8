// JSON objects in S3 against s3rver (a real S3-protocol server on loopback): the round trip,
// and every failure turned into an S3ClientError with a fixed message and the SDK error as cause.
import t, { type Test } from 'tap'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { GetObjectCommand, PutObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3'
import type { Config } from '../../config.js'
import { DEFAULT_RETRY_AFTER_SECONDS, S3ClientError } from '../../errors/index.js'
import { createS3Client, storeOf } from '../../services/s3-client.js'
import { LOCAL_S3_CREDENTIALS, startLocalS3 } from '../../dev/local-s3.js'
import { startS3FaultProxy } from '../../dev/s3-fault-proxy.js'
import { checkBucket, exists, getJson, isThrottling, listKeys, putJson, toS3ClientError, type Store } from '../../services/storage.js'
import { SECRETS, startUpstreams } from '../helpers/build.js'
import { assertNoLeak } from '../helpers/leaks.js'

function s3Config (endpoint: string, overrides: Partial<Config['s3']> = {}): Config['s3'] {
  return {
    bucket: SECRETS.bucket,
    prefix: '',
    region: 'us-east-1',
    endpoint,
    credentials: LOCAL_S3_CREDENTIALS,
    timeoutMs: 2000,
    connectTimeoutMs: 500,
    maxSockets: 8,
    maxAttempts: 1,
    ...overrides
  }
}

function store (t: Test, endpoint: string, overrides: Partial<Config['s3']> = {}): Store {
  const cfg = s3Config(endpoint, overrides)
  const s3 = createS3Client(cfg)
  t.teardown(() => s3.destroy())
  return { s3, bucket: cfg.bucket, prefix: cfg.prefix }
}

/** A second client, independent of the code under test, to look at what was stored. */
function rawClient (t: Test, endpoint: string): S3Client {
  const s3 = new S3Client({
    region: 'us-east-1',
    endpoint,
    forcePathStyle: true,
    credentials: LOCAL_S3_CREDENTIALS,
    maxAttempts: 1,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED'
  })
  t.teardown(() => s3.destroy())
  return s3
}

async function rejection (t: Test, promise: Promise<unknown>): Promise<S3ClientError> {
  let error: unknown
  try {
    await promise
  } catch (err) {
    error = err
  }
  t.ok(error instanceof S3ClientError, `rejects with S3ClientError (got ${String(error)})`)
  if (!(error instanceof S3ClientError)) throw new Error(`expected S3ClientError, got ${String(error)}`)
  return error
}

/** A 502 with a fixed message; the SDK's error kept as cause, nothing of it in the message. */
function assertS3Failure (t: Test, err: S3ClientError, extra: string[] = []): void {
  t.equal(err.statusCode, 502)
  t.equal(err.message, 'Failure to communicate with S3')
  t.equal(err.retryAfterSeconds, undefined)
  t.ok(err.cause !== undefined && err.cause !== null, 'keeps the original error as cause')
  assertNoLeak(t, err.message, [SECRETS.bucket, ...extra])
}

const causeName = (err: Error): unknown => (err.cause as { name?: unknown } | undefined)?.name
const causeCode = (err: Error): unknown => (err.cause as { code?: unknown } | undefined)?.code

t.test('against a running S3 with the bucket', async (t) => {
  const { s3: local } = await startUpstreams(t)
  const st = store(t, local.endpoint)
  const raw = rawClient(t, local.endpoint)

  t.test('checkBucket resolves', async (t) => {
    await t.resolves(checkBucket(st))
  })

  t.test('putJson writes JSON with content-type application/json; getJson reads it back', async (t) => {
    const value = { id: '587c0159a907346eccb84004', created_at: '1484521800000', nested: { list: [1, 'two', null] }, text: 'é ✓ 😀' }
    await putJson(st, 'archive/webhooks/2017/01/15/23/10/587c0159a907346eccb84004', value)

    const res = await raw.send(new GetObjectCommand({ Bucket: SECRETS.bucket, Key: 'archive/webhooks/2017/01/15/23/10/587c0159a907346eccb84004' }))
    t.equal(res.ContentType, 'application/json')
    t.equal(await res.Body?.transformToString('utf-8'), JSON.stringify(value), 'the body is exactly the JSON text')

    t.same(await getJson(st, 'archive/webhooks/2017/01/15/23/10/587c0159a907346eccb84004'), value)
  })

  t.test('putJson overwrites: the same key twice holds the last value', async (t) => {
    await putJson(st, 'over/write', { n: 1 })
    await putJson(st, 'over/write', { n: 2 })
    t.same(await getJson(st, 'over/write'), { n: 2 })
  })

  t.test('getJson of a missing key is undefined', async (t) => {
    t.equal(await getJson(st, 'alerts/no/ne/none-such-key'), undefined)
  })

  t.test('getJson reads objects written by others (the Python service wrote numbers)', async (t) => {
    await raw.send(new PutObjectCommand({ Bucket: SECRETS.bucket, Key: 'legacy/alert', Body: '{"id":"abcd","created_at":1484521800000}' }))
    t.same(await getJson(st, 'legacy/alert'), { id: 'abcd', created_at: 1484521800000 })
  })

  t.test('a stored object that is not JSON is an S3ClientError', async (t) => {
    await raw.send(new PutObjectCommand({ Bucket: SECRETS.bucket, Key: 'broken/object', Body: '<html>not json', ContentType: 'text/html' }))
    const err = await rejection(t, getJson(st, 'broken/object'))
    assertS3Failure(t, err)
    t.ok((err.cause as Error).cause instanceof SyntaxError, 'the parse error is in the chain')
  })

  t.test('an aborted signal is an S3ClientError', async (t) => {
    const err = await rejection(t, putJson(st, 'aborted/key', { a: 1 }, AbortSignal.abort()))
    assertS3Failure(t, err)
    t.equal(await getJson(st, 'aborted/key'), undefined, 'nothing was written')
  })

  t.test('a missing bucket is an S3ClientError on put, get and check (never undefined)', async (t) => {
    const missing = store(t, local.endpoint, { bucket: 'no-such-bucket-here' })

    const put = await rejection(t, putJson(missing, 'a/key', { a: 1 }))
    assertS3Failure(t, put, ['no-such-bucket-here'])
    t.equal(causeName(put), 'NoSuchBucket')

    const get = await rejection(t, getJson(missing, 'a/key'))
    assertS3Failure(t, get, ['no-such-bucket-here'])
    t.equal(causeName(get), 'NoSuchBucket', 'a missing bucket does not look like a missing key')

    const check = await rejection(t, checkBucket(missing))
    assertS3Failure(t, check, ['no-such-bucket-here'])
    t.ok((check.cause as S3ServiceException).$metadata.httpStatusCode === 404, 'HEAD answered 404')
  })

  t.test('wrong credentials are an S3ClientError on put, get and check', async (t) => {
    // s3rver checks the access key id only: it does not verify SigV4 signatures, so a wrong
    // secret with the right key id is accepted. An unknown key id is what it can refuse.
    const bad = store(t, local.endpoint, { credentials: { accessKeyId: 'NOT-A-KEY', secretAccessKey: 'not-the-secret' } })
    const put = await rejection(t, putJson(bad, 'creds/key', { a: 1 }))
    assertS3Failure(t, put, ['not-the-secret', 'NOT-A-KEY'])
    t.ok(put.cause instanceof S3ServiceException, 'the cause is the service answer')
    t.equal(causeName(put), 'InvalidAccessKeyId')
    t.equal((put.cause as S3ServiceException).$metadata.httpStatusCode, 403)

    // A denied GET must not read as "no such key".
    const get = await rejection(t, getJson(bad, 'over/write'))
    assertS3Failure(t, get, ['not-the-secret', 'NOT-A-KEY'])
    t.equal(causeName(get), 'InvalidAccessKeyId')

    const check = await rejection(t, checkBucket(bad))
    assertS3Failure(t, check, ['not-the-secret', 'NOT-A-KEY'])
    t.equal((check.cause as S3ServiceException).$metadata.httpStatusCode, 403)

    t.equal(await getJson(st, 'creds/key'), undefined, 'nothing was written')
  })
})

t.test('S3 down (port closed) is an S3ClientError on put, get and check', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ts2s3-s3-down-'))
  t.teardown(async () => rm(dir, { recursive: true, force: true }))
  const local = await startLocalS3({ directory: dir, buckets: [SECRETS.bucket] })
  await local.close()

  const st = store(t, local.endpoint)
  const calls: Array<[string, () => Promise<unknown>]> = [
    ['put', async () => putJson(st, 'down/key', { a: 1 })],
    ['get', async () => getJson(st, 'down/key')],
    ['check', async () => checkBucket(st)]
  ]
  for (const [what, call] of calls) {
    const err = await rejection(t, call())
    assertS3Failure(t, err, [String(local.port)])
    t.equal(causeCode(err), 'ECONNREFUSED', `${what}: the cause is the refused connection`)
  }
})

/** Rejects if `promise` is still pending after `ms`: what a call with no deadline would do. */
async function settledWithin<T> (promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const stuck = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(new Error(`still pending after ${ms} ms`)) }, ms) })
  try {
    return await Promise.race([promise, stuck])
  } finally {
    clearTimeout(timer)
  }
}

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

t.test('an S3 that trickles its answers (no socket ever idle) fails each call within S3_BUDGET_MS, and frees its slot and socket', async (t) => {
  const { s3: local } = await startUpstreams(t)
  const proxy = await startS3FaultProxy(local.endpoint)
  t.teardown(async () => proxy.close())
  // One socket, one slot: a call that kept either would block every later one. The idle timeout
  // is far longer than the budget and is never reached anyway: a byte comes every 100 ms.
  const cfg = s3Config(proxy.endpoint, { maxSockets: 1, timeoutMs: 30_000, budgetMs: 700, maxAttempts: 2 })
  const s3 = createS3Client(cfg)
  t.teardown(() => s3.destroy())
  const st = storeOf(cfg, s3)
  await putJson(st, 'trickle/existing', { before: true })

  await proxy.failWith('trickle', { delayMs: 100 })
  const calls: Array<[string, () => Promise<unknown>]> = [
    ['GET (headers, then the body a byte at a time)', async () => getJson(st, 'trickle/existing')],
    ['PUT', async () => putJson(st, 'trickle/new', { during: true })],
    ['HEAD bucket', async () => checkBucket(st)],
    ['HEAD object', async () => exists(st, 'trickle/existing')],
    ['LIST', async () => { for await (const key of listKeys(st, { Prefix: 'trickle/' })) t.ok(key) }]
  ]
  for (const [what, fn] of calls) {
    const err = await rejection(t, settledWithin(fn(), 20_000))
    assertS3Failure(t, err)
    t.match(String((err.cause as Error).message), /budget of 700 ms/, `${what}: the budget is the cause`)
  }
  // Each trickling answer's socket is destroyed: the proxy sees its clients go.
  for (let i = 0; i < 100 && proxy.trickling > 0; i++) await sleep(50)
  t.equal(proxy.trickling, 0, 'no answer is still being read')

  // Queued calls share the budget with the wait: four calls behind one trickling slot all end.
  const queued = await Promise.allSettled(Array.from({ length: 4 }, async (_, i) => settledWithin(getJson(st, `trickle/q${i}`), 20_000)))
  t.ok(queued.every((r) => r.status === 'rejected' && r.reason instanceof S3ClientError), 'queued calls end as S3ClientError')

  await proxy.heal()
  await putJson(st, 'trickle/after', { after: true })
  t.same(await getJson(st, 'trickle/existing'), { before: true }, 'the one slot and socket serve again')
  t.same(await getJson(st, 'trickle/after'), { after: true })
})

t.test('a caller\'s abort ends a trickling read at once, as S3ClientError', async (t) => {
  const { s3: local } = await startUpstreams(t)
  const proxy = await startS3FaultProxy(local.endpoint)
  t.teardown(async () => proxy.close())
  const cfg = s3Config(proxy.endpoint, { maxSockets: 1, timeoutMs: 30_000, budgetMs: 60_000 })
  const s3 = createS3Client(cfg)
  t.teardown(() => s3.destroy())
  const st = storeOf(cfg, s3)
  await putJson(st, 'abort/existing', { a: 1 })
  await proxy.failWith('trickle', { delayMs: 100, times: 1 })
  const controller = new AbortController()
  const pending = getJson(st, 'abort/existing', controller.signal)
  for (let i = 0; i < 100 && proxy.trickling === 0; i++) await sleep(20)
  controller.abort(new Error('client went away'))
  assertS3Failure(t, await rejection(t, settledWithin(pending, 20_000)))
  t.same(await getJson(st, 'abort/existing'), { a: 1 }, 'the slot is free again')
})

t.test('isThrottling and toS3ClientError', async (t) => {
  const slowDown = new S3ServiceException({ name: 'SlowDown', $fault: 'server', $metadata: { httpStatusCode: 503 }, message: 'x' })
  t.ok(isThrottling(slowDown), 'SlowDown')
  const err = toS3ClientError(slowDown)
  t.ok(err instanceof S3ClientError)
  t.equal(err.statusCode, 503)
  t.equal(err.retryAfterSeconds, DEFAULT_RETRY_AFTER_SECONDS)
  t.equal(err.message, 'S3 is throttling requests')
  t.equal(err.cause, slowDown)

  for (const name of ['Throttling', 'ThrottlingException', 'RequestLimitExceeded', 'TooManyRequestsException', 'RequestThrottled']) {
    const e = new S3ServiceException({ name, $fault: 'client', $metadata: { httpStatusCode: 400 }, message: 'x' })
    t.ok(isThrottling(e), `${name} by name`)
    t.equal(toS3ClientError(e).statusCode, 503, `${name} → 503`)
  }
  const by503 = new S3ServiceException({ name: 'ServiceUnavailable', $fault: 'server', $metadata: { httpStatusCode: 503 }, message: 'x' })
  t.ok(isThrottling(by503), 'any 503')
  const by429 = new S3ServiceException({ name: 'Unknown', $fault: 'client', $metadata: { httpStatusCode: 429 }, message: 'x' })
  t.ok(isThrottling(by429), 'any 429')
  t.equal(toS3ClientError(by429).retryAfterSeconds, DEFAULT_RETRY_AFTER_SECONDS)

  const notFound = new S3ServiceException({ name: 'NoSuchBucket', $fault: 'client', $metadata: { httpStatusCode: 404 }, message: 'The specified bucket does not exist' })
  t.notOk(isThrottling(notFound))
  const wrapped = toS3ClientError(notFound)
  t.equal(wrapped.statusCode, 502)
  t.equal(wrapped.retryAfterSeconds, undefined)
  assertS3Failure(t, wrapped)

  const internal = new S3ServiceException({ name: 'InternalError', $fault: 'server', $metadata: { httpStatusCode: 500 }, message: 'x' })
  t.notOk(isThrottling(internal), 'a 500 is not throttling')

  const plain = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9000'), { name: 'SlowDown', code: 'ECONNREFUSED' })
  t.notOk(isThrottling(plain), 'only an S3 service answer can be throttling')
  assertS3Failure(t, toS3ClientError(plain))
  t.notOk(isThrottling('SlowDown'))
  t.notOk(isThrottling(undefined))
  assertS3Failure(t, toS3ClientError('a string thrown'))
})
