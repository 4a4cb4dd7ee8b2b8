// Coverage: the ledger of each hour of a range, as the coverage route serves it.
import pLimit from 'p-limit'
import { RequestValidationError } from '../errors/index.js'
import type { HourCoverage } from '../schemas/coverage.js'
import { HOUR_MS, hourStart, readLedger } from './ledger.js'
import type { TimeRange } from './search.js'
import type { Store } from './storage.js'

export interface CoveragePage {
  hours: HourCoverage[]
  nextCursor: string | null
}

export function encodeCoverageCursor (range: TimeRange, nextHourMs: number): string {
  return Buffer.from(JSON.stringify({ v: 1, s: range.startMs, e: range.endMs, h: nextHourMs })).toString('base64url')
}

/** The next hour to serve. @throws RequestValidationError unless the cursor came from this very range */
export function decodeCoverageCursor (range: TimeRange, cursor: string): number {
  const invalid = (cause?: unknown): RequestValidationError => new RequestValidationError('cursor is invalid', {
    cause,
    details: ['/cursor must be a nextCursor returned by the same coverage query (same start and end)']
  })
  let value: unknown
  try {
    value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'))
  } catch (err) {
    throw invalid(err)
  }
  const { v, s, e, h } = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>
  if (v !== 1 || s !== range.startMs || e !== range.endMs || !Number.isSafeInteger(h) || (h as number) % HOUR_MS !== 0 ||
    (h as number) <= hourStart(range.startMs) || (h as number) > hourStart(range.endMs - 1)) {
    throw invalid()
  }
  return h as number
}

function coverageOf (hourMs: number, ledger: Awaited<ReturnType<typeof readLedger>>): HourCoverage {
  const hour = new Date(hourMs).toISOString()
  if (ledger === undefined) {
    return { hour, checked: false, checkedAt: null, complete: null, threatstack: null, archived: null, viaWebhook: null, viaBackfill: null, missing: [], pending: [], unknown: [] }
  }
  return {
    hour,
    checked: true,
    checkedAt: ledger.checkedAt,
    complete: ledger.complete,
    threatstack: ledger.threatstack.total,
    archived: ledger.archived.total,
    viaWebhook: ledger.archived.viaWebhook,
    viaBackfill: ledger.archived.viaBackfill,
    missing: ledger.missing,
    pending: ledger.pending,
    unknown: ledger.unknown
  }
}

/**
 * The hours that overlap [start, end), oldest first, `limit` at a time: one S3 read per hour.
 * @throws S3ClientError (a ledger that cannot be read, or is not a ledger)
 */
export async function readCoverage (deps: { store: Store, concurrency: number }, range: TimeRange, page: { limit: number, fromHourMs?: number }): Promise<CoveragePage> {
  const first = page.fromHourMs ?? hourStart(range.startMs)
  const last = hourStart(range.endMs - 1)
  const hours: number[] = []
  for (let h = first; h <= last && hours.length < page.limit; h += HOUR_MS) hours.push(h)
  const limit = pLimit(deps.concurrency)
  const entries = await Promise.all(hours.map(async (h) => limit(async () => coverageOf(h, await readLedger(deps.store, h)))))
  const next = (hours.at(-1) ?? last) + HOUR_MS
  return { hours: entries, nextCursor: next <= last ? encodeCoverageCursor(range, next) : null }
}
