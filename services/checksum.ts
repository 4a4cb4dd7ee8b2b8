// SHA-256 of archived bytes as S3 carries it (base64 in x-amz-checksum-sha256), and the
// retention S3 Object Lock puts on a write. Pure: no SDK, nothing of ours.
import { createHash } from 'node:crypto'

export function sha256 (body: string | Uint8Array): Buffer {
  return createHash('sha256').update(body).digest()
}

export function sha256Base64 (body: string | Uint8Array): string {
  return sha256(body).toString('base64')
}

export function sha256Hex (body: string | Uint8Array): string {
  return sha256(body).toString('hex')
}

/**
 * Whether a stored checksum covers the whole object, so that the bytes read can be checked
 * against it. A multipart upload's composite checksum ("<base64>-<parts>") is a hash of the
 * parts' hashes: it cannot be recomputed from the object alone and is not checked here.
 */
export function isFullObjectChecksum (checksum: string | undefined, type?: string): checksum is string {
  if (checksum === undefined || checksum === '') return false
  if (type !== undefined && type !== 'FULL_OBJECT') return false
  return /^[A-Za-z0-9+/]{43}=$/.test(checksum)
}

export type ObjectLockMode = 'GOVERNANCE' | 'COMPLIANCE'

export interface ObjectLockSettings {
  mode: ObjectLockMode
  /** Days of retention from the moment of the write; ≥ 1. */
  days: number
}

const DAY_MS = 86_400_000

/** The Object Lock parameters of a PutObject written at `nowMs`. */
export function retention (lock: ObjectLockSettings, nowMs = Date.now()): { ObjectLockMode: ObjectLockMode, ObjectLockRetainUntilDate: Date } {
  return { ObjectLockMode: lock.mode, ObjectLockRetainUntilDate: new Date(nowMs + lock.days * DAY_MS) }
}
