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
}

export interface ThreatStackSimulator {
  /** Base URL to configure as THREATSTACK_BASE_URL. */
  readonly url: string
  readonly port: number
  /** Every request received, in order. */
  readonly requests: RecordedRequest[]
  /** Connections open to the simulator now. */
  readonly openConnections: number
  /** Fails the next `times` requests (all of them when omitted) in `mode`; 'json-429' sends `retryAfter` (default '7'). */
  failWith (mode: FailureMode, times?: number, options?: { retryAfter?: string }): Promise<void>
  /** Back to normal answers (and listening again after 'refused'). */
  heal (): Promise<void>
  /** What GET /alerts/<id> answers for that id; by default an alert is made up from the id. */
  setAlert (id: string, alert: Record<string, unknown>): void
  setLatency (ms: number): void
  /** Each request fails with probability `rate`, in one of `modes` picked at random (soak runs). */
  failRandomly (rate: number, modes: Array<Exclude<FailureMode, 'refused'>>): void
  close (): Promise<void>
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
  let failure: { mode: FailureMode, remaining: number, retryAfter: string } | undefined
  let latencyMs = options.latencyMs ?? 0

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

  function nextFailure (): { mode: FailureMode, retryAfter: string } | undefined {
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

    const failing = nextFailure()
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
    if (req.method !== 'GET') return sendJson(res, 405, { errors: ['Method Not Allowed'] })
    const match = /\/alerts\/([^/]+)$/.exec(url.pathname)
    if (match !== null) {
      const id = decodeURIComponent(match[1] as string)
      return sendJson(res, 200, alerts.get(id) ?? simulatedAlert(id))
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
      failure = { mode, remaining: times, retryAfter: options.retryAfter ?? '7' }
    },
    async heal () {
      failure = undefined
      random = undefined
      if (!local.listening) await local.listen(port)
    },
    setAlert (id, alert) { alerts.set(id, alert) },
    setLatency (ms) { latencyMs = ms },
    failRandomly (rate, modes) { random = { rate, modes } },
    get openConnections () { return local.openConnections },
    async close () { await local.stop() }
  }
}
