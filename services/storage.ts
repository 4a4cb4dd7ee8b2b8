// JSON objects in S3. This is where every SDK failure becomes an S3ClientError.
import {
  GetObjectCommand, HeadBucketCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, S3ServiceException,
  type PutObjectCommandInput, type S3Client
} from '@aws-sdk/client-s3'
import { ArchiveIntegrityError, S3ClientError } from '../errors/index.js'
import type { S3WriteOptions } from '../config.js'
import { isFullObjectChecksum, retention, sha256Base64, type ObjectLockSettings } from './checksum.js'

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
  /** S3 Object Lock retention put on every object written. */
  lock?: ObjectLockSettings
  /** Told when a write-once PUT found its key taken; `conflict`: the stored body differs from the one offered. */
  onExisting?: (key: string, conflict: boolean) => void
  /** Told of each object a write-once PUT created. */
  onCreated?: (key: string) => void
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

/**
 * The one PutObject of the archive: written once (`If-None-Match: *`), with the SHA-256 of the
 * buffered body as a header (never aws-chunked, which some S3-compatible servers store as data),
 * and the Object Lock retention when one is configured (a locked bucket refuses a PUT without a checksum).
 */
export function putObjectInput (store: Store, key: string, body: string | Uint8Array, contentType = 'application/json'): PutObjectCommandInput {
  return {
    Bucket: store.bucket,
    Key: key,
    Body: body,
    ContentType: contentType,
    IfNoneMatch: '*',
    ChecksumAlgorithm: 'SHA256',
    ChecksumSHA256: sha256Base64(body),
    ...store.write,
    ...(store.lock !== undefined && retention(store.lock))
  }
}

/** created: stored now; duplicate: the same bytes were archived already; conflict: other bytes were, and they stay. */
export type PutOutcome = 'created' | 'duplicate' | 'conflict'

function isPreconditionFailed (err: unknown): boolean {
  return err instanceof S3ServiceException && (err.name === 'PreconditionFailed' || err.$metadata?.httpStatusCode === 412)
}

/**
 * Writes `body` under `key` unless the key is taken; what is archived is never replaced.
 * @throws S3ClientError
 */
export async function putOnce (store: Store, key: string, body: string | Uint8Array, signal?: AbortSignal): Promise<PutOutcome> {
  try {
    await call(store, async () => store.s3.send(new PutObjectCommand(putObjectInput(store, key, body)), { abortSignal: signal }))
    store.onCreated?.(key)
    return 'created'
  } catch (err) {
    if (!isPreconditionFailed(err)) throw toS3ClientError(err)
  }
  const stored = await storedChecksum(store, key, signal)
  const same = stored === sha256Base64(body)
  store.onExisting?.(key, !same)
  return same ? 'duplicate' : 'conflict'
}

/** The SHA-256 (base64) of a stored object: its stored checksum when it has one, else of its bytes. */
async function storedChecksum (store: Store, key: string, signal?: AbortSignal): Promise<string | undefined> {
  try {
    const head = await call(store, async () => store.s3.send(new HeadObjectCommand({ Bucket: store.bucket, Key: key, ChecksumMode: 'ENABLED' }), { abortSignal: signal }))
    if (isFullObjectChecksum(head.ChecksumSHA256, head.ChecksumType)) return head.ChecksumSHA256
  } catch (err) {
    throw toS3ClientError(err)
  }
  const read = await getBytes(store, key, signal)
  return read === undefined ? undefined : sha256Base64(read)
}

/** Writes `value` as a JSON object, once. @throws S3ClientError */
export async function putJson (store: Store, key: string, value: unknown, signal?: AbortSignal): Promise<PutOutcome> {
  return await putOnce(store, key, JSON.stringify(value), signal)
}

function isChecksumMismatch (err: unknown): boolean {
  // The SDK checks the body against x-amz-checksum-sha256 itself when ChecksumMode is ENABLED.
  return err instanceof Error && !(err instanceof S3ServiceException) && err.message.startsWith('Checksum mismatch')
}

/**
 * Reads an object's bytes, checked against its stored SHA-256 when it has one (objects
 * written without a checksum, as the Python service's were, are read as they are).
 * @returns undefined when there is no such key.
 * @throws ArchiveIntegrityError when the bytes do not match their checksum | S3ClientError
 */
export async function getBytes (store: Store, key: string, signal?: AbortSignal): Promise<Uint8Array | undefined> {
  let read: { body: Uint8Array, checksum: string | undefined, type: string | undefined }
  try {
    read = await call(store, async () => {
      const res = await store.s3.send(new GetObjectCommand({ Bucket: store.bucket, Key: key, ChecksumMode: 'ENABLED' }), { abortSignal: signal })
      const body = await (res.Body?.transformToByteArray() ?? Promise.resolve(new Uint8Array()))
      return { body, checksum: res.ChecksumSHA256, type: res.ChecksumType }
    })
  } catch (err) {
    if (isNoSuchKey(err)) return undefined
    if (isChecksumMismatch(err)) throw new ArchiveIntegrityError({ cause: new Error(`Object ${key} does not match its stored checksum`, { cause: err }) })
    throw toS3ClientError(err)
  }
  if (isFullObjectChecksum(read.checksum, read.type) && sha256Base64(read.body) !== read.checksum) {
    throw new ArchiveIntegrityError({ cause: new Error(`Object ${key} does not match its stored checksum`) })
  }
  return read.body
}

/** Reads a JSON object; undefined when there is no such key. @throws ArchiveIntegrityError | S3ClientError */
export async function getJson (store: Store, key: string, signal?: AbortSignal): Promise<unknown> {
  const bytes = await getBytes(store, key, signal)
  if (bytes === undefined) return undefined
  try {
    return JSON.parse(Buffer.from(bytes).toString('utf-8'))
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
export async function * listKeys (store: Store, listing: { Prefix: string, StartAfter?: string }, pageSize = 1000): AsyncGenerator<string> {
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
      })))
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
