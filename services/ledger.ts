// The hourly completeness ledger: what Threat Stack has for an hour, what the archive holds,
// and what is still missing. Derived, rewritable state (the archive's objects are the evidence).
import { S3ClientError } from '../errors/index.js'
import { getJson, putJsonState, type Store } from './storage.js'

import { HOUR_MS, hourPath, hourStart, withPrefix } from './keys.js'

export { HOUR_MS, hourPath, hourStart }

/** `[prefix/]ledger/YYYY/MM/DD/HH.json` */
export function ledgerKey (prefix: string, hourStartMs: number): string {
  return withPrefix(prefix, `ledger/${hourPath(hourStartMs)}.json`)
}

/** `[prefix/]webhooks/YYYY/MM/DD/HH/`: the webhook records of one hour. */
export function hourWebhooksPrefix (prefix: string, hourStartMs: number): string {
  return withPrefix(prefix, `webhooks/${hourPath(hourStartMs)}/`)
}

export const LEDGER_VERSION = 1

/**
 * One hour's ledger, `[prefix/]ledger/YYYY/MM/DD/HH.json`. Counts are of distinct alert ids
 * created in the hour (by the hour of the key); id lists are sorted.
 */
export interface Ledger {
  version: typeof LEDGER_VERSION
  /** The hour's start, ISO 8601 UTC. */
  hour: string
  /** When this check ended, ISO 8601 UTC. */
  checkedAt: string
  /** How many checks of the hour this ledger sums up (the first, then each re-check). */
  checks: number
  /** Nothing missing, nothing pending: every alert Threat Stack lists has both objects. */
  complete: boolean
  /** Alerts Threat Stack lists for the hour, by status. */
  threatstack: { total: number, active: number, dismissed: number }
  /** Alerts with a webhook record in the hour: how they came. */
  archived: { total: number, viaWebhook: number, viaBackfill: number }
  /** Listed by Threat Stack, no webhook record (yet): the backfill failed for these. */
  missing: string[]
  /** A webhook record without its full alert (yet). */
  pending: string[]
  /** Archived from a webhook, unknown to Threat Stack: absent from its list and 404 on fetch. */
  unknown: string[]
  /** Every id archived by the backfill for this hour (over all checks): what `viaBackfill` counts. */
  backfilled: string[]
  /** Fetches tried so far for ids not in Threat Stack's list, so the tries stop after a bound. */
  unknownTries: Record<string, number>
}

/** The ledger of an hour; undefined when the hour was never checked. @throws S3ClientError */
export async function readLedger (store: Store, hourStartMs: number, signal?: AbortSignal): Promise<Ledger | undefined> {
  const value = await getJson(store, ledgerKey(store.prefix, hourStartMs), signal)
  if (value === undefined) return undefined
  const ledger = value as Partial<Ledger>
  if (typeof ledger !== 'object' || ledger === null || ledger.version !== LEDGER_VERSION || typeof ledger.hour !== 'string' ||
    !Array.isArray(ledger.missing) || !Array.isArray(ledger.pending) || !Array.isArray(ledger.unknown) || !Array.isArray(ledger.backfilled)) {
    throw new S3ClientError({ cause: new Error('stored ledger is not a ledger') })
  }
  return value as Ledger
}

/** @throws S3ClientError */
export async function writeLedger (store: Store, hourStartMs: number, ledger: Ledger): Promise<void> {
  await putJsonState(store, ledgerKey(store.prefix, hourStartMs), ledger)
}
