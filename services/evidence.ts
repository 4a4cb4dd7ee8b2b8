// The evidence of one alert: its webhook record as stored, its full alert's hash, and whether the
// hour's digests vouch for each of them. What an auditor asks of one alert before trusting it.
import { AlertNotFoundError, ArchiveIntegrityError, S3ClientError } from '../errors/index.js'
import { entryCreatedMs } from './backfill.js'
import { digestListing, entryOf, hourName, parseDigest, parseDigestKey, type DigestEntry } from './digest.js'
import { alertKey, assertAlertId, hourStart, MINUTE_MS, minuteStart, parseWebhookKey, webhookKey, withPrefix } from './keys.js'
import { getBytes, listKeys, type Store } from './storage.js'

/**
 * How far (in minutes, either side) from the time an ObjectId id names its webhook record is
 * looked for when there is no full alert to give created_at: Threat Stack stamps created_at
 * within seconds of the id. 2 × 5 + 1 = 11 reads at most, never a listing of the archive.
 */
export const RECORD_SEARCH_MINUTES = 5

/** What the hour's digests say of one object. */
export type DigestStatus =
  /** A digest of the hour lists the key with the object's SHA-256 and size. */
  | { status: 'covered', digest: string }
  /** No digest of the hour lists the key (yet): the hour is not closed, digests are off, or the object came later. */
  | { status: 'not-yet' }
  /** A digest lists the key with another SHA-256 or size, or lists an object that is no longer stored: tampering. */
  | { status: 'mismatch', digest: string, listed: { sha256: string, size: number } }

export interface StoredObject {
  /** The key under the archive's prefix (the prefix itself is not shown). */
  key: string
  sha256: string
  size: number
  digest: DigestStatus
}

export interface Evidence {
  id: string
  /** The UTC hour whose digests cover both objects (that of the record's key), `2017-01-15T23:00:00Z`. */
  hour: string
  webhook: StoredObject & {
    /** The record's exact stored text (its SHA-256 is `sha256`). */
    text: string
    /** The same, parsed. */
    record: unknown
  }
  alert: (StoredObject & { stored: true }) | { key: string, stored: false, digest: DigestStatus }
}

/** An object read as it is now; undefined when there is none. @throws ArchiveIntegrityError | S3ClientError */
async function readObject (store: Store, key: string, signal?: AbortSignal): Promise<{ key: string, bytes: Uint8Array } | undefined> {
  const bytes = await getBytes(store, key, signal)
  return bytes === undefined ? undefined : { key, bytes }
}

function parseJson (key: string, bytes: Uint8Array): unknown {
  try {
    return JSON.parse(Buffer.from(bytes).toString('utf-8'))
  } catch (err) {
    // As getJson: an object of ours that is not JSON is a failure of the store, not of the caller.
    throw new S3ClientError({ cause: new Error(`Object ${key} is not JSON`, { cause: err }) })
  }
}

/** The seconds an ObjectId's first 4 bytes name, in ms; undefined for an id that is not an ObjectId. */
export function objectIdTimeMs (id: string): number | undefined {
  if (!/^[0-9a-f]{24}$/i.test(id)) return undefined
  return Number.parseInt(id.slice(0, 8), 16) * 1000
}

/**
 * The minutes whose record key may hold `id`: the full alert's created_at first, then the
 * ObjectId's own minute, then the minutes around it, nearest first. Bounded: at most
 * 2 × RECORD_SEARCH_MINUTES + 2 minutes.
 */
export function candidateMinutes (id: string, fullCreatedMs: number | undefined): number[] {
  const minutes: number[] = []
  if (fullCreatedMs !== undefined && Number.isFinite(fullCreatedMs)) minutes.push(minuteStart(fullCreatedMs))
  const idMs = objectIdTimeMs(id)
  if (idMs !== undefined) {
    const centre = minuteStart(idMs)
    minutes.push(centre)
    for (let d = 1; d <= RECORD_SEARCH_MINUTES; d++) minutes.push(centre - d * MINUTE_MS, centre + d * MINUTE_MS)
  }
  return [...new Set(minutes)]
}

/** The record of `id` in the first of `minutes` that holds one: the first two one at a time (the usual answers), the rest at once. */
async function findRecord (store: Store, id: string, minutes: number[], signal?: AbortSignal): Promise<{ key: string, bytes: Uint8Array } | undefined> {
  for (const minute of minutes.slice(0, 2)) {
    const found = await readObject(store, webhookKey(store.prefix, id, minute), signal)
    if (found !== undefined) return found
  }
  const rest = await Promise.all(minutes.slice(2).map(async (minute) => readObject(store, webhookKey(store.prefix, id, minute), signal)))
  return rest.find((r) => r !== undefined)
}

interface Listed { digest: string, entry: DigestEntry }

/**
 * Every entry of the hour's digests (the first and its supplements), by key. A digest that is
 * not a digest document, like one whose bytes fail their checksum, is damage in the bucket.
 * @throws ArchiveIntegrityError | S3ClientError
 */
async function hourEntries (store: Store, hourMs: number, keys: Set<string>, signal?: AbortSignal): Promise<Map<string, Listed[]>> {
  const found = new Map<string, Listed[]>()
  const digests: Array<{ key: string, sequence: number }> = []
  for await (const key of listKeys(store, digestListing(store.prefix, hourMs), 1000, signal)) {
    const parsed = parseDigestKey(store.prefix, key)
    if (parsed !== undefined) digests.push({ key, sequence: parsed.sequence })
  }
  digests.sort((a, b) => a.sequence - b.sequence)
  for (const { key } of digests) {
    const bytes = await getBytes(store, key, signal)
    if (bytes === undefined) continue // deleted since it was listed: as if it never was
    const doc = parseDigest(bytes)
    if (doc === undefined) throw new ArchiveIntegrityError({ cause: new Error(`Digest ${key} is not a digest document`) })
    for (const entry of doc.objects) {
      if (!keys.has(entry.key)) continue
      const list = found.get(entry.key) ?? []
      list.push({ digest: key, entry })
      found.set(entry.key, list)
    }
  }
  return found
}

/** A key as answered: under the archive's prefix, which is not shown. */
function shownKey (prefix: string, key: string): string {
  return key.slice(withPrefix(prefix, '').length)
}

/** What the digests say of an object as it is now (undefined: not stored). Any digest that disagrees makes it a mismatch. */
function statusOf (prefix: string, listed: Listed[] | undefined, now: DigestEntry | undefined): DigestStatus {
  if (listed === undefined || listed.length === 0) return { status: 'not-yet' }
  const shown = (key: string): string => shownKey(prefix, key)
  const differs = listed.find(({ entry }) => now === undefined || entry.sha256 !== now.sha256 || entry.size !== now.size)
  if (differs !== undefined) {
    return { status: 'mismatch', digest: shown(differs.digest), listed: { sha256: differs.entry.sha256, size: differs.entry.size } }
  }
  return { status: 'covered', digest: shown((listed[0] as Listed).digest) }
}

/**
 * The evidence of one alert. Its record's minute comes from the full alert's created_at, or,
 * without a full alert (pending), from the time its ObjectId id names, a few minutes either
 * side (RECORD_SEARCH_MINUTES). Objects are read with their checksums; the digests' signatures
 * and chain are not checked here (`npm run verify` does, with the public key): this says
 * whether a digest lists each object as it is now.
 * @throws AlertNotFoundError when no record is found | ArchiveIntegrityError (an object or a digest damaged) | S3ClientError
 */
export async function getEvidence (deps: { store: Store }, id: string, signal?: AbortSignal): Promise<Evidence> {
  const { store } = deps
  assertAlertId(id)
  const fullKey = alertKey(store.prefix, id)
  const full = await readObject(store, fullKey, signal)
  let fullCreatedMs: number | undefined
  if (full !== undefined) {
    const value = parseJson(fullKey, full.bytes)
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) fullCreatedMs = entryCreatedMs(value as Record<string, unknown>)
  }
  const record = await findRecord(store, id, candidateMinutes(id, fullCreatedMs), signal)
  if (record === undefined) throw new AlertNotFoundError()
  const minuteMs = parseWebhookKey(store.prefix, record.key)?.minuteMs as number
  const hourMs = hourStart(minuteMs)
  const recordEntry = entryOf(record.key, record.bytes)
  const fullEntry = full === undefined ? undefined : entryOf(fullKey, full.bytes)
  const listed = await hourEntries(store, hourMs, new Set([record.key, fullKey]), signal)
  const shown = (key: string): string => shownKey(store.prefix, key)
  return {
    id,
    hour: hourName(hourMs),
    webhook: {
      key: shown(record.key),
      sha256: recordEntry.sha256,
      size: recordEntry.size,
      digest: statusOf(store.prefix, listed.get(record.key), recordEntry),
      text: Buffer.from(record.bytes).toString('utf-8'),
      record: parseJson(record.key, record.bytes)
    },
    alert: fullEntry === undefined
      ? { key: shown(fullKey), stored: false, digest: statusOf(store.prefix, listed.get(fullKey), undefined) }
      : { key: shown(fullKey), stored: true, sha256: fullEntry.sha256, size: fullEntry.size, digest: statusOf(store.prefix, listed.get(fullKey), fullEntry) }
  }
}
