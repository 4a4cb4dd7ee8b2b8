// Archiving: for each alert, its webhook record and its full alert from Threat Stack.
import pLimit from 'p-limit'
import { createdAtMs, type Alert } from '../schemas/alert.js'
import { WebhookDataError } from '../errors/index.js'
import { alertKey, webhookKey } from './keys.js'
import { putJson, type Store } from './storage.js'
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

/** For callers that did not go through the schema: created_at must name a time in 1970-9999. */
export function assertArchivable (alerts: Alert[]): void {
  const details = alerts.flatMap((alert) => Number.isNaN(createdAtMs(alert))
    ? [`created_at of alert ${alert.id} must be milliseconds within the years 1970 to 9999`]
    : [])
  if (details.length > 0) throw new WebhookDataError('Webhook body is invalid', { details })
}

/**
 * Stores the webhook record and the full alert. The record is written whatever the fetch does
 * (an alert whose enrichment failed can be completed later), and the fetch does not wait for
 * it: the critical path is one Threat Stack GET plus one S3 PUT. Same alert, same keys.
 * @throws ServiceError of the first failure, once both writes have settled.
 */
export async function archiveAlert (deps: ArchiveDeps, alert: Alert): Promise<void> {
  assertArchivable([alert])
  const { store } = deps
  const results = await Promise.allSettled([
    putJson(store, webhookKey(store.prefix, alert.id, createdAtMs(alert)), alert),
    fetchAlert(deps.threatstack, alert.id).then(async (full) => putJson(store, alertKey(store.prefix, alert.id), full)),
    // Beside the record, on its own: it never fails the webhook (searches fall back without it).
    putIndexEntry(store, alert)
  ])
  throwFirstFailure(results)
  deps.onArchived?.()
}

/**
 * Archives every alert, a bounded number at a time. Whatever was stored stays stored.
 * @returns the ids archived, in the order received.
 * @throws WebhookDataError before any write; otherwise the first failure once all alerts settled.
 */
export async function archiveAlerts (deps: ArchiveDeps, alerts: Alert[]): Promise<string[]> {
  assertArchivable(alerts)
  const limit = pLimit(deps.concurrency)
  const results = await Promise.allSettled(alerts.map(async (alert) => limit(async () => archiveAlert(deps, alert))))
  throwFirstFailure(results)
  return alerts.map((alert) => alert.id)
}
