// The Threat Stack list API (v2): every alert created in a time range, page by page, at the
// pace the API allows. Threat Stack keeps alerts a year behind `GET /alerts?from&until&status`,
// in pages of at most 100 chained by an opaque `token`.
import { performance } from 'node:perf_hooks'
import { request } from 'undici'
import { ThreatStackAPIError, ThreatStackRequestError, type ThreatStackError } from '../errors/index.js'
import { holdClient, intHeader, outcomeOf, paceWaitMs, readAnswer, requestFailed, sleep, UpstreamAnswer, type ThreatStackClient } from './threatstack.js'

export type AlertStatus = 'active' | 'dismissed'
export const ALERT_STATUSES: readonly AlertStatus[] = ['active', 'dismissed']

export interface ListQuery {
  /** Alerts created at or after, in ms. */
  fromMs: number
  /** ... and before, in ms. */
  untilMs: number
  status: AlertStatus
}

export interface ListOptions {
  /** Retries of one page after a 429, a 5xx or a failed connection (default 5). */
  retries?: number
  /** Backoff of the n-th retry: random in [0, min(maxDelayMs, baseDelayMs * 2^n)) (defaults 500, 10 000). */
  baseDelayMs?: number
  maxDelayMs?: number
  /** Longest wait that Retry-After or a rate-limit reset may impose; a longer one ends the listing (default 120 000). */
  maxWaitMs?: number
  /**
   * When `x-rate-limit-remaining` falls to this or below, the next request waits for the
   * window's reset (`x-rate-limit-reset` seconds, else `retryAfterDefaultMs`), so the API
   * is never driven into a 429 by us (default 1).
   */
  slowDownAt?: number
  /** Wait when the API asks to slow down without saying for how long (default 5 000). */
  retryAfterDefaultMs?: number
  /** Bound on the pages of one listing: a guard against an API that never ends (default 20 000). */
  maxPages?: number
  /** Stops the listing (and any wait) early; the iterator then throws the signal's reason. */
  signal?: AbortSignal
  /** Told of every page fetched. */
  onPage?: (page: { status: AlertStatus, alerts: number, remaining: number | undefined }) => void
}

interface Page {
  alerts: Array<Record<string, unknown>>
  token: string | null
  remaining: number | undefined
  resetMs: number | undefined
}

/** How the log names a list call (its query holds only the range, status and page token). */
const LIST_PATH = '/alerts (list)'

/**
 * One page. @throws ThreatStackRequestError (no answer, or not a list page) |
 * ThreatStackAPIError (a JSON error; 429 with the wait Threat Stack asked for)
 */
async function fetchPage (client: ThreatStackClient, search: URLSearchParams, signal: AbortSignal | undefined): Promise<Page> {
  const url = `${client.baseUrl}/alerts?${search.toString()}`
  let statusCode: number
  let headers: Record<string, string | string[] | undefined>
  let text: string
  try {
    const timeout = AbortSignal.timeout(client.timeoutMs)
    const res = await request(url, {
      method: 'GET',
      dispatcher: client.dispatcher,
      headers: { authorization: client.authorization(url, 'GET'), accept: 'application/json' },
      signal: signal === undefined ? timeout : AbortSignal.any([timeout, signal])
    })
    statusCode = res.statusCode
    headers = res.headers
    text = await res.body.text()
  } catch (err) {
    signal?.throwIfAborted()
    throw requestFailed(err)
  }
  const json = readAnswer('GET', LIST_PATH, statusCode, headers, text)
  const body = json as { alerts?: unknown, token?: unknown } | undefined
  const alerts = body?.alerts
  const token = body?.token ?? null
  const valid = Array.isArray(alerts) &&
    alerts.every((a) => typeof a === 'object' && a !== null && !Array.isArray(a) && typeof (a as { id?: unknown }).id === 'string') &&
    (token === null || (typeof token === 'string' && token !== ''))
  // A 200 that is not a list page is the path to Threat Stack failing, as a non-JSON answer is.
  if (!valid) throw new ThreatStackRequestError({ upstreamStatus: statusCode, cause: new UpstreamAnswer('GET', LIST_PATH, statusCode, headers['content-type'], text) })
  const reset = intHeader(headers['x-rate-limit-reset'])
  return {
    alerts: alerts as Array<Record<string, unknown>>,
    token: token as string | null,
    remaining: intHeader(headers['x-rate-limit-remaining']),
    resetMs: reset === undefined ? undefined : reset * 1000
  }
}

function retryable (err: ThreatStackError): boolean {
  const status = err.upstreamStatus
  if (status === undefined) return (err.cause as { code?: unknown } | undefined)?.code !== 'UND_ERR_RES_EXCEEDED_MAX_SIZE'
  return status === 429 || status >= 500
}

/**
 * Every alert Threat Stack lists for `query` (created in [fromMs, untilMs), one status), in the
 * API's order, fetching the next page only when the caller asks for more. Honours 429 with its
 * Retry-After, and slows down before `x-rate-limit-remaining` reaches 0; each page is retried a
 * bounded number of times. API v2 (Hawk) only.
 * @throws ThreatStackRequestError | ThreatStackAPIError once a page has failed for good;
 *   the signal's reason when aborted
 */
export async function * listAlerts (client: ThreatStackClient, query: ListQuery, options: ListOptions = {}): AsyncGenerator<Record<string, unknown>> {
  const {
    retries = 5, baseDelayMs = 500, maxDelayMs = 10_000, maxWaitMs = 120_000, slowDownAt = 1,
    retryAfterDefaultMs = 5_000, maxPages = 20_000, signal, onPage
  } = options
  const base = { from: new Date(query.fromMs).toISOString(), until: new Date(query.untilMs).toISOString(), status: query.status }
  const seen = new Set<string>()
  let token: string | null = null
  let waitMs = 0
  for (let pages = 0; pages < maxPages; pages++) {
    const search = new URLSearchParams({ ...base, ...(token !== null && { token }) })
    let page: Page | undefined
    for (let retry = 0; page === undefined; retry++) {
      // The client's pace outlives one listing (the next hour's, the other status's, single alerts).
      await sleep(Math.max(waitMs, paceWaitMs(client)), signal)
      waitMs = 0
      const t0 = performance.now()
      try {
        page = await fetchPage(client, search, signal)
        client.observer?.request('success', (performance.now() - t0) / 1000)
      } catch (err) {
        if (!(err instanceof ThreatStackAPIError || err instanceof ThreatStackRequestError)) throw err
        client.observer?.request(outcomeOf(err), (performance.now() - t0) / 1000)
        if (retry >= retries || !retryable(err)) throw err
        const backoff = Math.random() * Math.min(maxDelayMs, baseDelayMs * 2 ** retry)
        const asked = err.upstreamStatus === 429 ? err.upstreamRetryAfterMs ?? retryAfterDefaultMs : err.upstreamRetryAfterMs
        if (asked !== undefined && asked > maxWaitMs) throw err
        client.observer?.retry()
        waitMs = asked ?? backoff
        if (err.upstreamStatus === 429) holdClient(client, Date.now() + waitMs)
      }
    }
    if (page.remaining !== undefined && page.remaining <= slowDownAt) {
      holdClient(client, Date.now() + Math.min(page.resetMs ?? retryAfterDefaultMs, maxWaitMs))
    }
    onPage?.({ status: query.status, alerts: page.alerts.length, remaining: page.remaining })
    yield * page.alerts
    if (page.token === null) return
    // A token seen before would page forever.
    if (seen.has(page.token)) throw new ThreatStackRequestError({ upstreamStatus: 200, cause: new Error('list API repeated a page token') })
    seen.add(page.token)
    token = page.token
  }
  throw new ThreatStackRequestError({ upstreamStatus: 200, cause: new Error(`list API gave more than ${maxPages} pages`) })
}
