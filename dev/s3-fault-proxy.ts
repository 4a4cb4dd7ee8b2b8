// An HTTP proxy in front of a local S3 server that records every request and can inject the
// faults S3 shows in production: 500 InternalError, 503 SlowDown, delays, refused connections,
// answers that trickle (headers at once, then a byte at a time, never ending: no socket ever
// goes idle); and it can hold requests until healed, to show what does or does not wait for them.
// Used by the tests and the soak run.
import { createServer, request as forward, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http'
import { loopback } from './net.js'

export type S3Fault = 'internal' | 'slowdown' | 'delay' | 'hold' | 'trickle' | 'refuse'

export interface ProxiedRequest {
  method: string
  path: string
  headers: IncomingHttpHeaders
  /** The fault it was answered with, if any. */
  fault?: Exclude<S3Fault, 'refuse'>
}

export interface S3FaultProxy {
  readonly endpoint: string
  readonly requests: ProxiedRequest[]
  /**
   * The next `times` requests (all when omitted) whose `METHOD path` matches `match` (all when
   * omitted) fail in `fault`; 'delay' holds each one `delayMs`, 'hold' until `heal()`;
   * 'trickle' sends S3's status and headers, then its body and endless padding one byte every
   * `delayMs` (default 500), until the client goes away.
   */
  failWith (fault: S3Fault, options?: { times?: number, delayMs?: number, match?: RegExp }): Promise<void>
  /** Each request fails with probability `rate`, in one of `faults` picked at random. */
  failRandomly (rate: number, faults: Array<Exclude<S3Fault, 'refuse' | 'hold'>>, delayMs?: number): void
  /** Connections open to the proxy now. */
  readonly openConnections: number
  /** Trickling answers whose client has not gone away yet. */
  readonly trickling: number
  heal (): Promise<void>
  close (): Promise<void>
}

function s3Error (code: string, message: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><RequestId>FAULTPROXY</RequestId></Error>`
}

export async function startS3FaultProxy (target: string, options: { latencyMs?: number } = {}): Promise<S3FaultProxy> {
  const latencyMs = options.latencyMs ?? 0
  const upstream = new URL(target)
  const requests: ProxiedRequest[] = []
  let fault: { kind: Exclude<S3Fault, 'refuse'>, remaining: number, delayMs: number, match: RegExp | undefined } | undefined
  let random: { rate: number, faults: Array<Exclude<S3Fault, 'refuse' | 'hold'>>, delayMs: number } | undefined
  const held: Array<() => void> = []
  let trickling = 0

  function next (request: string): { kind: Exclude<S3Fault, 'refuse'>, delayMs: number } | undefined {
    if (fault !== undefined && (fault.match === undefined || fault.match.test(request))) {
      const current = fault
      current.remaining--
      if (current.remaining <= 0) fault = undefined
      return current
    }
    if (random !== undefined && Math.random() < random.rate) {
      return { kind: random.faults[Math.floor(Math.random() * random.faults.length)] as Exclude<S3Fault, 'refuse'>, delayMs: random.delayMs }
    }
    return undefined
  }

  const server: Server = createServer((req, res) => {
    const recorded: ProxiedRequest = { method: req.method ?? '', path: req.url ?? '', headers: req.headers }
    requests.push(recorded)
    const injected = next(`${recorded.method} ${recorded.path}`)
    if (injected !== undefined) recorded.fault = injected.kind
    const send = (status: number, code: string, message: string): void => {
      req.resume()
      const body = s3Error(code, message)
      res.writeHead(status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) })
      res.end(body)
    }
    if (injected?.kind === 'internal') return send(500, 'InternalError', 'We encountered an internal error. Please try again.')
    if (injected?.kind === 'slowdown') return send(503, 'SlowDown', 'Please reduce your request rate.')
    const pass = (): void => {
      const out = forward({
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers: req.headers
      }, (answer) => {
        if (injected?.kind !== 'trickle') {
          res.writeHead(answer.statusCode ?? 502, answer.headers)
          answer.pipe(res)
          return
        }
        const chunks: Buffer[] = []
        answer.on('data', (chunk: Buffer) => chunks.push(chunk))
        answer.on('end', () => { trickle(recorded.method, res, answer.statusCode ?? 502, answer.headers, Buffer.concat(chunks), injected.delayMs) })
      })
      out.on('error', () => res.destroy())
      req.pipe(out)
    }
    if (injected?.kind === 'hold') {
      held.push(pass)
      return
    }
    const delayMs = (injected?.kind === 'delay' ? injected.delayMs : 0) + latencyMs
    if (delayMs > 0) setTimeout(pass, delayMs)
    else pass()
  })
  function trickle (method: string, res: ServerResponse, status: number, headers: IncomingHttpHeaders, body: Buffer, delayMs: number): void {
    trickling++
    let next: () => void
    if (method === 'HEAD') {
      // An answer to HEAD has no body to trickle: its headers come a byte at a time instead.
      const socket = res.socket
      socket?.write(`HTTP/1.1 ${status} OK\r\nx-trickle: `)
      next = () => { socket?.write('a') }
    } else {
      const { 'content-length': _length, ...rest } = headers
      res.writeHead(status, rest)
      res.flushHeaders()
      let sent = 0
      // After the real body, spaces: still valid JSON and XML, and never the end of the answer.
      next = () => {
        res.write(sent < body.length ? body.subarray(sent, sent + 1) : ' ')
        sent++
      }
    }
    const timer = setInterval(next, delayMs > 0 ? delayMs : 500)
    res.on('close', () => {
      clearInterval(timer)
      trickling--
    })
  }

  server.keepAliveTimeout = 65_000
  const local = loopback(server, 'proxy')

  const port = await local.listen(0)
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    async failWith (kind, options = {}) {
      if (kind === 'refuse') {
        fault = undefined
        await local.stop()
        return
      }
      fault = { kind, remaining: options.times ?? Number.POSITIVE_INFINITY, delayMs: options.delayMs ?? 0, match: options.match }
    },
    failRandomly (rate, faults, delayMs = 0) { random = { rate, faults, delayMs } },
    get openConnections () { return local.openConnections },
    get trickling () { return trickling },
    async heal () {
      fault = undefined
      random = undefined
      for (const release of held.splice(0)) release()
      if (!local.listening) await local.listen(port)
    },
    async close () { await local.stop() }
  }
}
