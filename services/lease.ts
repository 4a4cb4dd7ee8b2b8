// Rewritable state in the bucket (leases, the digest chain's head), written with conditional
// PUTs where the server enforces them. Unlike the archive, these objects are meant to change.
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand, S3ServiceException } from '@aws-sdk/client-s3'
import { sha256Base64 } from './checksum.js'
import { toS3ClientError, type Store } from './storage.js'

export interface StateObject { body: string, etag: string | undefined }

async function call<T> (store: Store, fn: () => Promise<T>): Promise<T> {
  return store.limit === undefined ? await fn() : await store.limit(fn)
}

function isPreconditionFailed (err: unknown): boolean {
  const status = err instanceof S3ServiceException ? err.$metadata?.httpStatusCode : undefined
  // 409 ConditionalRequestConflict: another conditional write of the key is under way.
  return err instanceof S3ServiceException && (err.name === 'PreconditionFailed' || status === 412 || err.name === 'ConditionalRequestConflict')
}

/**
 * Writes a state object: only when absent (`ifNoneMatch`), only over the version read (`ifMatch`),
 * or unconditionally. @returns false when the condition did not hold. @throws S3ClientError
 */
export async function putState (store: Store, key: string, body: string, condition: { ifNoneMatch?: boolean, ifMatch?: string } = {}): Promise<boolean> {
  try {
    await call(store, async () => store.s3.send(new PutObjectCommand({
      Bucket: store.bucket,
      Key: key,
      Body: body,
      ContentType: 'application/json',
      ChecksumAlgorithm: 'SHA256',
      ChecksumSHA256: sha256Base64(body),
      ...(condition.ifNoneMatch === true && { IfNoneMatch: '*' }),
      ...(condition.ifMatch !== undefined && { IfMatch: condition.ifMatch })
    })))
    return true
  } catch (err) {
    if (isPreconditionFailed(err)) return false
    throw toS3ClientError(err)
  }
}

/** @returns undefined when absent. @throws S3ClientError */
export async function getState (store: Store, key: string): Promise<StateObject | undefined> {
  try {
    return await call(store, async () => {
      const res = await store.s3.send(new GetObjectCommand({ Bucket: store.bucket, Key: key }))
      return { body: await (res.Body?.transformToString('utf-8') ?? Promise.resolve('')), etag: res.ETag }
    })
  } catch (err) {
    if (err instanceof S3ServiceException && err.name === 'NoSuchKey') return undefined
    throw toS3ClientError(err)
  }
}

/** @throws S3ClientError */
export async function deleteState (store: Store, key: string): Promise<void> {
  try {
    await call(store, async () => store.s3.send(new DeleteObjectCommand({ Bucket: store.bucket, Key: key })))
  } catch (err) {
    throw toS3ClientError(err)
  }
}

export interface Lease {
  /** Extends the lease; false when it was lost (expired and taken by another holder). */
  renew (): Promise<boolean>
  release (): Promise<void>
}

interface LeaseBody { owner: string, expiresAtMs: number }

function parseLease (body: string): LeaseBody | undefined {
  try {
    const value = JSON.parse(body) as Partial<LeaseBody>
    return typeof value.owner === 'string' && typeof value.expiresAtMs === 'number' ? value as LeaseBody : undefined
  } catch {
    return undefined
  }
}

/**
 * Claims the lease at `key` for `ttlMs`: created when absent, taken over when expired (only over
 * the very version read). Where the server ignores conditional writes every claimant gets it,
 * and the work it guards must be idempotent.
 * @returns undefined when another holder has it. @throws S3ClientError
 */
export async function claimLease (store: Store, key: string, owner: string, ttlMs: number, now = Date.now): Promise<Lease | undefined> {
  const body = (): string => JSON.stringify({ owner, expiresAtMs: now() + ttlMs })
  let held = await putState(store, key, body(), { ifNoneMatch: true })
  if (!held) {
    const current = await getState(store, key)
    const lease = current === undefined ? undefined : parseLease(current.body)
    if (current === undefined) {
      held = await putState(store, key, body(), { ifNoneMatch: true })
    } else if (lease === undefined || lease.expiresAtMs <= now() || lease.owner === owner) {
      held = current.etag !== undefined && await putState(store, key, body(), { ifMatch: current.etag })
    }
  }
  if (!held) return undefined
  return {
    async renew () {
      const current = await getState(store, key)
      const lease = current === undefined ? undefined : parseLease(current.body)
      if (current?.etag === undefined || lease?.owner !== owner) return false
      return await putState(store, key, body(), { ifMatch: current.etag })
    },
    async release () {
      const current = await getState(store, key)
      if (current !== undefined && parseLease(current.body)?.owner === owner) await deleteState(store, key)
    }
  }
}
