// Archiving: for each alert, its webhook record and its full alert from Threat Stack.
import pLimit from 'p-limit'
import { createdAtMs, type Alert } from '../schemas/alert.js'
import { WebhookDataError } from '../errors/index.js'
import { ALERT_ID, alertKey, webhookKey } from './keys.js'
import { putJson, putOnce, type Store } from './storage.js'
import { putIndexEntry } from './search-index.js'
import { fetchAlert, type ThreatStackClient } from './threatstack.js'

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
  if (details.length > 0) throw new WebhookDataError('Webhook body is invalid', { details })
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
