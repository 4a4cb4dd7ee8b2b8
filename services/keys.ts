// The S3 key layout, unchanged from the Python service so its archives stay readable.
//   [prefix/]webhooks/YYYY/MM/DD/HH/mm/<id>   webhook record, UTC minute of created_at
//   [prefix/]alerts/<id[0:2]>/<id[2:4]>/<id>  full alert

import { WebhookDataError } from '../errors/index.js'

/** The alert id rule (schemas/alert.ts AlertIdSchema), applied again where keys and URLs are built. */
export const ALERT_ID = /^[A-Za-z0-9_-]{4,128}$/

/**
 * Refuses an id that breaks the id rule, so that no key or URL is ever built from one, whatever
 * path it came by. @throws WebhookDataError
 */
export function assertAlertId (id: unknown): asserts id is string {
  if (typeof id !== 'string' || !ALERT_ID.test(id)) {
    throw new WebhookDataError('Alert id is invalid', { details: ['/id must be 4 to 128 characters of A-Z, a-z, 0-9, _ and -'] })
  }
}

/** `key` under the archive's prefix ('' when none). */
export function withPrefix (prefix: string, key: string): string {
  return prefix === '' ? key : `${prefix}/${key}`
}

export const HOUR_MS = 3_600_000

/** `YYYY/MM/DD/HH` of the UTC hour that holds `ms`: how digests, ledgers and leases name an hour. */
export function hourPath (ms: number): string {
  const iso = new Date(ms).toISOString()
  return `${iso.slice(0, 4)}/${iso.slice(5, 7)}/${iso.slice(8, 10)}/${iso.slice(11, 13)}`
}

export function hourStart (ms: number): number {
  return Math.floor(ms / HOUR_MS) * HOUR_MS
}

/** `YYYY/MM/DD/HH/mm` of a time in UTC. */
export function minutePath (ms: number): string {
  const iso = new Date(ms).toISOString() // YYYY-MM-DDTHH:mm:ss.sssZ for years 0-9999
  return `${iso.slice(0, 4)}/${iso.slice(5, 7)}/${iso.slice(8, 10)}/${iso.slice(11, 13)}/${iso.slice(14, 16)}`
}

/** @throws WebhookDataError for an id that breaks the id rule */
export function webhookKey (prefix: string, id: string, createdAtMs: number): string {
  assertAlertId(id)
  return withPrefix(prefix, `webhooks/${minutePath(createdAtMs)}/${id}`)
}

/** @throws WebhookDataError for an id that breaks the id rule */
export function alertKey (prefix: string, id: string): string {
  assertAlertId(id)
  return withPrefix(prefix, `alerts/${id.slice(0, 2)}/${id.slice(2, 4)}/${id}`)
}

export const MINUTE_MS = 60_000

export function minuteStart (ms: number): number {
  return Math.floor(ms / MINUTE_MS) * MINUTE_MS
}

/** `[prefix/]webhooks/`: where every webhook record lives. */
export function webhooksRoot (prefix: string): string {
  return withPrefix(prefix, 'webhooks/')
}

const WEBHOOK_KEY = /^webhooks\/(\d{4})\/(\d{2})\/(\d{2})\/(\d{2})\/(\d{2})\/([A-Za-z0-9_-]{4,128})$/

/** The minute and id a webhook record's key names; undefined for any other key. */
export function parseWebhookKey (prefix: string, key: string): { minuteMs: number, id: string } | undefined {
  const root = withPrefix(prefix, '')
  if (!key.startsWith(root)) return undefined
  const match = WEBHOOK_KEY.exec(key.slice(root.length))
  if (match === null) return undefined
  const [, y, mo, d, h, mi, id] = match as unknown as [string, string, string, string, string, string, string]
  const minuteMs = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi))
  // Date.UTC maps years 0-99 to 1900-1999; keys of such years are not ours anyway.
  if (minutePath(minuteMs) !== `${y}/${mo}/${d}/${h}/${mi}`) return undefined
  return { minuteMs, id }
}

/**
 * The listing that covers the minutes from `firstMinuteMs` to `lastMinuteMs` (inclusive): keys sort
 * chronologically, so it starts after the first minute's own path and stops past the last minute;
 * its Prefix is what the two minutes' keys have in common, so nothing outside can be listed.
 */
export function webhookListing (prefix: string, firstMinuteMs: number, lastMinuteMs: number): { Prefix: string, StartAfter: string } {
  const first = `${webhooksRoot(prefix)}${minutePath(firstMinuteMs)}/`
  const last = `${webhooksRoot(prefix)}${minutePath(lastMinuteMs)}/`
  let common = 0
  while (common < first.length && first[common] === last[common]) common++
  // StartAfter sorts before every key of the first minute ("…/10" < "…/10/<id>").
  return { Prefix: first.slice(0, common), StartAfter: first.slice(0, -1) }
}

// The search index, beside the original folders (the Python service never wrote it):
//   [prefix/]index/YYYY/MM/DD/HH/mm/ss.SSS-<id>   one empty-ish object per webhook record
// Its keys sort by created_at then id within a minute, so a page of a search is read off a
// listing; the webhook record stays the evidence, the index is derived and rewritable.

const ID = /^[A-Za-z0-9_-]{4,128}$/

/** `[prefix/]index/`: where every index entry lives. */
export function indexRoot (prefix: string): string {
  return withPrefix(prefix, 'index/')
}

/** The index entry of a webhook record. @throws RangeError for an id or a time no record can have */
export function indexKey (prefix: string, id: string, createdAtMs: number): string {
  if (typeof id !== 'string' || !ID.test(id)) throw new RangeError('an index key needs an alert id of 4-128 characters of A-Z, a-z, 0-9, _ and -')
  if (!Number.isSafeInteger(createdAtMs) || createdAtMs < 0 || createdAtMs > Date.UTC(9999, 11, 31, 23, 59, 59, 999)) {
    throw new RangeError('an index key needs created_at in milliseconds within the years 1970 to 9999')
  }
  const iso = new Date(createdAtMs).toISOString()
  return `${indexRoot(prefix)}${minutePath(createdAtMs)}/${iso.slice(17, 23)}-${id}`
}

const INDEX_KEY = /^index\/(\d{4})\/(\d{2})\/(\d{2})\/(\d{2})\/(\d{2})\/(\d{2})\.(\d{3})-([A-Za-z0-9_-]{4,128})$/

/** The minute, created_at and id an index key names; undefined for any other key. */
export function parseIndexKey (prefix: string, key: string): { minuteMs: number, t: number, id: string } | undefined {
  const root = withPrefix(prefix, '')
  if (!key.startsWith(root)) return undefined
  const match = INDEX_KEY.exec(key.slice(root.length))
  if (match === null) return undefined
  const [, y, mo, d, h, mi, s, ms, id] = match as unknown as [string, string, string, string, string, string, string, string, string]
  const minuteMs = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi))
  if (minutePath(minuteMs) !== `${y}/${mo}/${d}/${h}/${mi}` || Number(s) > 59) return undefined
  return { minuteMs, t: minuteMs + Number(s) * 1000 + Number(ms), id }
}

/** The index listing of the minutes from `firstMinuteMs` to `lastMinuteMs` (inclusive), as webhookListing. */
export function indexListing (prefix: string, firstMinuteMs: number, lastMinuteMs: number): { Prefix: string, StartAfter: string } {
  const first = `${indexRoot(prefix)}${minutePath(firstMinuteMs)}/`
  const last = `${indexRoot(prefix)}${minutePath(lastMinuteMs)}/`
  let common = 0
  while (common < first.length && first[common] === last[common]) common++
  return { Prefix: first.slice(0, common), StartAfter: first.slice(0, -1) }
}

/** Every key of one minute: its webhook records, or its index entries. */
export function minuteListing (root: string, minuteMs: number): { Prefix: string } {
  return { Prefix: `${root}${minutePath(minuteMs)}/` }
}
