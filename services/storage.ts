// JSON objects in S3. This is where every SDK failure becomes an S3ClientError.
import {
  GetObjectCommand, HeadBucketCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, S3ServiceException,
  type S3Client
} from '@aws-sdk/client-s3'
import { S3ClientError } from '../errors/index.js'
import type { S3WriteOptions } from '../config.js'

export interface Store {
  s3: S3Client
  bucket: string
  /** Normalised key prefix, '' when none. */
  prefix: string
  /** Encryption, storage class and tags of every object written. */
  write?: S3WriteOptions
  /**
   * Bounds the S3 calls under way (as many as the client has sockets). A call waits here, as a
   * closure, rather than inside the SDK: its request is built, signed and timed only once a
   * socket is free, so the request timeout measures S3 and a queue costs next to no memory.
   */
  limit?: <T>(call: () => Promise<T>) => Promise<T>
  /** Total time of one call, from its wait for a slot to its body read; DEFAULT_S3_BUDGET_MS when absent. */
  budgetMs?: number
}

/** S3_BUDGET_MS's default, for stores built without a configuration. */
export const DEFAULT_S3_BUDGET_MS = 15_000

/** Settles as `promise` does, or rejects with the signal's reason as soon as it aborts. */
async function within<T> (signal: AbortSignal, promise: Promise<T>): Promise<T> {
  if (signal.aborted) {
    promise.catch(() => {})
    throw signal.reason
  }
  let onAbort: (() => void) | undefined
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_resolve, reject) => {
        onAbort = () => { reject(signal.reason) }
        signal.addEventListener('abort', onAbort, { once: true })
      })
    ])
  } finally {
    if (onAbort !== undefined) signal.removeEventListener('abort', onAbort)
    // What the deadline cut short still settles (the SDK rejects once its socket is destroyed).
    promise.catch(() => {})
  }
}

/**
 * Runs one S3 call within the store's budget: the wait for a slot, every attempt of the SDK,
 * its backoff and the reading of the body, all together. Socket idle timeouts alone let an S3
 * that trickles a byte at a time hold a call, its slot and its socket for ever. At the
 * deadline the caller gets its rejection at once, the slot is given back, and `fn`, which
 * passes the signal to the SDK, has its request and response stream destroyed.
 */
async function call<T> (store: Store, fn: (signal: AbortSignal) => Promise<T>, callerSignal?: AbortSignal): Promise<T> {
  const budgetMs = store.budgetMs ?? DEFAULT_S3_BUDGET_MS
  const deadline = new AbortController()
  const timer = setTimeout(() => {
    deadline.abort(new Error(`S3 call did not complete within its budget of ${budgetMs} ms`))
  }, budgetMs)
  const onCallerAbort = (): void => { deadline.abort(callerSignal?.reason) }
  if (callerSignal?.aborted === true) onCallerAbort()
  else callerSignal?.addEventListener('abort', onCallerAbort, { once: true })
  const { signal } = deadline
  // A call still queued at its deadline sends nothing once its slot comes.
  const run = async (): Promise<T> => await within(signal, signal.aborted ? Promise.reject(signal.reason) : fn(signal))
  try {
    return await within(signal, store.limit === undefined ? run() : store.limit(run))
  } finally {
    clearTimeout(timer)
    callerSignal?.removeEventListener('abort', onCallerAbort)
  }
}

/** The body as text; destroyed (with its socket) if the call is aborted while it arrives. */
async function bodyText (body: { transformToString: (encoding?: string) => Promise<string>, destroy?: () => void } | undefined, signal: AbortSignal): Promise<string> {
  if (body === undefined) return ''
  const destroy = (): void => { body.destroy?.() }
  signal.addEventListener('abort', destroy, { once: true })
  try {
    return await body.transformToString('utf-8')
  } finally {
    signal.removeEventListener('abort', destroy)
  }
}

// Error names S3 and S3-compatible servers use when asking callers to slow down.
const THROTTLING = new Set(['SlowDown', 'Throttling', 'ThrottlingException', 'RequestLimitExceeded', 'TooManyRequestsException', 'RequestThrottled'])

export function isThrottling (err: unknown): boolean {
  if (!(err instanceof S3ServiceException)) return false
  const status = err.$metadata?.httpStatusCode
  return THROTTLING.has(err.name) || status === 503 || status === 429
}

/** Wraps any failure of an S3 call; the SDK's error stays as `cause`, for the log only. */
export function toS3ClientError (err: unknown): S3ClientError {
  return new S3ClientError({ cause: err, throttled: isThrottling(err) })
}

function isNoSuchKey (err: unknown): boolean {
  // Only S3's own word: a missing bucket, or a wrong endpoint answering 404, must not look like a missing alert.
  return err instanceof S3ServiceException && err.name === 'NoSuchKey'
}

/**
 * Writes `value` as a JSON object. Serializing happens before any S3 call, so a value that
 * cannot be serialized is never reported as a failure of S3. @throws S3ClientError
 */
export async function putJson (store: Store, key: string, value: unknown, signal?: AbortSignal): Promise<void> {
  await putBody(store, key, JSON.stringify(value), signal)
}

/** Writes `body`, JSON text kept byte for byte, as a JSON object. @throws S3ClientError */
export async function putBody (store: Store, key: string, body: string | Buffer, signal?: AbortSignal): Promise<void> {
  try {
    await call(store, async (deadline) => store.s3.send(new PutObjectCommand({
      Bucket: store.bucket,
      Key: key,
      Body: body,
      ContentType: 'application/json',
      ...store.write
    }), { abortSignal: deadline }), signal)
  } catch (err) {
    throw toS3ClientError(err)
  }
}

/** Reads a JSON object; undefined when there is no such key. @throws S3ClientError */
export async function getJson (store: Store, key: string, signal?: AbortSignal): Promise<unknown> {
  let text: string
  try {
    text = await call(store, async (deadline) => {
      const res = await store.s3.send(new GetObjectCommand({ Bucket: store.bucket, Key: key }), { abortSignal: deadline })
      return await bodyText(res.Body, deadline)
    }, signal)
  } catch (err) {
    if (isNoSuchKey(err)) return undefined
    throw toS3ClientError(err)
  }
  try {
    return JSON.parse(text)
  } catch (err) {
    // The object exists but S3 gave back something that is not JSON: a failure of the store, not of the caller.
    throw new S3ClientError({ cause: new Error(`Object ${key} is not JSON`, { cause: err }) })
  }
}

/** Resolves when the bucket is reachable with our credentials. @throws S3ClientError */
export async function checkBucket (store: Store, signal?: AbortSignal): Promise<void> {
  try {
    await call(store, async (deadline) => store.s3.send(new HeadBucketCommand({ Bucket: store.bucket }), { abortSignal: deadline }), signal)
  } catch (err) {
    throw toS3ClientError(err)
  }
}

/** Whether an object exists. @throws S3ClientError */
export async function exists (store: Store, key: string): Promise<boolean> {
  try {
    await call(store, async (deadline) => store.s3.send(new HeadObjectCommand({ Bucket: store.bucket, Key: key }), { abortSignal: deadline }))
    return true
  } catch (err) {
    // HEAD answers have no body, so a missing key is a bare NotFound (as is a missing bucket: HEAD cannot tell).
    if (isNoSuchKey(err) || (err instanceof S3ServiceException && err.name === 'NotFound')) return false
    throw toS3ClientError(err)
  }
}

/**
 * Keys under `Prefix` that sort after `StartAfter`, in order, one listing page at a time.
 * Pages are chained with StartAfter rather than continuation tokens: every S3-compatible
 * server supports it, and a cursor can resume from any key.
 * @throws S3ClientError
 */
export async function * listKeys (store: Store, listing: { Prefix: string, StartAfter?: string }, pageSize = 1000, signal?: AbortSignal): AsyncGenerator<string> {
  let startAfter = listing.StartAfter
  for (;;) {
    let keys: string[]
    let truncated: boolean
    try {
      const res = await call(store, async (deadline) => store.s3.send(new ListObjectsV2Command({
        Bucket: store.bucket,
        Prefix: listing.Prefix,
        MaxKeys: pageSize,
        ...(startAfter !== undefined && { StartAfter: startAfter })
      }), { abortSignal: deadline }), signal)
      keys = (res.Contents ?? []).flatMap((o) => o.Key === undefined ? [] : [o.Key])
      truncated = res.IsTruncated === true
    } catch (err) {
      throw toS3ClientError(err)
    }
    yield * keys
    const last = keys.at(-1)
    if (!truncated || last === undefined) return
    startAfter = last
  }
}
