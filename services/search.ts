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
  /** Only the alerts that match all of these; undefined (or empty) for every alert of the range. */
  filters?: SearchFilters
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
  /**
   * Filtered searches only: true when the page stopped at its read budget before it held `limit`
   * alerts (there may be more after `nextCursor`), false otherwise.
   */
  partial?: boolean
  /** Filtered searches only: the created_at (ISO) of the last alert the page examined; null once the range is exhausted. */
  scannedUntil?: string | null
}

/**
 * What a search may ask of the alerts it returns, all of them at once. Matched on the full
 * alert, or on the webhook record of an alert whose full alert is not archived (yet).
 */
export interface SearchFilters {
  /** `severity` is one of these (1-3). */
  severity?: number[]
  /** `source` (API v2: `dataSource`) equals this, ignoring case. */
  source?: string
  /** `server_or_region` (API v2: `hostname`) equals this, ignoring case. */
  server?: string
  /** The rule id, `rule.id` (API v1), `ruleId` (API v2) or `rule_id`, equals this exactly. */
  rule?: string
  /** `title` contains this, ignoring case. */
  q?: string
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
  if (startMs >= endMs) throw new DateParseError(undefined)
  return { startMs, endMs }
}

/** The filters in one canonical form, undefined when none is set: the form a cursor is bound to. */
export function normalizeFilters (filters: SearchFilters | undefined): SearchFilters | undefined {
  if (filters === undefined) return undefined
  const out: SearchFilters = {}
  if (filters.severity !== undefined && filters.severity.length > 0) out.severity = [...new Set(filters.severity)].sort()
  if (filters.source !== undefined) out.source = filters.source.toLowerCase()
  if (filters.server !== undefined) out.server = filters.server.toLowerCase()
  if (filters.rule !== undefined) out.rule = filters.rule
  if (filters.q !== undefined) out.q = filters.q.toLowerCase()
  return Object.keys(out).length === 0 ? undefined : out
}

/** A short digest of a filter set: a cursor carries it, so that it resumes only the same filters. */
function filtersTag (filters: SearchFilters): string {
  const { severity, source, server, rule, q } = filters
  return createHash('sha256').update(JSON.stringify([severity ?? null, source ?? null, server ?? null, rule ?? null, q ?? null]))
    .digest('base64url').slice(0, 22)
}

/** A cursor of an unfiltered search keeps the format it always had; a filtered one adds the digest of its filters. */
export function encodeCursor (range: TimeRange, position: Position, filters?: SearchFilters): string {
  const normal = normalizeFilters(filters)
  return Buffer.from(JSON.stringify({ v: 1, s: range.startMs, e: range.endMs, ...position, ...(normal !== undefined && { f: filtersTag(normal) }) })).toString('base64url')
}

/** @throws RequestValidationError when the cursor was not made by a search of this very range and these filters */
export function decodeCursor (range: TimeRange, cursor: string, filters?: SearchFilters): Position {
  const invalid = (): RequestValidationError =>
    new RequestValidationError('cursor is invalid', { details: ['/cursor must be a nextCursor returned by the same search (same start, end and filters)'] })
  let value: unknown
  try {
    value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'))
  } catch (err) {
    throw new RequestValidationError('cursor is invalid', { cause: err, details: invalid().details })
  }
  if (typeof value !== 'object' || value === null) throw invalid()
  const { v, s, e, m, t, id, f } = value as Record<string, unknown>
  const isInt = (x: unknown): x is number => Number.isSafeInteger(x)
  const normal = normalizeFilters(filters)
  if (v !== 1 || s !== range.startMs || e !== range.endMs || !isInt(m) || !isInt(t) ||
    typeof id !== 'string' || !/^[A-Za-z0-9_-]{4,128}$/.test(id) || m % 60_000 !== 0 ||
    m < minuteStart(range.startMs) || m > minuteStart(range.endMs - 1) ||
    f !== (normal === undefined ? undefined : filtersTag(normal))) {
    throw invalid()
  }
  return { m, t, id }
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value)

/** The first of `paths` (dotted) that names a string or a finite number, as text. */
function field (alert: Record<string, unknown>, paths: readonly string[]): string | undefined {
  for (const path of paths) {
    let value: unknown = alert
    for (const part of path.split('.')) value = isObject(value) ? value[part] : undefined
    if (typeof value === 'string') return value
    if (typeof value === 'number' && Number.isFinite(value)) return String(value)
  }
  return undefined
}

// The field names of both API versions, as the table tier reads them: API v1 (and webhooks)
// write snake_case and a nested `rule`, API v2 camelCase.
const SOURCE_FIELDS = ['source', 'dataSource']
const SERVER_FIELDS = ['server_or_region', 'serverOrRegion', 'hostname']
const RULE_FIELDS = ['rule_id', 'ruleId', 'rule.id']

/** Whether an alert (full alert or webhook record) matches every filter; filters in normalized form. */
export function matchesFilters (filters: SearchFilters, alert: Record<string, unknown>): boolean {
  if (filters.severity !== undefined) {
    const severity = field(alert, ['severity'])
    if (severity === undefined || !/^[1-3]$/.test(severity) || !filters.severity.includes(Number(severity))) return false
  }
  if (filters.source !== undefined && field(alert, SOURCE_FIELDS)?.toLowerCase() !== filters.source) return false
  if (filters.server !== undefined && field(alert, SERVER_FIELDS)?.toLowerCase() !== filters.server) return false
  if (filters.rule !== undefined && field(alert, RULE_FIELDS) !== filters.rule) return false
  if (filters.q !== undefined) {
    const title = alert.title
    if (typeof title !== 'string' || !title.toLowerCase().includes(filters.q)) return false
  }
  return true
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
 * The first `count` positions of the range after `page.after`, in order. Two listings run side
 * by side over the range's minutes (resuming at the cursor's minute): the webhook records,
 * which say which alerts exist, and the index entries, whose keys carry created_at. Where a
 * minute's two listings name the same ids, positions are read off the index keys alone, however
 * many alerts share the minute, and nothing is kept beyond `count`. Other minutes fall back to
 * reading their records without an entry. Listing calls follow the alerts of the minutes touched.
 */
async function selectPositions (deps: SearchDeps, page: Page, count: number): Promise<Position[]> {
  const { store } = deps
  const { range, after, signal } = page
  const firstMinute = minuteStart(range.startMs)
  const lastMinute = minuteStart(range.endMs - 1)
  const from = after?.m ?? firstMinute
  const records = new Peekable(parsed(listKeys(store, webhookListing(store.prefix, from, lastMinute), 1000, signal), (k) => parseWebhookKey(store.prefix, k)))
  const index = new Peekable(parsed(listKeys(store, indexListing(store.prefix, from, lastMinute), 1000, signal), (k) => parseIndexKey(store.prefix, k)))
  const selected: Position[] = []
  const room = (): number => count - selected.length

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
  return selected
}

/**
 * S3 object reads a filtered page may make, per alert of `limit`: the bound any page
 * of a search keeps (2 × limit reads plus listing calls), so a filter that matches little
 * stops at it and hands back a cursor instead of scanning the range.
 */
export const FILTERED_READS_PER_ALERT = 2

const isoOf = (ms: number): string => new Date(ms).toISOString()

/**
 * One page of the alerts with `start ≤ created_at < end`, in ascending created_at order:
 * positions come from selectPositions, then only the page's full alerts are fetched (at most
 * `limit` reads). With filters, see filteredPage.
 * @throws S3ClientError, never a partial page that looks complete; the signal's reason once aborted
 */
export async function searchAlerts (deps: SearchDeps, range: TimeRange, request: PageRequest): Promise<SearchPage> {
  const { store } = deps
  const { limit: size, after, signal } = request
  const page: Page = { range, after, signal }
  const filters = normalizeFilters(request.filters)
  if (filters !== undefined) return await filteredPage(deps, page, size, filters)
  // One more than the page, to know whether another page follows.
  const selected = await selectPositions(deps, page, size + 1)

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

/**
 * A filtered page: the range's alerts are judged in order on their full alerts (an alert
 * without one, on its webhook record: one more read) until `limit` of them match and one more
 * is seen to match (so that a cursor is never followed by nothing when the range is exhausted),
 * or the page's read budget is spent. Reads go `concurrency` at a time; the cursor resumes after
 * the last alert judged, matching or not, so nothing judged here is read again by the next page
 * (except the one extra match). The budget always lets the page judge at least one alert.
 */
async function filteredPage (deps: SearchDeps, page: Page, size: number, filters: SearchFilters): Promise<SearchPage> {
  const { store } = deps
  const { range, signal } = page
  const budget = FILTERED_READS_PER_ALERT * size
  // At least one read per alert judged: more positions than the budget are never needed; one
  // more tells whether the range goes on.
  const positions = await selectPositions(deps, page, budget + 1)
  const limit = pLimit(deps.concurrency)
  const matched: Array<{ id: string, alert: Record<string, unknown> | null }> = []
  let reads = 0
  let judged = 0
  let last: Position | undefined
  let full = false

  await guarded(signal, async () => {
    while (judged < positions.length && !full) {
      const remaining = budget - reads
      // Keep a read back for the record of an alert without its full alert, so that the first
      // alert of a page is always judged.
      const width = Math.min(deps.concurrency, positions.length - judged, remaining >= 2 ? remaining - 1 : remaining)
      if (width <= 0) break
      const window = positions.slice(judged, judged + width)
      const alerts = await Promise.all(window.map(async (e) => limit(async () => guarded(signal, async () => {
        const alert = await getJson(store, alertKey(store.prefix, e.id), signal)
        return alert === undefined ? null : asObject(alert)
      }))))
      reads += window.length
      for (const [i, e] of window.entries()) {
        const alert = alerts[i] ?? null
        let match: boolean
        if (alert !== null) {
          match = matchesFilters(filters, alert)
        } else {
          if (reads >= budget) return
          const record = await getJson(store, webhookKey(store.prefix, e.id, e.m), signal)
          reads++
          match = isObject(record) && matchesFilters(filters, record)
        }
        if (match && matched.length === size) {
          full = true
          return
        }
        if (match) matched.push({ id: e.id, alert })
        last = e
        judged++
      }
    }
  })

  const exhausted = judged === positions.length && positions.length <= budget
  const alerts = matched.flatMap((m) => m.alert === null ? [] : [m.alert])
  const missing = matched.flatMap((m) => m.alert === null ? [m.id] : [])
  if (exhausted || last === undefined) return { alerts, nextCursor: null, missing, partial: false, scannedUntil: null }
  return {
    alerts,
    nextCursor: encodeCursor(range, last, filters),
    missing,
    partial: !full && matched.length < size,
    scannedUntil: isoOf(last.t)
  }
}
