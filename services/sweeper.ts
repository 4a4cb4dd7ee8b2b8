// The sweeper: one loop in every replica that makes the archive complete and proves it. For each
// hour of its window it completes webhook records without a full alert, backfills closed hours
// from Threat Stack's list API, writes their ledgers, and then runs the digest job. Hours are
// shared among replicas by leases; everything done under one is idempotent, so a lost lease or
// a half-done hour costs a repeat, never a wrong archive.
import { ServiceError } from '../errors/index.js'
import { backfillHour, type BackfillDeps } from './backfill.js'
import { runDigestJob, type DigestJobDeps } from './digest.js'
import { claimLease, releaseLease, renewLease, type Lease } from './leases.js'
import { HOUR_MS, hourPath, hourStart, readLedger, type Ledger } from './ledger.js'
import { reconcile } from './reconcile.js'

export interface SweepLog {
  info: (obj: object, msg: string) => void
  warn: (obj: object, msg: string) => void
  error: (obj: object, msg: string) => void
}

export interface SweepDeps extends BackfillDeps {
  /** Names this replica in the leases. */
  owner: string
  /** API v2 (Hawk): the list API exists and closed hours are backfilled. Legacy key: enrichment only. */
  backfill: boolean
  /** SWEEP_LOOKBACK_HOURS: the window, by the hour of the key, counted back from the current hour. */
  lookbackHours: number
  /** BACKFILL_DELAY_MIN in ms: an hour is closed once its end is older than this. */
  backfillDelayMs: number
  /** SWEEP_INTERVAL_S in ms: the shortest time between two checks of a complete hour. */
  intervalMs: number
  /** How long an hour's lease holds without renewal (renewed while the work outlasts a third of it). */
  leaseMs?: number
  /** The digest step after the hours; absent: no digests. */
  digest?: DigestJobDeps
  log?: SweepLog
  /**
   * Legacy key only: when each hour was last completed by this replica (there is no ledger to
   * tell). Kept by the caller across sweeps.
   */
  enrichedAt?: Map<number, number>
}

export interface SweepOptions {
  /** Stops the sweep between calls; the hour under way is left for the next sweep. */
  signal?: AbortSignal
  /** The clock of the ledgers' `checkedAt`; default: `nowMs` moving on with real time. */
  now?: () => number
}

export interface SweepReport {
  /** Hours checked by this replica in this sweep (ledger written, or enrichment run). */
  hoursChecked: number
  /** Hours another replica was checking (lease held). */
  hoursHeld: number
  /** Hours whose check failed (Threat Stack or S3 down); the next sweep tries again. */
  hoursFailed: number
  backfilled: number
  enriched: number
  /** Alerts Threat Stack lists and the archive lacks, summed over the window's ledgers. */
  missing: number
  /** Webhook records without their full alert, summed over the window's ledgers. */
  pending: number
  digests: number
  /** The sweep stopped on its signal before the end. */
  aborted: boolean
}

export const DEFAULT_HOUR_LEASE_MS = 5 * 60_000
/** The shortest time between two completion passes over an open hour whose last pass left nothing pending. */
export const OPEN_HOUR_PASS_MS = 5 * 60_000

/** The lease name of one hour's check, shared with the backfill CLI so the two never overlap. */
export function hourLeaseName (hourStartMs: number): string {
  return hourPath(hourStartMs)
}

/**
 * When a checked hour is due again. An hour whose ledger shows something missing or pending is
 * due at every sweep. A complete one is re-checked when it has aged as much again as it had at its
 * last check (never sooner than one interval): with the default 15 min delay, at about 15 min,
 * 30 min, 1 h, 2 h, 4 h, 8 h, 16 h and 32 h after its end, then it leaves the 48 h window.
 * Late alerts (Threat Stack's list catching up, a sender's resend after an outage) are caught by
 * those re-checks; each one costs a ledger read, the two list calls and an S3 listing.
 */
export function nextCheckMs (hourStartMs: number, ledger: Pick<Ledger, 'checkedAt' | 'missing' | 'pending'>, intervalMs: number): number {
  const checkedMs = Date.parse(ledger.checkedAt)
  if (!Number.isFinite(checkedMs) || ledger.missing.length > 0 || ledger.pending.length > 0) return Number.NEGATIVE_INFINITY
  const age = Math.max(0, checkedMs - (hourStartMs + HOUR_MS))
  return checkedMs + Math.max(age, intervalMs)
}

/** The window's hours, oldest first: from `lookbackHours - 1` hours before the current one up to it. */
export function windowHours (nowMs: number, lookbackHours: number): number[] {
  const current = hourStart(nowMs)
  const hours: number[] = []
  for (let i = lookbackHours - 1; i >= 0; i--) hours.push(current - i * HOUR_MS)
  return hours
}

/** Holds an hour's lease while `work` runs, renewing it as the work goes on. */
async function underLease<T> (deps: SweepDeps, hourStartMs: number, work: (renew: () => void) => Promise<T>): Promise<{ held: false } | { held: true, value: T }> {
  const ttlMs = deps.leaseMs ?? DEFAULT_HOUR_LEASE_MS
  let lease: Lease | undefined = await claimLease(deps.store, hourLeaseName(hourStartMs), { owner: deps.owner, ttlMs })
  if (lease === undefined) return { held: false }
  let renewedAt = Date.now()
  let renewing: Promise<void> | undefined
  const renew = (): void => {
    if (lease === undefined || renewing !== undefined || Date.now() - renewedAt < ttlMs / 3) return
    renewedAt = Date.now()
    renewing = renewLease(deps.store, lease, ttlMs).then((l) => { lease = l }, () => {}).finally(() => { renewing = undefined })
  }
  try {
    return { held: true, value: await work(renew) }
  } finally {
    await renewing
    if (lease !== undefined) await releaseLease(deps.store, lease).catch(() => {})
  }
}

const aborted = (signal: AbortSignal | undefined): boolean => signal?.aborted === true

/**
 * One sweep at `nowMs`. Hours still open only get their records completed; each closed hour that
 * is due (never checked, incomplete, or due for a re-check) is claimed, re-read (another replica
 * may have just checked it), backfilled and its ledger written, then released. A failure of one
 * hour is logged and counted, and the sweep goes on with the next. Then the digest step.
 * @throws nothing for Threat Stack or S3 failures (counted in the report); the signal's reason when aborted
 */
export async function sweepOnce (deps: SweepDeps, nowMs: number, opts: SweepOptions = {}): Promise<SweepReport> {
  const { store } = deps
  const { signal } = opts
  const startedMs = Date.now()
  const now = opts.now ?? (() => nowMs + Date.now() - startedMs)
  const report: SweepReport = { hoursChecked: 0, hoursHeld: 0, hoursFailed: 0, backfilled: 0, enriched: 0, missing: 0, pending: 0, digests: 0, aborted: false }
  const lastClosedEnd = nowMs - deps.backfillDelayMs
  const failed = (hourStartMs: number, err: unknown): void => {
    if (!(err instanceof ServiceError)) throw err
    report.hoursFailed++
    deps.log?.warn({ hour: new Date(hourStartMs).toISOString(), err }, 'sweep: the hour could not be checked; the next sweep tries again')
  }

  for (const hourStartMs of windowHours(nowMs, deps.lookbackHours)) {
    if (aborted(signal)) break
    const closed = hourStartMs + HOUR_MS <= lastClosedEnd
    try {
      if (!closed || !deps.backfill) {
        // Open hours, and every hour with the legacy key: complete the records, no list to compare with.
        // A pass lists the hour and asks S3 for each record's full alert: an open hour whose last
        // pass completed everything waits OPEN_HOUR_PASS_MS (the enrichment queue owns fresh
        // records meanwhile), a closed one (legacy key) follows the re-check schedule.
        const last = deps.enrichedAt?.get(hourStartMs)
        const wait = closed && last !== undefined ? Math.max(last - (hourStartMs + HOUR_MS), deps.intervalMs) : Math.max(OPEN_HOUR_PASS_MS, deps.intervalMs)
        if (last !== undefined && nowMs < last + wait) continue
        const done = await underLease(deps, hourStartMs, async () => await reconcile(deps, { startMs: hourStartMs, endMs: hourStartMs + HOUR_MS }))
        if (!done.held) {
          report.hoursHeld++
          continue
        }
        report.hoursChecked++
        report.enriched += done.value.repaired
        report.pending += done.value.failed
        if (done.value.failed === 0) deps.enrichedAt?.set(hourStartMs, nowMs)
        continue
      }
      const ledger = await readLedger(store, hourStartMs, signal)
      if (ledger !== undefined && nowMs < nextCheckMs(hourStartMs, ledger, deps.intervalMs)) {
        report.missing += ledger.missing.length
        report.pending += ledger.pending.length
        continue
      }
      const done = await underLease(deps, hourStartMs, async (renew) => {
        const current = await readLedger(store, hourStartMs, signal)
        if (current !== undefined && nowMs < nextCheckMs(hourStartMs, current, deps.intervalMs)) return { checked: false as const, ledger: current }
        const hour = await backfillHour(deps, hourStartMs, { ...(signal !== undefined && { signal }), now, onProgress: renew })
        return { checked: true as const, ledger: hour.ledger, backfilled: hour.backfilled.length, enriched: hour.enriched.length }
      })
      if (!done.held) {
        report.hoursHeld++
        if (ledger !== undefined) {
          report.missing += ledger.missing.length
          report.pending += ledger.pending.length
        }
        continue
      }
      report.missing += done.value.ledger.missing.length
      report.pending += done.value.ledger.pending.length
      if (done.value.checked) {
        report.hoursChecked++
        report.backfilled += done.value.backfilled
        report.enriched += done.value.enriched
      }
    } catch (err) {
      if (aborted(signal)) break
      failed(hourStartMs, err)
    }
  }

  if (deps.digest !== undefined && !aborted(signal)) {
    try {
      report.digests = (await runDigestJob(deps.digest, nowMs, signal)).written.length
    } catch (err) {
      if (!(err instanceof ServiceError)) throw err
      deps.log?.warn({ err }, 'sweep: the digest step failed; the next sweep tries again')
    }
  }
  report.aborted = aborted(signal)
  return report
}
