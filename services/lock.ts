// The start-up comparison of the bucket's Object Lock configuration with the service's settings.
import { GetObjectLockConfigurationCommand, S3ServiceException } from '@aws-sdk/client-s3'
import type { ObjectLockSettings } from './checksum.js'
import type { Store } from './storage.js'

export interface LockFinding {
  level: 'error' | 'warn' | 'info'
  message: string
}

type BucketLock = { enabled: false } | { enabled: true, mode?: string, days?: number } | { unknown: true, cause: unknown }

async function bucketLock (store: Store, signal?: AbortSignal): Promise<BucketLock> {
  try {
    const res = await store.s3.send(new GetObjectLockConfigurationCommand({ Bucket: store.bucket }), { abortSignal: signal })
    const cfg = res.ObjectLockConfiguration
    if (cfg?.ObjectLockEnabled !== 'Enabled') return { enabled: false }
    const rule = cfg.Rule?.DefaultRetention
    const days = rule?.Days ?? (rule?.Years !== undefined ? rule.Years * 365 : undefined)
    return { enabled: true, ...(rule?.Mode !== undefined && { mode: rule.Mode }), ...(days !== undefined && { days }) }
  } catch (err) {
    if (err instanceof S3ServiceException && err.name === 'ObjectLockConfigurationNotFoundError') return { enabled: false }
    return { unknown: true, cause: err }
  }
}

/**
 * What an operator must hear about the bucket's Object Lock versus S3_OBJECT_LOCK_MODE/_DAYS;
 * undefined when they agree. Never throws: the archive serves either way.
 */
export async function checkObjectLock (store: Store, settings: ObjectLockSettings | undefined, signal?: AbortSignal): Promise<LockFinding & { cause?: unknown } | undefined> {
  const bucket = await bucketLock(store, signal)
  if ('unknown' in bucket) {
    return settings === undefined
      ? undefined
      : { level: 'warn', message: 'Object Lock: could not read the bucket\'s lock configuration to compare it with S3_OBJECT_LOCK_MODE', cause: bucket.cause }
  }
  if (settings === undefined) {
    return bucket.enabled
      ? { level: 'warn', message: `Object Lock is enabled on the bucket but S3_OBJECT_LOCK_MODE is unset: objects get only the bucket's default retention (${bucket.mode === undefined ? 'none' : `${bucket.mode}, ${String(bucket.days)} days`})` }
      : undefined
  }
  if (!bucket.enabled) {
    return { level: 'error', message: 'Object Lock: S3_OBJECT_LOCK_MODE is set but Object Lock is not enabled on the bucket; S3 will refuse every write' }
  }
  if (bucket.mode !== undefined && (bucket.mode !== settings.mode || bucket.days !== settings.days)) {
    return { level: 'warn', message: `Object Lock: the bucket's default retention (${bucket.mode}, ${String(bucket.days)} days) differs from S3_OBJECT_LOCK_MODE/_DAYS (${settings.mode}, ${settings.days} days); objects this service writes get the latter` }
  }
  return undefined
}
