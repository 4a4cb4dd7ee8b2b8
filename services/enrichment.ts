// Enrichment owed after the answer: the full alerts of webhook records already stored, fetched
// from Threat Stack in the background with retries, and written once each after their record.
import { setMaxListeners } from 'node:events'
import pLimit from 'p-limit'
import { ServiceError, UnexpectedException } from '../errors/index.js'
import { alertKey } from './keys.js'
import { exists, putJson, type PutOutcome, type Store } from './storage.js'
import { fetchAlert, sleep, type ThreatStackClient } from './threatstack.js'

export interface EnrichDeps {
  store: Store
  threatstack: ThreatStackClient
}

/** What a pending alert's `error` shows: the envelope's type and fixed message, nothing of the cause. */
export interface PendingError {
  type: string
  message: string
}

export function pendingError (err: unknown): PendingError {
  if (err instanceof ServiceError) return { type: err.name, message: err.message }
  const unexpected = new UnexpectedException({ cause: err })
  return { type: unexpected.name, message: unexpected.message }
}

/**
 * Completes one alert: fetches its full version and writes it once, only if its webhook record
 * `recordKey` is stored (no full alert exists without its record).
 * @returns the PUT's outcome, or 'no-record' when the record is not stored (nothing is fetched).
 * @throws ThreatStackRequestError | ThreatStackAPIError | S3ClientError; the signal's reason when it aborts.
 */
export async function enrichAlert (deps: EnrichDeps, id: string, recordKey: string, signal?: AbortSignal): Promise<PutOutcome | 'no-record'> {
  if (!await exists(deps.store, recordKey)) return 'no-record'
  const full = await fetchAlert(deps.threatstack, id, signal)
  return await putJson(deps.store, alertKey(deps.store.prefix, id), full, signal)
}

export interface QueueOptions {
  /** Alerts owed at once; more are left to the sweeper. */
  maxSize: number
  /** Background fetches under way at once. */
  concurrency: number
  /** How long, from its first attempt, an alert is retried here before it is left to the sweeper. */
  budgetMs: number
  /** Full jitter: the n-th retry waits a random time below min(maxDelayMs, baseDelayMs × 2ⁿ), or Threat Stack's Retry-After. */
  baseDelayMs: number
  maxDelayMs: number
}

export interface QueueEvents {
  /** An alert's full alert is stored. */
  archived?: (id: string) => void
  /** An alert is left to the sweeper: the queue was full, its budget ran out, or the queue stopped. */
  deferred?: (id: string, why: 'full' | 'budget' | 'stopped', err?: unknown) => void
  /** The number of alerts owed changed. */
  size?: (size: number) => void
}

interface Entry {
  id: string
  recordKey: string
  started: number
  retries: number
}

/**
 * A bounded set of alerts owed their full alert, by id (a resent webhook is not owed twice).
 * Each is tried until it is stored or its budget ends; what is left over is the sweeper's.
 */
export class EnrichmentQueue {
  readonly #deps: EnrichDeps
  readonly #options: QueueOptions
  readonly #events: QueueEvents
  readonly #owed = new Map<string, Entry>()
  readonly #running = new Set<Promise<void>>()
  readonly #limit: ReturnType<typeof pLimit>
  readonly #stop = new AbortController()
  /** Aborted as closing starts: waits between retries end, fetches under way go on until the deadline. */
  readonly #closing = new AbortController()
  #accepting = true

  constructor (deps: EnrichDeps, options: QueueOptions, events: QueueEvents = {}) {
    this.#deps = deps
    this.#options = options
    this.#events = events
    this.#limit = pLimit(options.concurrency)
    // Every owed alert listens to these while it waits or fetches: as many listeners as the queue
    // holds alerts is the design, not a leak (Node warns beyond 10).
    setMaxListeners(Math.max(10, 2 * options.maxSize + options.concurrency), this.#stop.signal, this.#closing.signal)
  }

  /** Alerts owed now. */
  get size (): number { return this.#owed.size }

  /** Aborted once the queue stops: work under way for it ends at once. */
  get signal (): AbortSignal { return this.#stop.signal }

  /** Whether an alert would be taken now (not full, not stopped, or owed already). */
  canTake (id: string): boolean {
    return this.#owed.has(id) || (this.#accepting && this.#owed.size < this.#options.maxSize)
  }

  /**
   * Owes `id` its full alert. With `attempt`, a fetch already under way (the request's) is
   * waited for first, and retried if it fails; with `failure`, the first attempt failed with it.
   * @returns false when the alert is left to the sweeper (queue full or stopped).
   */
  take (id: string, recordKey: string, options: { attempt?: Promise<unknown>, failure?: unknown } = {}): boolean {
    if (this.#owed.has(id)) return true
    if (!this.canTake(id)) {
      this.#events.deferred?.(id, this.#accepting ? 'full' : 'stopped')
      return false
    }
    const entry: Entry = { id, recordKey, started: Date.now(), retries: 0 }
    this.#owed.set(id, entry)
    this.#events.size?.(this.#owed.size)
    const work = this.#work(entry, options).finally(() => {
      this.#owed.delete(id)
      this.#events.size?.(this.#owed.size)
      this.#running.delete(work)
    })
    this.#running.add(work)
    return true
  }

  async #work (entry: Entry, options: { attempt?: Promise<unknown>, failure?: unknown }): Promise<void> {
    let failure = options.failure
    let tried = failure !== undefined
    if (options.attempt !== undefined) {
      try {
        await options.attempt
        this.#events.archived?.(entry.id)
        return
      } catch (err) {
        failure = err
        tried = true
      }
    }
    const { signal } = this.#stop
    for (;;) {
      if (signal.aborted || (tried && !this.#accepting)) {
        this.#events.deferred?.(entry.id, 'stopped', failure)
        return
      }
      if (tried) {
        const delay = this.#delay(entry, failure)
        if (Date.now() - entry.started + delay >= this.#options.budgetMs) {
          this.#events.deferred?.(entry.id, 'budget', failure)
          return
        }
        entry.retries++
        try {
          await sleep(delay, this.#closing.signal)
        } catch {
          continue
        }
      }
      tried = true
      try {
        const outcome = await this.#limit(async () => {
          signal.throwIfAborted()
          return await enrichAlert(this.#deps, entry.id, entry.recordKey, signal)
        })
        // No record (its PUT failed): the alert is the sender's to resend, not ours to complete.
        if (outcome !== 'no-record') this.#events.archived?.(entry.id)
        return
      } catch (err) {
        failure = err
      }
    }
  }

  #delay (entry: Entry, failure: unknown): number {
    const upstream = (failure as { upstreamRetryAfterMs?: unknown } | undefined)?.upstreamRetryAfterMs
    if (typeof upstream === 'number') return upstream
    return Math.random() * Math.min(this.#options.maxDelayMs, this.#options.baseDelayMs * 2 ** entry.retries)
  }

  /**
   * Takes nothing more, gives the work under way until `deadlineMs`, then aborts the rest
   * (each aborted alert stays owed by the sweeper: its record is stored).
   */
  async close (deadlineMs: number): Promise<void> {
    this.#accepting = false
    this.#closing.abort()
    let timer: NodeJS.Timeout | undefined
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.#stop.abort(new Error(`enrichment stopped at the shutdown deadline of ${deadlineMs} ms`))
        resolve()
      }, deadlineMs)
    })
    await Promise.race([Promise.allSettled([...this.#running]), deadline])
    clearTimeout(timer)
    if (!this.#stop.signal.aborted) this.#stop.abort(new Error('enrichment stopped'))
    // Aborted work ends at once: its fetches and PUTs were given the signal.
    await Promise.allSettled([...this.#running])
  }
}
