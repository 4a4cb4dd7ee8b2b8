// Completing half-archived alerts: webhook records whose full alert was never stored
// (Threat Stack was down when the webhook came) get it fetched and stored now.
import pLimit from 'p-limit'
import { createdAtMs, type Alert } from '../schemas/alert.js'
import { ServiceError } from '../errors/index.js'
import { alertKey, minuteStart, parseWebhookKey, webhookListing } from './keys.js'
import { exists, getJson, listKeys, putJson, type Store } from './storage.js'
import { fetchAlert, type ThreatStackClient } from './threatstack.js'
import type { TimeRange } from './search.js'

export interface ReconcileDeps {
  store: Store
  threatstack: ThreatStackClient
  concurrency: number
  /** Told of each record whose full alert was stored now (the command marks its hour for the digest job). */
  onRepaired?: (recordKey: string, minuteMs: number) => Promise<void>
}

export interface ReconcileProgress {
  checked: number
  repaired: number
  /** Alerts that could not be completed (yet), with why. */
  failed: number
}

export interface ReconcileResult extends ReconcileProgress {
  stillMissing: Array<{ id: string, reason: string }>
}

/**
 * Walks the webhook records of a range (start ≤ created_at < end) and stores the full alert of
 * each one that has none. Idempotent: a complete archive is only read. A failure to complete one
 * alert is reported, not thrown; a failure to list the range is thrown (S3ClientError).
 */
export async function reconcile (deps: ReconcileDeps, range: TimeRange, onProgress: (p: ReconcileProgress) => void = () => {}): Promise<ReconcileResult> {
  const { store } = deps
  const first = minuteStart(range.startMs)
  const last = minuteStart(range.endMs - 1)
  const limit = pLimit(deps.concurrency)
  const progress: ReconcileProgress = { checked: 0, repaired: 0, failed: 0 }
  const stillMissing: ReconcileResult['stillMissing'] = []

  async function check (key: string, id: string, minuteMs: number): Promise<void> {
    try {
      // Only the first and last minutes can hold records outside the range.
      if (minuteMs === first || minuteMs === last) {
        const record = await getJson(store, key)
        const t = typeof record === 'object' && record !== null ? createdAtMs(record as Alert) : Number.NaN
        if (!Number.isNaN(t) && (t < range.startMs || t >= range.endMs)) return
      }
      progress.checked++
      if (!await exists(store, alertKey(store.prefix, id))) {
        await putJson(store, alertKey(store.prefix, id), await fetchAlert(deps.threatstack, id))
        progress.repaired++
        await deps.onRepaired?.(key, minuteMs)
      }
    } catch (err) {
      if (!(err instanceof ServiceError)) throw err
      progress.failed++
      stillMissing.push({ id, reason: `${err.name}: ${err.message}` })
    }
    onProgress({ ...progress })
  }

  const pending = new Set<Promise<void>>()
  for await (const key of listKeys(store, webhookListing(store.prefix, first, last))) {
    const parsed = parseWebhookKey(store.prefix, key)
    if (parsed === undefined) continue
    if (parsed.minuteMs > last) break
    const task = limit(async () => check(key, parsed.id, parsed.minuteMs))
    pending.add(task)
    const forget = (): void => { pending.delete(task) }
    task.then(forget, forget)
    // Keep the listing only a little ahead of the work, so memory stays flat on huge ranges.
    if (pending.size >= deps.concurrency * 4) await Promise.race(pending)
  }
  await Promise.all(pending)
  return { ...progress, stillMissing }
}
