// Reading the archive back: one alert by id, or the alerts of a time range, page by page.
import pLimit from 'p-limit'
import { AlertNotFoundError, DateParseError, RequestValidationError, S3ClientError } from '../errors/index.js'
import { createdAtMs, type Alert } from '../schemas/alert.js'
import { alertKey, minuteStart, parseWebhookKey, webhookListing } from './keys.js'
import { getJson, listKeys, type Store } from './storage.js'

export interface SearchDeps {
  store: Store
  /** How many S3 GETs one search makes at once. */
  concurrency: number
}

/** `start ≤ created_at < end`, in milliseconds. */
export interface TimeRange { startMs: number, endMs: number }

/** Where a page ended: the ordering key (minute of the record's key, created_at, id) of its last alert. */
export interface Position { m: number, t: number, id: string }

export interface SearchPage {
  alerts: Array<Record<string, unknown>>
  nextCursor: string | null
  /** Ids whose webhook record is archived but whose full alert is not (yet). */
  missing: string[]
}

/** The stored full alert. @throws AlertNotFoundError | S3ClientError */
export async function getAlert (deps: { store: Store }, id: string): Promise<Record<string, unknown>> {
  const alert = await getJson(deps.store, alertKey(deps.store.prefix, id))
  if (alert === undefined) throw new AlertNotFoundError()
  return asObject(alert)
}

/** A stored full alert must be a JSON object; anything else means the store gave back garbage. */
function asObject (value: unknown): Record<string, unknown> {
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Record<string, unknown>
  throw new S3ClientError({ cause: new Error('stored alert is not a JSON object') })
}

const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})(?:[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2})))?$/

/**
 * An RFC 3339 date-time with offset, or a plain date (midnight UTC), in milliseconds; digits
 * beyond the millisecond are cut. Undefined for anything else, including impossible dates
 * (February 30th, 24:00) that Date.parse would roll over.
 */
export function parseInstant (text: string): number | undefined {
  const m = DATE_TIME.exec(text)
  if (m === null) return undefined
  const [year, month, day, hour = 0, minute = 0, second = 0] = m.slice(1, 7).map((v) => v === undefined ? undefined : Number(v)) as number[]
  const ms = Number(((m[7] ?? '') + '000').slice(0, 3))
  if (m[4] !== undefined && m[8] === undefined && m[9] === undefined) return undefined
  const offsetMin = m[9] === undefined ? 0 : (m[9] === '-' ? -1 : 1) * (Number(m[10]) * 60 + Number(m[11]))
  if (Number(m[10] ?? 0) > 23 || Number(m[11] ?? 0) > 59) return undefined
  const local = Date.UTC(year as number, (month as number) - 1, day, hour, minute, second, ms)
  const check = new Date(local)
  // Round trip: a rolled-over date or time was not a real one.
  if (check.getUTCFullYear() !== year || check.getUTCMonth() !== (month as number) - 1 || check.getUTCDate() !== day ||
    check.getUTCHours() !== hour || check.getUTCMinutes() !== minute || check.getUTCSeconds() !== second || (year as number) < 1970) {
    return undefined
  }
  return local - offsetMin * 60_000
}

/** @throws DateParseError saying which bound is wrong and why */
export function parseRange (start: string, end: string): TimeRange {
  const startMs = parseInstant(start)
  if (startMs === undefined) throw new DateParseError('start is not an RFC 3339 date-time (with offset) or a date', { details: ['/start must be like 2017-01-15T23:10:00Z or 2017-01-15'] })
  const endMs = parseInstant(end)
  if (endMs === undefined) throw new DateParseError('end is not an RFC 3339 date-time (with offset) or a date', { details: ['/end must be like 2017-01-15T23:10:00Z or 2017-01-15'] })
  if (startMs >= endMs) throw new DateParseError('start must be before end')
  return { startMs, endMs }
}

export function encodeCursor (range: TimeRange, position: Position): string {
  return Buffer.from(JSON.stringify({ v: 1, s: range.startMs, e: range.endMs, ...position })).toString('base64url')
}

/** @throws RequestValidationError when the cursor was not made by a search of this very range */
export function decodeCursor (range: TimeRange, cursor: string): Position {
  const invalid = (): RequestValidationError =>
    new RequestValidationError('cursor is invalid', { details: ['/cursor must be a nextCursor returned by the same search (same start and end)'] })
  let value: unknown
  try {
    value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'))
  } catch (err) {
    throw new RequestValidationError('cursor is invalid', { cause: err, details: invalid().details })
  }
  if (typeof value !== 'object' || value === null) throw invalid()
  const { v, s, e, m, t, id } = value as Record<string, unknown>
  const isInt = (x: unknown): x is number => Number.isSafeInteger(x)
  if (v !== 1 || s !== range.startMs || e !== range.endMs || !isInt(m) || !isInt(t) ||
    typeof id !== 'string' || !/^[A-Za-z0-9_-]{4,128}$/.test(id) || m % 60_000 !== 0 ||
    m < minuteStart(range.startMs) || m > minuteStart(range.endMs - 1)) {
    throw invalid()
  }
  return { m, t, id }
}

function compare (a: Position, b: Position): number {
  return a.m - b.m || a.t - b.t || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
}

/** A position, with the full alert when it has been read already (null: known to be missing). */
interface Entry extends Position { full?: Record<string, unknown> | null }

const timeOf = (value: unknown): number =>
  typeof value === 'object' && value !== null ? createdAtMs(value as Alert) : Number.NaN

/**
 * The entries of one minute, in order. In the range's first and last minutes the webhook record's
 * created_at decides whether an alert is in; inside the range every alert of the minute is, and
 * the full alert (read anyway for the reply) gives the order, its record only when it is missing.
 * A record without a usable created_at sorts at its minute's start.
 */
async function entriesOf (deps: SearchDeps, keys: Array<{ key: string, minuteMs: number, id: string }>, boundary: boolean): Promise<Entry[]> {
  const { store } = deps
  const limit = pLimit(deps.concurrency)
  const entries = await Promise.all(keys.map(async ({ key, minuteMs, id }) => limit(async (): Promise<Entry | undefined> => {
    let full: Record<string, unknown> | null | undefined
    if (!boundary) {
      const alert = await getJson(store, alertKey(store.prefix, id))
      full = alert === undefined ? null : asObject(alert)
      const t = timeOf(full)
      if (!Number.isNaN(t)) return { m: minuteMs, t, id, full }
    }
    const record = await getJson(store, key)
    if (record === undefined) return undefined // deleted since it was listed
    const t = timeOf(record)
    return { m: minuteMs, t: Number.isNaN(t) ? minuteMs : t, id, ...(full !== undefined && { full }) }
  })))
  return entries.filter((e): e is Entry => e !== undefined).sort(compare)
}

/**
 * One page of the alerts with `start ≤ created_at < end`, in ascending created_at order.
 * Lists only the keys of the range's minutes (resuming at the cursor's minute), reads them
 * minute by minute until the page is full, then whatever full alerts are not read yet. The
 * number of S3 requests follows the alerts in the range and the page size, not the bucket.
 * @throws S3ClientError, never a partial page that looks complete
 */
export async function searchAlerts (deps: SearchDeps, range: TimeRange, page: { limit: number, after?: Position }): Promise<SearchPage> {
  const { store } = deps
  const firstMinute = minuteStart(range.startMs)
  const lastMinute = minuteStart(range.endMs - 1)
  const selected: Entry[] = []
  let group: Array<{ key: string, minuteMs: number, id: string }> = []

  const flush = async (): Promise<void> => {
    const minute = group[0]?.minuteMs
    if (minute === undefined) return
    const boundary = minute === firstMinute || minute === lastMinute
    for (const e of await entriesOf(deps, group, boundary)) {
      // Inside the range the key's minute alone decides: the full alert only orders the minute,
      // and its own created_at (which Threat Stack may state otherwise) never drops an alert.
      const inRange = !boundary || (e.t >= range.startMs && e.t < range.endMs)
      if (inRange && (page.after === undefined || compare(e, page.after) > 0)) selected.push(e)
    }
    group = []
  }

  // One more than the page, to know whether another page follows.
  for await (const key of listKeys(store, webhookListing(store.prefix, page.after?.m ?? firstMinute, lastMinute))) {
    const parsed = parseWebhookKey(store.prefix, key)
    if (parsed === undefined) continue
    if (parsed.minuteMs > lastMinute) break
    if (group.length > 0 && parsed.minuteMs !== group[0]?.minuteMs) {
      await flush()
      if (selected.length > page.limit) break
    }
    group.push({ key, ...parsed })
  }
  await flush()

  const pageEntries = selected.slice(0, page.limit)
  const limit = pLimit(deps.concurrency)
  const full = await Promise.all(pageEntries.map(async (e) => e.full !== undefined
    ? e.full
    : limit(async () => {
      const alert = await getJson(store, alertKey(store.prefix, e.id))
      return alert === undefined ? null : asObject(alert)
    })))
  const alerts: Array<Record<string, unknown>> = []
  const missing: string[] = []
  full.forEach((alert, i) => {
    if (alert === null) missing.push((pageEntries[i] as Entry).id)
    else alerts.push(alert)
  })
  const last = pageEntries.at(-1)
  return {
    alerts,
    nextCursor: selected.length > page.limit && last !== undefined ? encodeCursor(range, { m: last.m, t: last.t, id: last.id }) : null,
    missing
  }
}
