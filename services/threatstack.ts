// The Threat Stack REST API client: authentication, timeouts, and the classification of
// every way a call can fail into ThreatStackRequestError or ThreatStackAPIError.
import { performance } from 'node:perf_hooks'
import { Agent, request, type Dispatcher } from 'undici'
import Hawk from 'hawk'
import type { Config } from '../config.js'
import {
  DEFAULT_RETRY_AFTER_SECONDS, ThreatStackAPIError, ThreatStackRequestError, type ThreatStackError
} from '../errors/index.js'
import { exceedsJsonDepth, MAX_JSON_DEPTH } from '../schemas/json.js'
import { assertAlertId } from './keys.js'
import type { UpstreamObserver } from './upstream.js'

export interface RetryPolicy {
  /** Retries after the first attempt. */
  retries: number
  /** Full jitter: the n-th retry waits a random time in [0, min(maxDelayMs, baseDelayMs * 2^n)). */
  baseDelayMs: number
  maxDelayMs: number
  /** All attempts and waits of one call end within this; a Retry-After beyond it ends the call. */
  budgetMs: number
}

export interface ThreatStackClient {
  readonly dispatcher: Dispatcher
  readonly baseUrl: string
  /** Deadline of one attempt. */
  readonly timeoutMs: number
  readonly retry: RetryPolicy
  readonly observer: UpstreamObserver | undefined
  /** The Authorization header for one request. */
  authorization (url: string, method: string): string
}

/** One connection pool per process, with keep-alive, timeouts and a response size cap. */
export function createThreatStackClient (cfg: Config['threatstack'], observer?: UpstreamObserver): ThreatStackClient {
  const dispatcher = new Agent({
    connections: cfg.maxConnections,
    keepAliveTimeout: 30_000,
    keepAliveMaxTimeout: 60_000,
    connect: { timeout: cfg.connectTimeoutMs },
    headersTimeout: cfg.timeoutMs,
    bodyTimeout: cfg.timeoutMs,
    maxResponseSize: cfg.maxResponseBytes
  })
  const { auth, apiKey } = cfg
  return {
    dispatcher,
    baseUrl: cfg.baseUrl,
    timeoutMs: cfg.timeoutMs,
    retry: cfg.retry,
    observer,
    authorization: auth.kind === 'hawk'
      // API v2: Hawk with sha256, the organization id in `ext`.
      ? (url, method) => Hawk.client.header(url, method, {
          credentials: { id: auth.userId, key: apiKey, algorithm: 'sha256' },
          ext: auth.organizationId
        }).header
      // API v1: the key itself is the header.
      : () => apiKey
  }
}

export async function closeThreatStackClient (client: ThreatStackClient): Promise<void> {
  await client.dispatcher.close()
}

const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT'])

function isTimeout (err: unknown): boolean {
  if (!(err instanceof Error)) return false
  const code = (err as { code?: unknown }).code
  return err.name === 'TimeoutError' || (typeof code === 'string' && TIMEOUT_CODES.has(code))
}

/** Refused, reset, timed out, size cap exceeded: the request did not complete. */
export function requestFailed (err: unknown): ThreatStackRequestError {
  return new ThreatStackRequestError({ cause: err, timedOut: isTimeout(err) })
}

// IMF-fixdate, e.g. "Wed, 21 Oct 2015 07:28:00 GMT" (Date.parse alone would read "1.5" as a date).
const HTTP_DATE = /^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/

/** Seconds from a Retry-After header (delta-seconds or HTTP date), bounded to 1 s..1 h. */
export function retryAfterSeconds (value: string | string[] | undefined, now = Date.now()): number {
  const raw = Array.isArray(value) ? value[0] : value
  if (raw === undefined) return DEFAULT_RETRY_AFTER_SECONDS
  const seconds = /^\s*\d+\s*$/.test(raw)
    ? Number(raw)
    : HTTP_DATE.test(raw.trim()) ? Math.ceil((Date.parse(raw) - now) / 1000) : Number.NaN
  return Number.isFinite(seconds) ? Math.min(Math.max(seconds, 1), 3600) : DEFAULT_RETRY_AFTER_SECONDS
}

/** What Threat Stack answered, for the log: never sent to a client. */
export class UpstreamAnswer extends Error {
  constructor (method: string, path: string, statusCode: number, contentType: unknown, body: string, cause?: unknown) {
    super(`${method} ${path} answered ${statusCode} (${String(contentType ?? 'no content-type')}): ${body.slice(0, 200)}`, { cause })
    this.name = 'UpstreamAnswer'
  }
}

const firstHeader = (value: string | string[] | undefined): string | undefined => Array.isArray(value) ? value[0] : value

/** A header holding a non-negative integer (`x-rate-limit-remaining`, `x-rate-limit-reset`); undefined otherwise. */
export function intHeader (value: string | string[] | undefined): number | undefined {
  const raw = firstHeader(value)
  return raw !== undefined && /^\s*\d{1,10}\s*$/.test(raw) ? Number(raw) : undefined
}

// When Threat Stack may next be asked, per client. Its rate limit counts every request of our key
// (list pages and single alerts alike), so every call keeps one pace and honours it.
const notBefore = new WeakMap<ThreatStackClient, number>()
/** The longest a rate-limit reset holds the pace back. */
export const MAX_PACE_MS = 120_000

/** Holds the client's next request back until `untilMs` (the later of two holds wins). */
export function holdClient (client: ThreatStackClient, untilMs: number): void {
  if (untilMs > (notBefore.get(client) ?? 0)) notBefore.set(client, untilMs)
}

/** How long the client's next request must wait (0: it may go now). */
export function paceWaitMs (client: ThreatStackClient): number {
  return Math.max(0, (notBefore.get(client) ?? 0) - Date.now())
}

/**
 * Follows Threat Stack's rate-limit headers: once `x-rate-limit-remaining` is down to
 * `slowDownAt`, the next request waits for the window's reset (`x-rate-limit-reset` seconds,
 * else `defaultMs`), so that the limit is used without provoking a 429.
 */
export function followRateLimit (client: ThreatStackClient, headers: Record<string, string | string[] | undefined>, slowDownAt = 1, defaultMs = 5_000): void {
  const remaining = intHeader(headers['x-rate-limit-remaining'])
  if (remaining === undefined || remaining > slowDownAt) return
  const reset = intHeader(headers['x-rate-limit-reset'])
  holdClient(client, Date.now() + Math.min(reset === undefined ? defaultMs : reset * 1000, MAX_PACE_MS))
}

/**
 * One GET of a JSON object.
 * @throws ThreatStackRequestError when the call did not complete or the answer is not a JSON object
 *   (504 when it timed out); ThreatStackAPIError when Threat Stack answered with a JSON error.
 */
async function attempt (client: ThreatStackClient, path: string, timeoutMs: number, signal?: AbortSignal): Promise<Record<string, unknown>> {
  const url = client.baseUrl + path
  let statusCode: number
  let headers: Record<string, string | string[] | undefined>
  let text: string
  try {
    const res = await request(url, {
      method: 'GET',
      dispatcher: client.dispatcher,
      headers: { authorization: client.authorization(url, 'GET'), accept: 'application/json' },
      signal: signal === undefined ? AbortSignal.timeout(timeoutMs) : AbortSignal.any([AbortSignal.timeout(timeoutMs), signal])
    })
    statusCode = res.statusCode
    headers = res.headers
    followRateLimit(client, headers)
    text = await res.body.text()
  } catch (err) {
    throw requestFailed(err)
  }

  const json = readAnswer('GET', path, statusCode, headers, text)
  if (isJsonObject(json)) return json
  throw new ThreatStackRequestError({ upstreamStatus: statusCode, cause: new UpstreamAnswer('GET', path, statusCode, headers['content-type'], text) })
}

const isJsonObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)

/**
 * What a Threat Stack answer says: its JSON when the status is 2xx, `undefined` when a 2xx is
 * not JSON (the caller says what it expected); otherwise the error it is. Every call to the
 * API (one alert, a list page) reads its answer here.
 * @throws ThreatStackAPIError for a JSON error (429: with the wait Threat Stack asked for);
 *   ThreatStackRequestError for any other non-2xx (a balancer's HTML page)
 */
export function readAnswer (method: string, path: string, statusCode: number, headers: Record<string, string | string[] | undefined>, text: string): unknown {
  // Whatever goes wrong reading the answer is Threat Stack's: an answer nested too deeply is
  // refused here, like a webhook body, because storing it would exhaust the stack later.
  let json: unknown
  let parseError: unknown
  try {
    if (exceedsJsonDepth(text)) throw new Error(`answer nested deeper than ${MAX_JSON_DEPTH} levels`)
    json = JSON.parse(text)
  } catch (err) {
    parseError = err
  }
  const answer = (): UpstreamAnswer => new UpstreamAnswer(method, path, statusCode, headers['content-type'], text, parseError)

  if (statusCode >= 200 && statusCode < 300) {
    if (json === undefined) throw new ThreatStackRequestError({ upstreamStatus: statusCode, cause: answer() })
    return json
  }
  const upstreamRetryAfterMs = headers['retry-after'] === undefined ? undefined : retryAfterSeconds(headers['retry-after']) * 1000
  if (statusCode === 429) {
    throw new ThreatStackAPIError(429, { cause: answer(), retryAfterSeconds: retryAfterSeconds(headers['retry-after']), upstreamRetryAfterMs })
  }
  // A JSON error is Threat Stack speaking; anything else (a balancer's HTML page) is the path to it failing.
  const error: ThreatStackError = json === undefined
    ? new ThreatStackRequestError({ upstreamStatus: statusCode, cause: answer(), upstreamRetryAfterMs })
    : new ThreatStackAPIError(statusCode, { cause: answer(), upstreamRetryAfterMs })
  throw error
}

/** The outcome label of an attempt, for metrics. */
export function outcomeOf (err: ThreatStackError | undefined): string {
  if (err === undefined) return 'success'
  const status = err.upstreamStatus
  if (status === undefined) return err.statusCode === 504 ? 'timeout' : 'connection_error'
  if (status === 429) return 'throttled'
  if (status >= 200 && status < 300) return 'invalid_response'
  return status >= 500 ? 'http_5xx' : 'http_4xx'
}

/** Worth another attempt: the request may not have reached Threat Stack, or it asked us to come back. */
function retryable (err: ThreatStackError): boolean {
  const status = err.upstreamStatus
  if (status === undefined) return !isSizeCap(err.cause)
  return status === 429 || status >= 500
}

function isSizeCap (err: unknown): boolean {
  return (err as { code?: unknown } | undefined)?.code === 'UND_ERR_RES_EXCEEDED_MAX_SIZE'
}

/** Waits `ms`, or rejects with the signal's reason as soon as it aborts. */
export async function sleep (ms: number, signal?: AbortSignal): Promise<void> {
  signal?.throwIfAborted()
  if (ms <= 0) return
  await new Promise<void>((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer)
      reject(signal?.reason)
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

/**
 * GETs a JSON object, retrying connection failures, 5xx and 429 with exponential backoff and
 * full jitter (or the upstream's Retry-After), all within the retry budget. GETs are idempotent.
 * @throws the last attempt's ThreatStackRequestError | ThreatStackAPIError
 */
export async function getObject (client: ThreatStackClient, path: string, policy: RetryPolicy = client.retry, signal?: AbortSignal): Promise<Record<string, unknown>> {
  const started = Date.now()
  for (let retry = 0; ; retry++) {
    // The pace first: a request sent while the rate limit is spent would only be a 429.
    const pace = paceWaitMs(client)
    if (pace > 0) {
      // Waiting past the budget would answer the sender too late anyway: fail now, it will retry.
      if (Date.now() - started + pace >= policy.budgetMs) {
        throw new ThreatStackAPIError(429, { cause: new Error(`rate limit spent: the next request may go in ${pace} ms`), retryAfterSeconds: Math.ceil(pace / 1000), upstreamRetryAfterMs: pace })
      }
      await sleep(pace, signal)
    }
    const remaining = policy.budgetMs - (Date.now() - started)
    const t0 = performance.now()
    try {
      const object = await attempt(client, path, Math.max(1, Math.min(client.timeoutMs, remaining)), signal)
      client.observer?.request('success', (performance.now() - t0) / 1000)
      return object
    } catch (err) {
      const error = err as ThreatStackError
      client.observer?.request(outcomeOf(error), (performance.now() - t0) / 1000)
      if (retry >= policy.retries || !retryable(error)) throw error
      const backoff = Math.random() * Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** retry)
      const delay = error.upstreamRetryAfterMs ?? backoff
      if (error.upstreamStatus === 429) holdClient(client, Date.now() + Math.min(delay, MAX_PACE_MS))
      // Waiting past the budget would answer the sender too late anyway: fail now, it will retry.
      if (Date.now() - started + delay >= policy.budgetMs) throw error
      client.observer?.retry()
      await sleep(delay, signal)
    }
  }
}

/** The full alert. @throws ThreatStackRequestError | ThreatStackAPIError; WebhookDataError for an invalid id */
export async function fetchAlert (client: ThreatStackClient, id: string, signal?: AbortSignal): Promise<Record<string, unknown>> {
  // No URL is built from an id that breaks the id rule, however the caller got it.
  assertAlertId(id)
  return await getObject(client, `/alerts/${encodeURIComponent(id)}`, client.retry, signal)
}

/** An authenticated call that proves the API is reachable with our key (as the Python service did). */
export async function checkThreatStack (client: ThreatStackClient, timeoutMs: number): Promise<void> {
  // One attempt: a readiness probe must answer quickly, and its caller asks again.
  await attempt(client, '/alerts?count=1', timeoutMs)
}
