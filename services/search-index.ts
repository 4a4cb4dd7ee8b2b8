// The search index entry written beside each webhook record: see services/keys.ts for its key.
import { S3ClientError } from '../errors/index.js'
import { createdAtMs, type Alert } from '../schemas/alert.js'
import { indexKey } from './keys.js'
import { putJson, type Store } from './storage.js'

/**
 * Writes the index entry of an alert's webhook record. Never rejects: the record is what makes
 * an alert safe, and a search finds a record without its entry by reading the record (the
 * minute's listings tell which records lack one), so a failed entry only costs that search
 * one more read. Resolves false when the entry could not be stored.
 */
export async function putIndexEntry (store: Store, alert: Alert): Promise<boolean> {
  try {
    // A tiny object: a storage class with a minimum billable size (STANDARD_IA: 128 KB) would
    // cost more than the record it points to, so entries keep the bucket's default class.
    const { StorageClass: _class, ...write } = store.write ?? {}
    await putJson({ ...store, write }, indexKey(store.prefix, alert.id, createdAtMs(alert)), {})
    return true
  } catch (err) {
    if (err instanceof S3ClientError || err instanceof RangeError) return false
    throw err
  }
}
