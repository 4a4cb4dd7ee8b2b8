// Rewritable state in the bucket, written with conditional PUTs: the leases that share the work
// (each hour's check, the digest job) among replicas, the digest chain's head, and the puts of
// derived work. Unlike the archive, these objects are meant to change. Where the S3 server
// ignores conditions (s3rver), every claim succeeds and work may run twice: everything done
// under a lease is idempotent.
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand, S3ServiceException } from '@aws-sdk/client-s3'
import { call, stateObjectInput, toS3ClientError, type Store } from './storage.js'
import { withPrefix } from './keys.js'

export interface StateObject { body: string, etag: string | undefined }

/** `[prefix/]ledger/leases/<name>.json` */
export function leaseKey (prefix: string, name: string): string {
  return withPrefix(prefix, `ledger/leases/${name}.json`)
}

export interface Lease {
  key: string
  /** The ETag of the lease as we wrote it: a renewal or release must match it. */
  etag: string | undefined
  owner: string
  expiresAtMs: number
}

/** The body of a lease object. */
export interface LeaseBody { owner: string, expiresAt: string, expiresAtMs: number }

function preconditionFailed (err: unknown): boolean {
  if (!(err instanceof S3ServiceException)) return false
  const status = err.$metadata?.httpStatusCode
  // 409 ConditionalRequestConflict: another conditional write of the key is under way.
  return status === 412 || status === 409 || err.name === 'PreconditionFailed' || err.name === 'ConditionalRequestConflict'
}

export type Condition = { ifNoneMatch: '*' } | { ifMatch: string }

/**
 * Writes `body` (JSON text) under a condition; undefined when the condition failed (the key
 * exists, or changed), the new ETag otherwise. @throws S3ClientError
 */
export async function putConditional (store: Store, key: string, body: string, condition: Condition): Promise<{ etag: string | undefined } | undefined> {
  const send = async (deadline: AbortSignal): Promise<{ ETag?: string }> => await store.s3.send(new PutObjectCommand({
    ...stateObjectInput(store, key, body),
    ...('ifNoneMatch' in condition ? { IfNoneMatch: '*' } : { IfMatch: condition.ifMatch })
  }), { abortSignal: deadline })
  try {
    const res = await call(store, send)
    return { etag: res.ETag }
  } catch (err) {
    if (preconditionFailed(err)) return undefined
    throw toS3ClientError(err)
  }
}

/**
 * Writes a state object: only when absent (`ifNoneMatch`), only over the version read (`ifMatch`),
 * or unconditionally. @returns false when the condition did not hold. @throws S3ClientError
 */
export async function putState (store: Store, key: string, body: string, condition: { ifNoneMatch?: boolean, ifMatch?: string } = {}): Promise<boolean> {
  try {
    await call(store, async (deadline) => store.s3.send(new PutObjectCommand({
      ...stateObjectInput(store, key, body),
      ...(condition.ifNoneMatch === true && { IfNoneMatch: '*' }),
      ...(condition.ifMatch !== undefined && { IfMatch: condition.ifMatch })
    }), { abortSignal: deadline }))
    return true
  } catch (err) {
    if (preconditionFailed(err)) return false
    throw toS3ClientError(err)
  }
}

/** @returns undefined when absent. @throws S3ClientError */
export async function getState (store: Store, key: string): Promise<StateObject | undefined> {
  const found = await getWithEtag(store, key)
  return found === undefined ? undefined : { body: found.text, etag: found.etag }
}

/** @throws S3ClientError */
export async function deleteState (store: Store, key: string): Promise<void> {
  try {
    await call(store, async (deadline) => store.s3.send(new DeleteObjectCommand({ Bucket: store.bucket, Key: key }), { abortSignal: deadline }))
  } catch (err) {
    throw toS3ClientError(err)
  }
}

/** The object and its ETag; undefined when there is none. @throws S3ClientError */
async function getWithEtag (store: Store, key: string): Promise<{ text: string, etag: string | undefined } | undefined> {
  const get = async (deadline: AbortSignal): Promise<{ text: string, etag: string | undefined }> => {
    const res = await store.s3.send(new GetObjectCommand({ Bucket: store.bucket, Key: key }), { abortSignal: deadline })
    return { text: await (res.Body?.transformToString('utf-8') ?? Promise.resolve('')), etag: res.ETag }
  }
  try {
    return await call(store, get)
  } catch (err) {
    if (err instanceof S3ServiceException && err.name === 'NoSuchKey') return undefined
    throw toS3ClientError(err)
  }
}

function parseBody (text: string): LeaseBody | undefined {
  try {
    const value = JSON.parse(text) as Partial<LeaseBody>
    return typeof value.owner === 'string' && Number.isSafeInteger(value.expiresAtMs) ? value as LeaseBody : undefined
  } catch {
    return undefined
  }
}

const bodyOf = (owner: string, expiresAtMs: number): string =>
  JSON.stringify({ owner, expiresAt: new Date(expiresAtMs).toISOString(), expiresAtMs } satisfies LeaseBody)

/**
 * Claims the lease `name` for `ttlMs`: created with If-None-Match, or, when it exists and has
 * expired (or is already ours), taken over with If-Match on its ETag. Undefined when another
 * owner holds it, or won the race. A lease body that is not a lease counts as expired.
 * @throws S3ClientError
 */
export async function claimLease (store: Store, name: string, options: { owner: string, ttlMs: number, nowMs?: number }): Promise<Lease | undefined> {
  const key = leaseKey(store.prefix, name)
  const now = options.nowMs ?? Date.now()
  const expiresAtMs = now + options.ttlMs
  const body = bodyOf(options.owner, expiresAtMs)
  const created = await putConditional(store, key, body, { ifNoneMatch: '*' })
  if (created !== undefined) return { key, etag: created.etag, owner: options.owner, expiresAtMs }
  const current = await getWithEtag(store, key)
  // Released and deleted in between: try once more from scratch next time.
  if (current === undefined || current.etag === undefined) return undefined
  const held = parseBody(current.text)
  if (held !== undefined && held.expiresAtMs > now && held.owner !== options.owner) return undefined
  const taken = await putConditional(store, key, body, { ifMatch: current.etag })
  return taken === undefined ? undefined : { key, etag: taken.etag, owner: options.owner, expiresAtMs }
}

/**
 * Extends a lease we hold by `ttlMs` from now, only over the version we wrote (If-Match), so a
 * lease that expired and was taken by another owner is not taken back.
 * @returns the renewed lease, or undefined when it was lost. @throws S3ClientError
 */
export async function renewLease (store: Store, lease: Lease, ttlMs: number, nowMs = Date.now()): Promise<Lease | undefined> {
  if (lease.etag === undefined) return undefined
  const expiresAtMs = nowMs + ttlMs
  const renewed = await putConditional(store, lease.key, bodyOf(lease.owner, expiresAtMs), { ifMatch: lease.etag })
  return renewed === undefined ? undefined : { ...lease, etag: renewed.etag, expiresAtMs }
}

/**
 * Ends a lease early by writing it expired (If-Match: only if it is still the one we wrote),
 * so the next claim needs not wait for its expiry. @throws S3ClientError
 */
export async function releaseLease (store: Store, lease: Lease): Promise<void> {
  const body = bodyOf(lease.owner, 0)
  if (lease.etag === undefined) return
  await putConditional(store, lease.key, body, { ifMatch: lease.etag })
}
