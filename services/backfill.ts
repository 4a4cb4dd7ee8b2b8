// Backfill: compares one hour of the archive with Threat Stack's list of that hour and archives
// what the archive lacks, then writes the hour's ledger. Threat Stack's sender drops a batch
// after three failed tries; its list API keeps every alert a year, so the archive can prove it
// is complete by asking.
import pLimit from 'p-limit'
import { ServiceError, ThreatStackAPIError } from '../errors/index.js'
import { alertKey, parseWebhookKey, webhookKey } from './keys.js'
import { exists, listKeys, putJson, type Store } from './storage.js'
import { fetchAlert, type ThreatStackClient } from './threatstack.js'
import { ALERT_STATUSES, listAlerts, type AlertStatus, type ListOptions } from './threatstack-list.js'
import { HOUR_MS, LEDGER_VERSION, hourWebhooksPrefix, readLedger, writeLedger, type Ledger } from './ledger.js'

export interface BackfillDeps {
  store: Store
  threatstack: ThreatStackClient
  /** Alerts archived at once. */
  concurrency: number
  /** Paging and pacing of the list API. */
  list?: Omit<ListOptions, 'signal'>
  /** Told of each alert whose webhook record the backfill stored (metrics). */
  onBackfilled?: () => void
}

export interface BackfillOptions {
  /** Compare and report only: nothing is written, not even the ledger. */
  dryRun?: boolean
  /** Fetches of an id that Threat Stack does not list before it is only reported `unknown` (default 3). */
  maxUnknownTries?: number
  /** Stops the work between alerts (and any wait of the list API); throws the signal's reason. */
  signal?: AbortSignal
  now?: () => number
  /** After each alert listed or archived. */
  onProgress?: (progress: { seen: number, archived: number }) => void
}

export interface HourReport {
  hourStartMs: number
  /** Alerts Threat Stack lists for the hour. */
  seen: number
  /** Alerts archived now from the list (dry run: that would be). */
  backfilled: string[]
  /** Full alerts stored now for webhook records that had none. */
  enriched: string[]
  /** What could not be done (yet), with why: fixed error sentences, nothing upstream. */
  failed: Array<{ id: string, reason: string }>
  /** The hour's ledger as written (dry run: the hour as it stands, not written). */
  ledger: Ledger
  written: boolean
}

const ALERT_ID = /^[A-Za-z0-9_-]{4,128}$/

/** When a list entry's alert was created, in ms: `createdAt` (ISO 8601 or ms) or `created_at`; NaN when neither. */
export function entryCreatedMs (entry: Record<string, unknown>): number {
  for (const value of [entry.created_at, entry.createdAt]) {
    if (typeof value === 'number' && Number.isSafeInteger(value)) return value
    if (typeof value === 'string' && /^\d{1,16}$/.test(value)) return Number(value)
    if (typeof value === 'string') {
      const ms = Date.parse(value)
      if (Number.isFinite(ms)) return ms
    }
  }
  return Number.NaN
}

/**
 * The webhook record of a backfilled alert: the list entry with its fields as the API gave
 * them; `created_at` (ms) is added only when the entry has none, so that search orders and
 * bounds it like a webhook's record.
 */
export function recordOf (entry: Record<string, unknown>, createdMs: number): Record<string, unknown> {
  return entry.created_at === undefined ? { ...entry, created_at: createdMs } : entry
}

const reasonOf = (err: ServiceError): string => `${err.name}: ${err.message}`

/**
 * Checks the hour starting at `hourStartMs`: lists both statuses from Threat Stack (every page),
 * lists the hour's webhook records, archives each alert Threat Stack has and the archive lacks
 * (its record first, then its full alert, only once the record is stored), completes records
 * without a full alert, and writes the hour's ledger. Idempotent: a second run over a complete
 * hour only reads. A failure for one alert is reported in the ledger, not thrown.
 * @throws ThreatStackRequestError | ThreatStackAPIError when the list cannot be read (the ledger is
 *   then left as it was); S3ClientError when the archive cannot be listed or the ledger written
 */
export async function backfillHour (deps: BackfillDeps, hourStartMs: number, opts: BackfillOptions = {}): Promise<HourReport> {
  const { store, threatstack } = deps
  const { signal, dryRun = false, maxUnknownTries = 3, now = Date.now } = opts
  const hourEndMs = hourStartMs + HOUR_MS
  let seen = 0
  let archivedNow = 0
  const progress = (): void => opts.onProgress?.({ seen, archived: archivedNow })

  // What Threat Stack has. An entry whose id could not be a key, or with no creation time, is
  // listed (so missing) but never archived: no key is built from an id that fails the id rule.
  const listed = new Map<string, { entry: Record<string, unknown>, status: AlertStatus, createdMs: number }>()
  const unarchivable = new Set<string>()
  const counts = { active: 0, dismissed: 0 }
  for (const status of ALERT_STATUSES) {
    for await (const entry of listAlerts(threatstack, { fromMs: hourStartMs, untilMs: hourEndMs, status }, { ...deps.list, ...(signal !== undefined && { signal }) })) {
      const id = entry.id as string
      const createdMs = entryCreatedMs(entry)
      // The list's `until` may be inclusive: the hour's own bounds decide.
      if (!Number.isNaN(createdMs) && (createdMs < hourStartMs || createdMs >= hourEndMs)) continue
      if (listed.has(id) || unarchivable.has(id)) continue
      counts[status]++
      seen++
      if (!ALERT_ID.test(id) || Number.isNaN(createdMs)) unarchivable.add(id)
      else listed.set(id, { entry, status, createdMs })
      progress()
    }
  }

  // What the archive holds.
  const archived = new Set<string>()
  for await (const key of listKeys(store, { Prefix: hourWebhooksPrefix(store.prefix, hourStartMs) })) {
    const parsed = parseWebhookKey(store.prefix, key)
    if (parsed !== undefined) archived.add(parsed.id)
  }
  const previous = await readLedger(store, hourStartMs, signal)
  const limit = pLimit(deps.concurrency)
  const withoutFull = new Set<string>()
  await Promise.all([...archived].map(async (id) => limit(async () => {
    if (!await exists(store, alertKey(store.prefix, id))) withoutFull.add(id)
  })))

  const lacking = [...listed.keys()].filter((id) => !archived.has(id)).sort()
  const failed: HourReport['failed'] = []
  const backfilled: string[] = []
  const enriched: string[] = []
  const unknown = new Set<string>()
  const unknownTries: Record<string, number> = { ...previous?.unknownTries }

  // Evidence like a webhook's, written once with its checksum and retention; a record a webhook
  // stored meanwhile differs from the one built from the list by design, so it is no conflict.
  const { onExisting: _conflictsAreExpected, ...evidence } = store
  const storeFull = async (id: string): Promise<void> => {
    const full = await fetchAlert(threatstack, id)
    await putJson(evidence, alertKey(store.prefix, id), full)
  }

  if (!dryRun) {
    await Promise.all(lacking.map(async (id) => limit(async () => {
      signal?.throwIfAborted()
      const { entry, createdMs } = listed.get(id) as { entry: Record<string, unknown>, createdMs: number }
      try {
        // Not created: a webhook stored it meanwhile; it came by webhook then.
        const stored = await putJson(evidence, webhookKey(store.prefix, id, createdMs), recordOf(entry, createdMs))
        archived.add(id)
        if (stored === 'created') {
          backfilled.push(id)
          archivedNow++
          deps.onBackfilled?.()
        }
      } catch (err) {
        if (!(err instanceof ServiceError)) throw err
        failed.push({ id, reason: reasonOf(err) })
        return
      }
      try {
        await storeFull(id)
      } catch (err) {
        if (!(err instanceof ServiceError)) throw err
        withoutFull.add(id)
        failed.push({ id, reason: reasonOf(err) })
      }
      progress()
    })))

    await Promise.all([...withoutFull].filter((id) => !backfilled.includes(id)).map(async (id) => limit(async () => {
      signal?.throwIfAborted()
      const isListed = listed.has(id)
      const tries = unknownTries[id] ?? 0
      if (!isListed && tries >= maxUnknownTries) {
        unknown.add(id)
        return
      }
      try {
        await storeFull(id)
        withoutFull.delete(id)
        enriched.push(id)
        delete unknownTries[id]
      } catch (err) {
        if (!(err instanceof ServiceError)) throw err
        if (!isListed && err instanceof ThreatStackAPIError && err.upstreamStatus === 404) {
          unknown.add(id)
          unknownTries[id] = tries + 1
        } else {
          failed.push({ id, reason: reasonOf(err) })
        }
      }
    })))
  } else {
    backfilled.push(...lacking)
    for (const id of withoutFull) if (!listed.has(id) && (unknownTries[id] ?? 0) >= maxUnknownTries) unknown.add(id)
  }

  const sorted = (ids: Iterable<string>): string[] => [...ids].sort()
  const allBackfilled = new Set([...(previous?.backfilled ?? []), ...(dryRun ? [] : backfilled)])
  const viaBackfill = [...archived].filter((id) => allBackfilled.has(id)).length
  const missing = sorted([...listed.keys(), ...unarchivable].filter((id) => !archived.has(id)))
  const pending = sorted([...withoutFull].filter((id) => !unknown.has(id)))
  const ledger: Ledger = {
    version: LEDGER_VERSION,
    hour: new Date(hourStartMs).toISOString(),
    checkedAt: new Date(now()).toISOString(),
    checks: (previous?.checks ?? 0) + 1,
    complete: missing.length === 0 && pending.length === 0,
    threatstack: { total: seen, ...counts },
    archived: { total: archived.size, viaWebhook: archived.size - viaBackfill, viaBackfill },
    missing,
    pending,
    unknown: sorted(unknown),
    backfilled: sorted([...allBackfilled].filter((id) => archived.has(id))),
    unknownTries
  }
  if (!dryRun) await writeLedger(store, hourStartMs, ledger)
  return { hourStartMs, seen, backfilled: sorted(backfilled), enriched: sorted(enriched), failed, ledger, written: !dryRun }
}
