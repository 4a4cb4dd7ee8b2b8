// Reading the archive back: one alert by id, or the alerts of a time range, page by page.
import { createHash } from 'node:crypto'
import pLimit from 'p-limit'
import { AlertNotFoundError, DateParseError, RequestValidationError, S3ClientError } from '../errors/index.js'
import { createdAtMs, type Alert } from '../schemas/alert.js'
import {
  alertKey, indexListing, indexRoot, minuteListing, minuteStart, parseIndexKey, parseWebhookKey, webhookKey, webhookListing, webhooksRoot
} from './keys.js'
import { getJson, listKeys, type Store } from './storage.js'

export interface SearchDeps {
  store: Store
  /** How many S3 GETs one search makes at once. */
  concurrency: number
}

/** What one page asks for: its size, where the previous page ended, and a signal that stops its S3 work. */
export interface PageRequest {
  limit: number
  after?: Position
  /** Aborted when nobody waits for the page any more: no S3 call starts after it, those under way are cancelled. */
  signal?: AbortSignal
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

const timeOf = (value: unknown): number =>
  typeof value === 'object' && value !== null ? createdAtMs(value as Alert) : Number.NaN

/** Beyond this many keys a minute's keys are not kept while listed: a fallback lists them again. */
const KEPT_KEYS = 1000

/**
 * An order-free summary of the ids listed in one minute: their count and the sum, lane by lane,
 * of their SHA-256. Two listings with equal tallies name the same ids (a chance collision is
 * 2^-128), so equality proves every record of the minute has exactly one index entry, and
 * every entry its record, without keeping either list.
 */
class Tally {
  count = 0
  readonly sum = new Uint32Array(4)
  add (id: string): void {
    const digest = createHash('sha256').update(id).digest()
    for (let i = 0; i < 4; i++) this.sum[i] = ((this.sum[i] as number) + digest.readUInt32BE(i * 4)) >>> 0
    this.count++
  }

  equals (other: Tally): boolean {
    return this.count === other.count && this.sum.every((v, i) => v === other.sum[i])
  }
}

/** An async iterator that can be looked into before it is advanced. */
class Peekable<T> {
  private head: IteratorResult<T> | undefined
  constructor (private readonly source: AsyncIterator<T>) {}
  async peek (): Promise<T | undefined> {
    this.head ??= await this.source.next()
    return this.head.done === true ? undefined : this.head.value
  }

  take (): void { this.head = undefined }
}

async function * parsed<T> (keys: AsyncIterable<string>, parse: (key: string) => T | undefined): AsyncGenerator<T> {
  for await (const key of keys) {
    const value = parse(key)
    if (value !== undefined) yield value
  }
}

/** Runs an S3 call of a search unless the search has been called off; its failure then is the abort's. */
async function guarded<T> (signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
  signal?.throwIfAborted()
  try {
    return await fn()
  } catch (err) {
    signal?.throwIfAborted()
    throw err
  }
}

interface Page {
  range: TimeRange
  after: Position | undefined
  signal: AbortSignal | undefined
}

/** Whether a position of minute `m` belongs to the page: in the range (by created_at at its edges) and after the cursor. */
function wanted (page: Page, e: Position, boundary: boolean): boolean {
  const inRange = !boundary || (e.t >= page.range.startMs && e.t < page.range.endMs)
  return inRange && (page.after === undefined || compare(e, page.after) > 0)
}

/**
 * A minute whose records and index entries differ (written by the Python service, or before the
 * index existed, or an entry that failed): each record without exactly one entry is read for its
 * created_at, as all records were before the index; an entry without a record is ignored. Holds
 * the minute's keys (not its objects) while it works.
 */
async function fallbackMinute (deps: SearchDeps, page: Page, minuteMs: number, boundary: boolean,
  kept: { ids: string[] | undefined, entries: Position[] | undefined }): Promise<Position[]> {
  const { store } = deps
  const { signal } = page
  const ids = kept.ids ?? await guarded(signal, async () => {
    const all: string[] = []
    for await (const w of parsed(listKeys(store, minuteListing(webhooksRoot(store.prefix), minuteMs), 1000, signal), (k) => parseWebhookKey(store.prefix, k))) all.push(w.id)
    return all
  })
  const entries = kept.entries ?? await guarded(signal, async () => {
    const all: Position[] = []
    for await (const x of parsed(listKeys(store, minuteListing(indexRoot(store.prefix), minuteMs), 1000, signal), (k) => parseIndexKey(store.prefix, k))) all.push({ m: x.minuteMs, t: x.t, id: x.id })
    return all
  })
  // An id with two entries (a record delivered again with another created_at) is read, not guessed.
  const indexed = new Map<string, number | undefined>()
  for (const e of entries) indexed.set(e.id, indexed.has(e.id) ? undefined : e.t)
  const limit = pLimit(deps.concurrency)
  const positions = await Promise.all(ids.map(async (id): Promise<Position | undefined> => {
    const t = indexed.get(id)
    if (t !== undefined) return { m: minuteMs, t, id }
    return await limit(async () => guarded(signal, async () => {
      const record = await getJson(store, webhookKey(store.prefix, id, minuteMs), signal)
      if (record === undefined) return undefined // deleted since it was listed
      const at = timeOf(record)
      // A record without a usable created_at sorts at its minute's start.
      return { m: minuteMs, t: Number.isNaN(at) ? minuteMs : at, id }
    }))
  }))
  return positions.filter((p): p is Position => p !== undefined && wanted(page, p, boundary)).sort(compare)
}

/**
 * One page of the alerts with `start ≤ created_at < end`, in ascending created_at order.
 * Two listings run side by side over the range's minutes (resuming at the cursor's minute): the
 * webhook records, which say which alerts exist, and the index entries, whose keys carry
 * created_at. Where a minute's two listings name the same ids, the page is read off the index
 * keys alone and only its full alerts are fetched: at most `limit` reads, however many alerts
 * share the minute, and nothing kept beyond the page. Other minutes fall back to reading their
 * records without an entry. Listing calls follow the alerts of the minutes the page touches.
 * @throws S3ClientError, never a partial page that looks complete; the signal's reason once aborted
 */
export async function searchAlerts (deps: SearchDeps, range: TimeRange, request: PageRequest): Promise<SearchPage> {
  const { store } = deps
  const { limit: size, after, signal } = request
  const page: Page = { range, after, signal }
  const firstMinute = minuteStart(range.startMs)
  const lastMinute = minuteStart(range.endMs - 1)
  const from = after?.m ?? firstMinute
  const records = new Peekable(parsed(listKeys(store, webhookListing(store.prefix, from, lastMinute), 1000, signal), (k) => parseWebhookKey(store.prefix, k)))
  const index = new Peekable(parsed(listKeys(store, indexListing(store.prefix, from, lastMinute), 1000, signal), (k) => parseIndexKey(store.prefix, k)))
  // One more than the page, to know whether another page follows.
  const selected: Position[] = []
  const room = (): number => size + 1 - selected.length

  await guarded(signal, async () => {
    while (room() > 0) {
      const head = await records.peek()
      if (head === undefined || head.minuteMs > lastMinute) break
      const minute = head.minuteMs
      const boundary = minute === firstMinute || minute === lastMinute

      const recordTally = new Tally()
      let ids: string[] | undefined = []
      for (let r: typeof head | undefined = head; r?.minuteMs === minute; r = await records.peek()) {
        recordTally.add(r.id)
        if (ids !== undefined && ids.length < KEPT_KEYS) ids.push(r.id)
        else ids = undefined
        records.take()
      }

      for (let x = await index.peek(); x !== undefined && x.minuteMs < minute; x = await index.peek()) index.take()
      const indexTally = new Tally()
      const fromIndex: Position[] = []
      let entries: Position[] | undefined = []
      for (let x = await index.peek(); x?.minuteMs === minute; x = await index.peek()) {
        const e = { m: x.minuteMs, t: x.t, id: x.id }
        indexTally.add(e.id)
        if (fromIndex.length < room() && wanted(page, e, boundary)) fromIndex.push(e)
        if (entries !== undefined && entries.length < KEPT_KEYS) entries.push(e)
        else entries = undefined
        index.take()
      }

      const found = recordTally.equals(indexTally) ? fromIndex : await fallbackMinute(deps, page, minute, boundary, { ids, entries })
      selected.push(...found.slice(0, room()))
    }
  })

  const pageEntries = selected.slice(0, size)
  const limit = pLimit(deps.concurrency)
  const full = await Promise.all(pageEntries.map(async (e) => limit(async () => guarded(signal, async () => {
    const alert = await getJson(store, alertKey(store.prefix, e.id), signal)
    return alert === undefined ? null : asObject(alert)
  }))))
  const alerts: Array<Record<string, unknown>> = []
  const missing: string[] = []
  full.forEach((alert, i) => {
    if (alert === null) missing.push((pageEntries[i] as Position).id)
    else alerts.push(alert)
  })
  const last = pageEntries.at(-1)
  return {
    alerts,
    nextCursor: selected.length > size && last !== undefined ? encodeCursor(range, { m: last.m, t: last.t, id: last.id }) : null,
    missing
  }
}
