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
}

async function call<T> (store: Store, fn: () => Promise<T>): Promise<T> {
  return store.limit === undefined ? await fn() : await store.limit(fn)
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

/** Writes `value` as a JSON object. @throws S3ClientError */
export async function putJson (store: Store, key: string, value: unknown, signal?: AbortSignal): Promise<void> {
  try {
    const body = JSON.stringify(value)
    await call(store, async () => store.s3.send(new PutObjectCommand({
      Bucket: store.bucket,
      Key: key,
      Body: body,
      ContentType: 'application/json',
      ...store.write
    }), { abortSignal: signal }))
  } catch (err) {
    throw toS3ClientError(err)
  }
}

/** Reads a JSON object; undefined when there is no such key. @throws S3ClientError */
export async function getJson (store: Store, key: string, signal?: AbortSignal): Promise<unknown> {
  let text: string
  try {
    text = await call(store, async () => {
      const res = await store.s3.send(new GetObjectCommand({ Bucket: store.bucket, Key: key }), { abortSignal: signal })
      return await (res.Body?.transformToString('utf-8') ?? Promise.resolve(''))
    })
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
    await call(store, async () => store.s3.send(new HeadBucketCommand({ Bucket: store.bucket }), { abortSignal: signal }))
  } catch (err) {
    throw toS3ClientError(err)
  }
}

/** Whether an object exists. @throws S3ClientError */
export async function exists (store: Store, key: string): Promise<boolean> {
  try {
    await call(store, async () => store.s3.send(new HeadObjectCommand({ Bucket: store.bucket, Key: key })))
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
      const res = await call(store, async () => store.s3.send(new ListObjectsV2Command({
        Bucket: store.bucket,
        Prefix: listing.Prefix,
        MaxKeys: pageSize,
        ...(startAfter !== undefined && { StartAfter: startAfter })
      }), { abortSignal: signal }))
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
