// A Threat Stack API simulator: a real HTTP server on loopback that checks Hawk (with the
// `hawk` library) or the legacy key header, serves alerts, and can be switched into every
// failure mode the service must survive. Used by `npm run dev`, the tests and the benchmarks.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import Hawk from 'hawk'
import { loopback } from './net.js'

export const FAILURE_MODES = [
  'refused', // the port stops accepting connections
  'hang', // the request is accepted and never answered
  'reset', // headers and part of the body, then the connection is destroyed
  'html-503', // a load balancer's error page
  'json-401', // Threat Stack rejecting the credentials
  'json-404',
  'json-429',
  'json-500',
  'invalid-json', // 200 with a truncated JSON body
  'deep-json', // 200 with valid JSON nested far too deeply to be stored again
  'oversized' // 200 with a JSON body larger than any sane alert
] as const
export type FailureMode = typeof FAILURE_MODES[number]

export interface SimulatorOptions {
  apiKey: string
  /** With both ids, requests must carry Hawk (sha256, ext = organization id); without, `Authorization: <apiKey>`. */
  userId?: string
  organizationId?: string
  /** Added before every answer. */
  latencyMs?: number
  port?: number
}

export interface RecordedRequest {
  method: string
  path: string
  authorized: boolean
  /** Date.now() on arrival */
  at: number
  /** The failure mode it was answered in, if any. */
  fault?: FailureMode
  /** Set when the rate limit answered it 429. */
  rateLimited?: boolean
}

/** Threat Stack's alert status, as the list API filters it. */
export type SimulatedStatus = 'active' | 'dismissed'

export interface RaiseOptions {
  count: number
  /** created_at of the alerts spreads over [fromMs, untilMs). */
  fromMs: number
  untilMs: number
  /** Same seed, same alerts (ids, times, severities, statuses). */
  seed?: number
  /** Share of the alerts raised dismissed (default 0.25). */
  dismissedShare?: number
}

export interface RateLimit {
  /** Requests allowed per window. */
  limit: number
  windowMs: number
}

export interface ThreatStackSimulator {
  /** Base URL to configure as THREATSTACK_BASE_URL. */
  readonly url: string
  readonly port: number
  /** Every request received, in order. */
  readonly requests: RecordedRequest[]
  /** Connections open to the simulator now. */
  readonly openConnections: number
  /**
   * Fails the next `times` requests (all of them when omitted) in `mode`; 'json-429' sends `retryAfter` (default '7').
   * With `path`, only requests whose path (and query) it matches fail, and count.
   */
  failWith (mode: FailureMode, times?: number, options?: { retryAfter?: string, path?: RegExp }): Promise<void>
  /** Back to normal answers (and listening again after 'refused'). */
  heal (): Promise<void>
  /** What GET /alerts/<id> answers for that id; by default an alert is made up from the id. */
  setAlert (id: string, alert: Record<string, unknown>): void
  setLatency (ms: number): void
  /** Each request fails with probability `rate`, in one of `modes` picked at random (soak runs). */
  failRandomly (rate: number, modes: Array<Exclude<FailureMode, 'refused'>>): void
  /**
   * Raises alerts at Threat Stack: seeded and deterministic. Both the list endpoint and
   * GET /alerts/<id> serve them. Returns the full alerts, in created order.
   */
  raiseAlerts (options: RaiseOptions): Array<Record<string, unknown>>
  /** Raises one alert exactly as given (it needs an `id` and `createdAt`, ISO or ms). */
  raiseAlert (alert: Record<string, unknown>): void
  /** Every alert raised so far, in created order. */
  readonly raised: Array<Record<string, unknown>>
  /** Alerts per list page (at most 100, as Threat Stack). */
  setPageSize (size: number): void
  /** Counts every authorized request against `limit` per window; undefined: no limit. */
  setRateLimit (limit: RateLimit | undefined): void
  /** With `true`, GET /alerts/<id> answers 404 for an id neither raised nor set, as Threat Stack does. */
  knownOnly (on: boolean): void
  close (): Promise<void>
}

/** mulberry32: a small seeded generator, enough to make test data repeatable. */
function seeded (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const hex = (n: number, width: number): string => Math.floor(n).toString(16).padStart(width, '0').slice(-width)

/** The ms of a list entry's or full alert's creation: `createdAt` (ISO or ms) or `created_at`. */
export function raisedAtMs (alert: Record<string, unknown>): number {
  const value = alert.createdAt ?? alert.created_at
  if (typeof value === 'number') return value
  if (typeof value === 'string') return /^\d+$/.test(value) ? Number(value) : Date.parse(value)
  return Number.NaN
}

const LIST_FIELDS = ['id', 'title', 'dataSource', 'createdAt', 'isDismissed', 'dismissedAt', 'severity', 'agentId', 'rulesetId', 'ruleId', 'hostname']

/** What the list API shows of an alert: its summary fields, not its details. */
function listEntry (alert: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(alert).filter(([k]) => LIST_FIELDS.includes(k)))
}

/** `from`/`until` of the list API: ISO 8601 or milliseconds. */
function instantParam (value: string | null): number | undefined {
  if (value === null) return undefined
  const ms = /^\d+$/.test(value) ? Number(value) : Date.parse(value)
  return Number.isFinite(ms) ? ms : undefined
}

/** A made-up full alert; a 24-hex id (a MongoDB ObjectId, as Threat Stack uses) carries its creation second. */
export function simulatedAlert (id: string): Record<string, unknown> {
  const seconds = /^[0-9a-f]{24}$/.test(id) ? parseInt(id.slice(0, 8), 16) : 1_484_521_800
  return {
    id,
    title: 'Simulated alert: user login from an unexpected address',
    created_at: seconds * 1000,
    severity: 2,
    source: 'simulator',
    server_or_region: 'sim-host-1',
    rule: { name: 'Unexpected login', type: 'host' },
    dismissed: false
  }
}

const HTML_503 = '<html><head><title>503 Service Temporarily Unavailable</title></head><body><center><h1>503 Service Temporarily Unavailable</h1></center><hr><center>nginx</center></body></html>'

function sendJson (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers })
  res.end(text)
}

export async function startThreatStackSimulator (options: SimulatorOptions): Promise<ThreatStackSimulator> {
  const alerts = new Map<string, Record<string, unknown>>()
  const requests: RecordedRequest[] = []
  let failure: { mode: FailureMode, remaining: number, retryAfter: string, path?: RegExp } | undefined
  let latencyMs = options.latencyMs ?? 0
  const raised = new Map<string, Record<string, unknown>>()
  let raisedOrder: Array<Record<string, unknown>> | undefined
  let pageSize = 100
  let rateLimit: RateLimit | undefined
  let windowStart = 0
  let windowUsed = 0
  let strictIds = false

  const ordered = (): Array<Record<string, unknown>> => {
    raisedOrder ??= [...raised.values()].sort((a, b) => raisedAtMs(a) - raisedAtMs(b) || String(a.id).localeCompare(String(b.id)))
    return raisedOrder
  }

  /** Rate-limit headers for this request; `limited` when it is over the limit. */
  function countRequest (now: number): { headers: Record<string, string>, limited: boolean } {
    if (rateLimit === undefined) return { headers: {}, limited: false }
    if (now - windowStart >= rateLimit.windowMs) {
      windowStart = now
      windowUsed = 0
    }
    const resetSeconds = Math.max(1, Math.ceil((windowStart + rateLimit.windowMs - now) / 1000))
    const limited = windowUsed >= rateLimit.limit
    if (!limited) windowUsed++
    return {
      limited,
      headers: {
        'x-rate-limit-limit': String(rateLimit.limit),
        'x-rate-limit-remaining': String(Math.max(0, rateLimit.limit - windowUsed)),
        'x-rate-limit-reset': String(resetSeconds),
        ...(limited && { 'retry-after': String(resetSeconds) })
      }
    }
  }

  /**
   * GET /alerts?from&until&status[&token]: the alerts created in [from, until) with that status,
   * oldest first, a page at a time; `token` (opaque) names the next page, null on the last.
   */
  function listPage (params: URLSearchParams): { status: number, body: unknown } {
    let offset = 0
    let fromMs = instantParam(params.get('from'))
    let untilMs = instantParam(params.get('until'))
    let status = params.get('status') ?? 'active'
    const token = params.get('token')
    if (token !== null) {
      try {
        const decoded = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { o: number, f: number, u: number, s: string }
        offset = decoded.o
        fromMs = decoded.f
        untilMs = decoded.u
        status = decoded.s
      } catch {
        return { status: 400, body: { errors: ['Invalid token'] } }
      }
    }
    if (fromMs === undefined || untilMs === undefined || (status !== 'active' && status !== 'dismissed')) {
      return { status: 400, body: { errors: ['from, until and status (active or dismissed) are required'] } }
    }
    const matching = ordered().filter((a) => {
      const t = raisedAtMs(a)
      return t >= (fromMs as number) && t < (untilMs as number) && (a.isDismissed === true) === (status === 'dismissed')
    })
    const page = matching.slice(offset, offset + pageSize)
    const next = offset + pageSize < matching.length
      ? Buffer.from(JSON.stringify({ o: offset + pageSize, f: fromMs, u: untilMs, s: status })).toString('base64url')
      : null
    return { status: 200, body: { alerts: page.map(listEntry), token: next } }
  }

  async function authorized (req: IncomingMessage): Promise<boolean> {
    const { userId, organizationId, apiKey } = options
    if (userId === undefined || organizationId === undefined) return req.headers.authorization === apiKey
    try {
      const { artifacts } = await Hawk.server.authenticate(req, (id) => {
        if (id !== userId) throw new Error('unknown Hawk id')
        return { id, key: apiKey, algorithm: 'sha256', user: id }
      })
      return artifacts.ext === organizationId
    } catch {
      return false
    }
  }

  let random: { rate: number, modes: Array<Exclude<FailureMode, 'refused'>> } | undefined

  function nextFailure (path: string): { mode: FailureMode, retryAfter: string } | undefined {
    if (failure?.path !== undefined && !failure.path.test(path)) return undefined
    if (failure === undefined) {
      if (random === undefined || Math.random() >= random.rate) return undefined
      return { mode: random.modes[Math.floor(Math.random() * random.modes.length)] as FailureMode, retryAfter: '1' }
    }
    const { mode, retryAfter } = failure
    failure.remaining -= 1
    if (failure.remaining <= 0) failure = undefined
    return { mode, retryAfter }
  }

  async function handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://simulator')
    const ok = await authorized(req)
    const recorded: RecordedRequest = { method: req.method ?? '', path: url.pathname + url.search, authorized: ok, at: Date.now() }
    requests.push(recorded)
    if (latencyMs > 0) await new Promise((resolve) => setTimeout(resolve, latencyMs))

    const failing = nextFailure(recorded.path)
    if (failing !== undefined) recorded.fault = failing.mode
    switch (failing?.mode) {
      case 'hang': return
      case 'reset':
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '4096' })
        res.write('{"id": "partial", "title": "')
        setTimeout(() => req.socket.destroy(), 20)
        return
      case 'html-503':
        res.writeHead(503, { 'content-type': 'text/html' })
        res.end(HTML_503)
        return
      case 'json-401': return sendJson(res, 401, { errors: ['Unauthorized'] })
      case 'json-404': return sendJson(res, 404, { errors: ['Not Found'] })
      case 'json-429': return sendJson(res, 429, { errors: ['Too Many Requests'] }, { 'retry-after': failing?.retryAfter ?? '7' })
      case 'json-500': return sendJson(res, 500, { errors: ['Internal Server Error'] })
      case 'invalid-json':
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end('{"id": "587c0159a907346eccb84004", "title": ')
        return
      case 'deep-json': {
        // 10,000 levels: JSON.parse takes it, serializing it again exhausts the stack.
        const text = `{"id": "587c0159a907346eccb84004", "nested": ${'['.repeat(10_000)}${']'.repeat(10_000)}}`
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
        res.end(text)
        return
      }
      case 'oversized':
        return sendJson(res, 200, { id: 'big', padding: 'x'.repeat(8 * 1024 * 1024) })
      default:
    }

    if (!ok) return sendJson(res, 401, { errors: ['Unauthorized'] })
    const counted = countRequest(Date.now())
    if (counted.limited) {
      recorded.rateLimited = true
      return sendJson(res, 429, { errors: ['Rate limit exceeded'] }, counted.headers)
    }
    if (req.method !== 'GET') return sendJson(res, 405, { errors: ['Method Not Allowed'] }, counted.headers)
    const match = /\/alerts\/([^/]+)$/.exec(url.pathname)
    if (match !== null) {
      const id = decodeURIComponent(match[1] as string)
      const known = raised.get(id) ?? alerts.get(id)
      if (known === undefined && strictIds) return sendJson(res, 404, { errors: ['Not Found'] }, counted.headers)
      return sendJson(res, 200, known ?? simulatedAlert(id), counted.headers)
    }
    if (url.pathname.endsWith('/alerts') && ['from', 'until', 'status', 'token'].some((p) => url.searchParams.has(p))) {
      const page = listPage(url.searchParams)
      return sendJson(res, page.status, page.body, counted.headers)
    }
    if (url.pathname.endsWith('/alerts')) {
      const count = Math.max(1, Math.min(Number(url.searchParams.get('count') ?? 10) || 10, 100))
      return sendJson(res, 200, { alerts: [...alerts.values()].slice(0, count) })
    }
    return sendJson(res, 404, { errors: ['Not Found'] })
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy())
  })
  const local = loopback(server, 'simulator')

  const port = await local.listen(options.port ?? 0)

  return {
    url: `http://127.0.0.1:${port}/v2`,
    port,
    requests,
    async failWith (mode, times = Number.POSITIVE_INFINITY, options = {}) {
      if (mode === 'refused') {
        failure = undefined
        await local.stop()
        return
      }
      failure = { mode, remaining: times, retryAfter: options.retryAfter ?? '7', ...(options.path !== undefined && { path: options.path }) }
    },
    async heal () {
      failure = undefined
      random = undefined
      if (!local.listening) await local.listen(port)
    },
    setAlert (id, alert) { alerts.set(id, alert) },
    setLatency (ms) { latencyMs = ms },
    failRandomly (rate, modes) { random = { rate, modes } },
    raiseAlerts ({ count, fromMs, untilMs, seed = 1, dismissedShare = 0.25 }) {
      const next = seeded(seed)
      const made: Array<Record<string, unknown>> = []
      for (let i = 0; i < count; i++) {
        const createdMs = fromMs + Math.floor(next() * (untilMs - fromMs))
        // A MongoDB ObjectId, as Threat Stack uses: its creation second, then random bytes.
        const id = hex(createdMs / 1000, 8) + hex(next() * 0xffffffff, 8) + hex(next() * 0xffffffff, 8)
        const dismissed = next() < dismissedShare
        const alert: Record<string, unknown> = {
          id,
          title: `Simulated alert ${i + 1}: user login from an unexpected address`,
          dataSource: 'host',
          createdAt: new Date(createdMs).toISOString(),
          isDismissed: dismissed,
          dismissedAt: dismissed ? new Date(createdMs + 60_000).toISOString() : null,
          severity: 1 + Math.floor(next() * 3),
          agentId: `agent-${hex(next() * 0xffff, 4)}`,
          rulesetId: 'ruleset-sim',
          ruleId: `rule-${1 + Math.floor(next() * 5)}`,
          hostname: 'sim-host-1',
          details: { user: 'root', address: '203.0.113.7' }
        }
        raised.set(id, alert)
        made.push(alert)
      }
      raisedOrder = undefined
      return made.sort((a, b) => raisedAtMs(a) - raisedAtMs(b))
    },
    raiseAlert (alert) {
      raised.set(String(alert.id), alert)
      raisedOrder = undefined
    },
    get raised () { return [...ordered()] },
    setPageSize (size) { pageSize = Math.max(1, Math.min(size, 100)) },
    setRateLimit (limit) {
      rateLimit = limit
      windowStart = 0
      windowUsed = 0
    },
    knownOnly (on) { strictIds = on },
    get openConnections () { return local.openConnections },
    async close () { await local.stop() }
  }
}
