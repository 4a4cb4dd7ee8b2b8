// The sweeper: one loop in every replica that makes the archive complete and proves it. For each
// hour of its window it completes webhook records without a full alert, backfills closed hours
// from Threat Stack's list API, writes their ledgers, runs the digest job, and then compacts
// each closed day whose 24 ledgers are written into the table tier. Hours and days are shared
// among replicas by leases; everything done under one is idempotent, so a lost lease or a
// half-done hour costs a repeat, never a wrong archive.
import { createHash } from 'node:crypto'
import { ServiceError } from '../errors/index.js'
import { backfillHour, type BackfillDeps } from './backfill.js'
import { runDigestJob, type DigestJobDeps } from './digest.js'
import { claimLease, releaseLease, renewLease, type Lease } from './leases.js'
import { HOUR_MS, hourPath, hourStart, readLedger, type Ledger } from './ledger.js'
import { reconcile } from './reconcile.js'
import { compactDay, dayLeaseName, dayOf, readManifest, DAY_MS, type ManifestLedgers } from './tables.js'

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
  /** The table tier step after the digests; absent: days are not compacted by the sweeper. */
  tables?: { concurrency: number }
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
  /** Days whose table tier was written (first build, or their ledgers changed and so did their rows). */
  compacted: number
  /** Days whose compaction failed (S3 down, DuckDB could not write); the next sweep tries again. */
  compactFailed: number
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

/**
 * Holds the lease `name` while `work` runs, renewing it as the work goes on (each call of
 * `renew` renews once a third of the lease has passed). Shared with the compact command.
 * @throws S3ClientError (the claim); whatever `work` throws
 */
export async function underLease<T> (deps: Pick<SweepDeps, 'store' | 'owner' | 'leaseMs'>, name: string, work: (renew: () => void) => Promise<T>): Promise<{ held: false } | { held: true, value: T }> {
  const ttlMs = deps.leaseMs ?? DEFAULT_HOUR_LEASE_MS
  let lease: Lease | undefined = await claimLease(deps.store, name, { owner: deps.owner, ttlMs })
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
 * What a day's ledgers say of the archive, as the table tier's manifest records it: each hour's
 * archived counts and id lists, leaving out when and how often it was checked (a re-check that
 * finds nothing new changes nothing here) and the tries of unknown ids.
 */
export function ledgersOf (ledgers: Ledger[]): ManifestLedgers {
  const hash = createHash('sha256')
  for (const l of ledgers) {
    hash.update(JSON.stringify([l.hour, l.archived, l.missing, l.pending, l.unknown, l.backfilled])).update('\n')
  }
  return {
    hash: hash.digest('hex'),
    complete: ledgers.every((l) => l.missing.length === 0 && l.pending.length === 0),
    missing: ledgers.reduce((n, l) => n + l.missing.length, 0),
    pending: ledgers.reduce((n, l) => n + l.pending.length, 0)
  }
}

/**
 * The days the table step looks at: those the window's hours touch, oldest first, that are over
 * (all 24 hours closed). A day whose first hours have left the window still counts while its
 * last ones are in it: its earlier ledgers are read, not checked again.
 */
export function windowDays (nowMs: number, lookbackHours: number, lastClosedEnd: number): number[] {
  const days = new Set<number>()
  for (const hour of windowHours(nowMs, lookbackHours)) days.add(Math.floor(hour / DAY_MS) * DAY_MS)
  return [...days].filter((dayMs) => dayMs + DAY_MS <= lastClosedEnd)
}

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
  const report: SweepReport = { hoursChecked: 0, hoursHeld: 0, hoursFailed: 0, backfilled: 0, enriched: 0, missing: 0, pending: 0, digests: 0, compacted: 0, compactFailed: 0, aborted: false }
  // What this sweep learnt of each hour: its ledger, or that it is unsettled (held elsewhere, failed).
  const known = new Map<number, Ledger>()
  const unsettled = new Set<number>()
  const lastClosedEnd = nowMs - deps.backfillDelayMs
  const failed = (hourStartMs: number, err: unknown): void => {
    if (!(err instanceof ServiceError)) throw err
    unsettled.add(hourStartMs)
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
        const done = await underLease(deps, hourLeaseName(hourStartMs), async () => await reconcile(deps, { startMs: hourStartMs, endMs: hourStartMs + HOUR_MS }))
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
        known.set(hourStartMs, ledger)
        continue
      }
      const done = await underLease(deps, hourLeaseName(hourStartMs), async (renew) => {
        const current = await readLedger(store, hourStartMs, signal)
        if (current !== undefined && nowMs < nextCheckMs(hourStartMs, current, deps.intervalMs)) return { checked: false as const, ledger: current }
        const hour = await backfillHour(deps, hourStartMs, { ...(signal !== undefined && { signal }), now, onProgress: renew })
        return { checked: true as const, ledger: hour.ledger, backfilled: hour.backfilled.length, enriched: hour.enriched.length }
      })
      if (!done.held) {
        report.hoursHeld++
        unsettled.add(hourStartMs)
        if (ledger !== undefined) {
          report.missing += ledger.missing.length
          report.pending += ledger.pending.length
        }
        continue
      }
      report.missing += done.value.ledger.missing.length
      report.pending += done.value.ledger.pending.length
      known.set(hourStartMs, done.value.ledger)
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

  if (deps.tables !== undefined && deps.backfill) {
    for (const dayMs of windowDays(nowMs, deps.lookbackHours, lastClosedEnd)) {
      if (aborted(signal)) break
      try {
        const written = await compactSweptDay({ ...deps, tables: deps.tables }, dayMs, known, unsettled, signal)
        if (written) report.compacted++
      } catch (err) {
        if (aborted(signal)) break
        if (!(err instanceof ServiceError)) throw err
        report.compactFailed++
        deps.log?.warn({ day: dayOf(dayMs), err }, 'sweep: the day could not be compacted; the next sweep tries again')
      }
    }
  }
  report.aborted = aborted(signal)
  return report
}

/**
 * The table step for one closed day: compacted when all 24 of its ledgers are written and
 * settled in this sweep (none held by another replica or failed), and their fingerprint is not
 * the one its manifest records. Hours with alerts still missing or pending do not hold the day
 * back (an alert Threat Stack lost for good would hold it forever): the manifest records how
 * complete the ledgers were, and a later ledger that finds the alert changes the fingerprint,
 * so the day is compacted again. When nothing changed this costs the day's manifest and the
 * ledgers of its hours outside the window: no listing, no object read.
 * @returns true when parts were written. @throws ServiceError
 */
async function compactSweptDay (deps: SweepDeps & { tables: { concurrency: number } }, dayMs: number, known: Map<number, Ledger>, unsettled: Set<number>, signal: AbortSignal | undefined): Promise<boolean> {
  const { store } = deps
  const day = dayOf(dayMs)
  const ledgers: Ledger[] = []
  for (let h = 0; h < 24; h++) {
    const hourStartMs = dayMs + h * HOUR_MS
    if (unsettled.has(hourStartMs)) return false
    const ledger = known.get(hourStartMs) ?? await readLedger(store, hourStartMs, signal)
    // An hour never checked (the sweeper started after it left the window): `npm run compact` builds such days.
    if (ledger === undefined) return false
    ledgers.push(ledger)
  }
  const fingerprint = ledgersOf(ledgers)
  if ((await readManifest(store, day))?.ledgers?.hash === fingerprint.hash) return false
  const done = await underLease(deps, dayLeaseName(day), async (renew) => await compactDay({
    store,
    concurrency: deps.tables.concurrency,
    ledgers: fingerprint,
    onAlert: renew,
    ...(signal !== undefined && { signal })
  }, day))
  if (!done.held) return false
  if (done.value.status === 'written') {
    deps.log?.info({ day, rows: done.value.rows, parts: done.value.parts, bytes: done.value.bytes, complete: fingerprint.complete }, 'sweep: day compacted into the table tier')
  }
  return done.value.status === 'written'
}
