// Archiving: for each alert, its webhook record and its full alert from Threat Stack.
import pLimit from 'p-limit'
import { createdAtMs, type Alert } from '../schemas/alert.js'
import { WebhookDataError } from '../errors/index.js'
import { ALERT_ID, alertKey, webhookKey } from './keys.js'
import { putJson, putOnce, type Store } from './storage.js'
import { putIndexEntry } from './search-index.js'
import { fetchAlert, type ThreatStackClient } from './threatstack.js'
import { pendingError, type EnrichmentQueue, type PendingError } from './enrichment.js'

export interface ArchiveDeps {
  store: Store
  threatstack: ThreatStackClient
  /** How many alerts of one request are worked on at once. */
  concurrency: number
  /** Told of each alert once both of its objects are stored. */
  onArchived?: () => void
}

/** Rethrows the first rejection, once everything has settled (every write has ended). */
function throwFirstFailure (results: Array<PromiseSettledResult<unknown>>): void {
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
  if (failed === undefined) return
  throw failed.reason instanceof Error ? failed.reason : new Error(String(failed.reason))
}

/** For callers that did not go through the schema: ids must keep the id rule, created_at name a time in 1970-9999. */
export function assertArchivable (alerts: Alert[]): void {
  const details = alerts.flatMap((alert, i) => {
    if (typeof alert.id !== 'string' || !ALERT_ID.test(alert.id)) return [`id of alert ${i} must be 4 to 128 characters of A-Z, a-z, 0-9, _ and -`]
    return Number.isNaN(createdAtMs(alert)) ? [`created_at of alert ${alert.id} must be milliseconds within the years 1970 to 9999`] : []
  })
  if (details.length > 0) throw new WebhookDataError(undefined, { details })
}

/**
 * Stores the webhook record and the full alert. The record is written whatever the fetch does
 * (an alert whose enrichment failed can be completed later), and the fetch does not wait for
 * it: the critical path is one Threat Stack GET plus one S3 PUT. The full alert's PUT alone
 * waits for the record to be stored, and is not made if it was not: the record is the alert's
 * anchor (search and reconcile start from it), so no full alert may exist without one, even if
 * the process dies half-way. Same alert, same keys.
 * @param record the alert's JSON text as received; by default the alert serialized.
 * @throws ServiceError of the first failure, once both writes have settled.
 */
export async function archiveAlert (deps: ArchiveDeps, alert: Alert, record: string = JSON.stringify(alert)): Promise<void> {
  assertArchivable([alert])
  const { store } = deps
  const stored = putOnce(store, webhookKey(store.prefix, alert.id, createdAtMs(alert)), record)
  const results = await Promise.allSettled([
    stored,
    fetchAlert(deps.threatstack, alert.id).then(async (full) => {
      await stored
      await putJson(store, alertKey(store.prefix, alert.id), full)
    }),
    // Beside the record, on its own: it never fails the webhook (searches fall back without it).
    putIndexEntry(store, alert)
  ])
  throwFirstFailure(results)
  deps.onArchived?.()
}

/**
 * Archives every alert, a bounded number at a time. Whatever was stored stays stored.
 * @param records each alert's JSON text as received, in the same order; by default serialized.
 * @returns the ids archived, in the order received.
 * @throws WebhookDataError before any write; otherwise the first failure once all alerts settled.
 */
export async function archiveAlerts (deps: ArchiveDeps, alerts: Alert[], records?: string[]): Promise<string[]> {
  assertArchivable(alerts)
  const limit = pLimit(deps.concurrency)
  const results = await Promise.allSettled(alerts.map(async (alert, i) => limit(async () => archiveAlert(deps, alert, records?.[i]))))
  throwFirstFailure(results)
  return alerts.map((alert) => alert.id)
}

export interface ReceiveDeps extends Omit<ArchiveDeps, 'onArchived'> {
  /** Owes every full alert until stored, and counts it archived then; one it cannot take is left to the sweeper. */
  queue: EnrichmentQueue
}

export interface ReceiveOptions {
  /** How long the request waits for the full alerts, from its start; 0: it never waits. */
  waitMs: number
  /** Under pressure: no fetch on the request's path, every full alert owed by the queue. */
  deferred?: boolean
  /** Told of each fetch that failed within the wait (the alert is answered pending, with the error's type). */
  onFetchFailed?: (id: string, err: unknown) => void
}

export interface PendingAlert {
  id: string
  /** How the fetch has failed so far; absent when it simply has not finished within the wait. */
  error?: PendingError
}

export interface Received {
  /** Both objects stored, in the order received. */
  archived: string[]
  /** Record stored, full alert owed (in the background, then by the sweeper). */
  pending: PendingAlert[]
}

type Outcome = { id: string, archived: true } | { id: string, archived: false, error?: PendingError }

/** Resolves after `ms` with undefined, or at once when ms is 0; the timer never holds the process. */
async function waited (ms: number): Promise<undefined> {
  if (ms <= 0) return undefined
  return await new Promise((resolve) => { setTimeout(() => { resolve(undefined) }, ms).unref() })
}

interface Started {
  id: string
  recordKey: string
  /** The record's PUT: the answer waits for it, and fails if it fails. */
  stored: Promise<unknown>
  /** The index entry, written once the record is; never rejects. Waited for as long as the full alert. */
  indexed: Promise<void>
  /** The fetch and the full alert's PUT after the record; undefined when deferred to the queue. */
  fetching: Promise<void> | undefined
}

/**
 * Starts one alert: its record's PUT, and at once (not after the record: the critical path
 * stays one GET and one PUT) its fetch, whose full alert is written only once the record is stored.
 */
function startAlert (deps: ReceiveDeps, alert: Alert, record: string, limit: ReturnType<typeof pLimit>, fetchLimit: ReturnType<typeof pLimit>, deferred: boolean): Started {
  const { store, queue } = deps
  const { id } = alert
  const recordKey = webhookKey(store.prefix, id, createdAtMs(alert))
  const put = limit(async () => await putOnce(store, recordKey, record))
  // The entry is derived (a search reads a record that lacks one): it follows the record, off
  // the answer's path, so the answer costs one PUT's work; it is waited for as the full alert is.
  const indexed = put.then(async () => { await putIndexEntry(store, alert) }, () => {})
  const stored = put
  if (deferred || !queue.canTake(id)) return { id, recordKey, stored, indexed, fetching: undefined }
  const fetching = fetchLimit(async () => {
    let full: Record<string, unknown>
    try {
      full = await fetchAlert(deps.threatstack, id, queue.signal)
    } catch (err) {
      // The queue retries a failed attempt only where the record is stored: it must not look
      // before the record's PUT has ended, or a slow PUT reads as a failed one and the alert is
      // dropped from the queue.
      await put.catch(() => {})
      throw err
    }
    await put
    await putJson(store, alertKey(store.prefix, id), full, queue.signal)
  })
  // Owed from the start: the queue waits for this attempt, retries it if it fails, and counts
  // it archived once stored; the request only reads how far it got by its deadline.
  queue.take(id, recordKey, { attempt: fetching })
  fetching.catch(() => {})
  return { id, recordKey, stored, indexed, fetching }
}

/**
 * What became of one alert whose record is stored, by the deadline: archived, or pending (owed
 * by the queue; one the queue could not take is left to the sweeper).
 */
async function settleAlert (deps: ReceiveDeps, started: Started, deadline: Promise<undefined>, onFetchFailed?: ReceiveOptions['onFetchFailed']): Promise<Outcome> {
  const { queue } = deps
  const { id, recordKey, fetching, indexed } = started
  if (fetching === undefined) {
    queue.take(id, recordKey)
    await Promise.race([indexed, deadline])
    return { id, archived: false }
  }
  const [settled] = await Promise.all([
    Promise.race([
      fetching.then(() => ({ ok: true as const }), (err: unknown) => ({ ok: false as const, err })),
      deadline
    ]),
    Promise.race([indexed, deadline])
  ])
  if (settled?.ok === true) return { id, archived: true }
  if (settled !== undefined) onFetchFailed?.(id, settled.err)
  return { id, archived: false, ...(settled !== undefined && { error: pendingError(settled.err) }) }
}

/**
 * Receives a webhook's alerts: answers once every record is stored, with the alerts whose full
 * alert is stored too (`archived`) and the others (`pending`). Whatever was stored stays stored.
 * @param records each alert's JSON text as received, in the same order; by default serialized.
 * @throws WebhookDataError before any write; otherwise the first failure to store a record, once all alerts settled.
 */
export async function receiveAlerts (deps: ReceiveDeps, alerts: Alert[], records: string[] | undefined, options: ReceiveOptions): Promise<Received> {
  assertArchivable(alerts)
  const deferred = options.deferred === true
  const deadline = waited(deferred ? 0 : options.waitMs)
  // Records and fetches each a bounded number at a time, apart: a slow Threat Stack never
  // holds back a record, and the records alone decide whether the answer is 200.
  const limit = pLimit(deps.concurrency)
  const fetchLimit = pLimit(deps.concurrency)
  const started = alerts.map((alert, i) => startAlert(deps, alert, records?.[i] ?? JSON.stringify(alert), limit, fetchLimit, deferred))
  // A record that could not be stored fails the request: its alert is nobody's yet (the
  // sender resends). The fetches of the others go on and are owed as usual.
  const stored = await Promise.allSettled(started.map(async (s) => await s.stored))
  const failed = stored.findIndex((r) => r.status === 'rejected')
  const outcomes = await Promise.all(started.map(async (s, i) => {
    if (stored[i]?.status === 'rejected') return undefined
    return await settleAlert(deps, s, failed === -1 ? deadline : waited(0), options.onFetchFailed)
  }))
  throwFirstFailure(stored)
  const known = outcomes.filter((o): o is Outcome => o !== undefined)
  return {
    archived: known.filter((o) => o.archived).map((o) => o.id),
    pending: known.flatMap((o) => o.archived ? [] : [{ id: o.id, ...(o.error !== undefined && { error: o.error }) }])
  }
}
