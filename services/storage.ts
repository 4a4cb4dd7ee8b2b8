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
  /** Total time of one call, from its wait for a slot to its body read; DEFAULT_S3_BUDGET_MS when absent. */
  budgetMs?: number
  /** S3 Object Lock retention put on every object written. */
  lock?: ObjectLockSettings
  /** Told when a write-once PUT found its key taken; `conflict`: the stored body differs from the one offered. */
  onExisting?: (key: string, conflict: boolean) => void
  /** Told of each object a write-once PUT created. */
  onCreated?: (key: string) => void
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
export async function call<T> (store: Store, fn: (signal: AbortSignal) => Promise<T>, callerSignal?: AbortSignal): Promise<T> {
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

/** The body's bytes; destroyed (with its socket) if the call is aborted while they arrive. */
async function bodyBytes (body: { transformToByteArray: () => Promise<Uint8Array>, destroy?: () => void } | undefined, signal: AbortSignal): Promise<Uint8Array> {
  if (body === undefined) return new Uint8Array()
  const destroy = (): void => { body.destroy?.() }
  signal.addEventListener('abort', destroy, { once: true })
  try {
    return await body.transformToByteArray()
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
 * The one PutObject of the archive: written once (`If-None-Match: *`), with the SHA-256 of the
 * buffered body as a header (never aws-chunked, which some S3-compatible servers store as data),
 * and the Object Lock retention when one is configured (a locked bucket refuses a PUT without a checksum).
 */
export function putObjectInput (store: Store, key: string, body: string | Uint8Array, contentType = 'application/json'): PutObjectCommandInput {
  return {
    ...stateObjectInput(store, key, body, contentType),
    IfNoneMatch: '*',
    ...(store.lock !== undefined && retention(store.lock))
  }
}

/**
 * A PutObject of rewritable state (ledgers, the table tier, leases, the digest chain's head):
 * no write-once condition, but the SHA-256 header every PUT carries, without which a bucket with
 * a default retention refuses the write.
 */
export function stateObjectInput (store: Store, key: string, body: string | Uint8Array, contentType = 'application/json'): PutObjectCommandInput {
  return {
    Bucket: store.bucket,
    Key: key,
    Body: body,
    ContentType: contentType,
    ChecksumAlgorithm: 'SHA256',
    ChecksumSHA256: sha256Base64(body),
    ...store.write
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
    await call(store, async (deadline) => store.s3.send(new PutObjectCommand(putObjectInput(store, key, body)), { abortSignal: deadline }), signal)
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
    const head = await call(store, async (deadline) => store.s3.send(new HeadObjectCommand({ Bucket: store.bucket, Key: key, ChecksumMode: 'ENABLED' }), { abortSignal: deadline }), signal)
    if (isFullObjectChecksum(head.ChecksumSHA256, head.ChecksumType)) return head.ChecksumSHA256
  } catch (err) {
    throw toS3ClientError(err)
  }
  const read = await getBytes(store, key, signal)
  return read === undefined ? undefined : sha256Base64(read)
}

/**
 * Writes `value` as a JSON object, once. Serializing happens before any S3 call, so a value that
 * cannot be serialized is never reported as a failure of S3. @throws S3ClientError
 */
export async function putJson (store: Store, key: string, value: unknown, signal?: AbortSignal): Promise<PutOutcome> {
  return await putOnce(store, key, JSON.stringify(value), signal)
}

/**
 * Writes `value` as a JSON object of derived state, replacing what is there: ledgers and table
 * manifests change as hours are re-checked, so they are never written once. @throws S3ClientError
 */
export async function putJsonState (store: Store, key: string, value: unknown, signal?: AbortSignal): Promise<void> {
  const body = JSON.stringify(value)
  try {
    await call(store, async (deadline) => store.s3.send(new PutObjectCommand(stateObjectInput(store, key, body)), { abortSignal: deadline }), signal)
  } catch (err) {
    throw toS3ClientError(err)
  }
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
    read = await call(store, async (deadline) => {
      const res = await store.s3.send(new GetObjectCommand({ Bucket: store.bucket, Key: key, ChecksumMode: 'ENABLED' }), { abortSignal: deadline })
      const body = await bodyBytes(res.Body, deadline)
      return { body, checksum: res.ChecksumSHA256, type: res.ChecksumType }
    }, signal)
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
