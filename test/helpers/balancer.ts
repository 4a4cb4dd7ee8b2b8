// A round-robin HTTP balancer on loopback, for tests that run several replicas. Like a real
// balancer, a backend that refuses or drops a connection is taken out of rotation and the
// caller gets a 502 (it is up to the caller to retry).
import { createServer, request as forward, type Server } from 'node:http'
import { once } from 'node:events'

export interface Balancer {
  url: string
  /** Requests each backend was sent. */
  sent: number[]
  close (): Promise<void>
}

export async function startBalancer (backends: string[]): Promise<Balancer> {
  const up = backends.map(() => true)
  const sent = backends.map(() => 0)
  let next = 0
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => { pass(true) })
    // Like nginx's proxy_next_upstream error: a refused connection never reached the backend, so it goes to the next one.
    const pass = (first: boolean): void => {
      const candidates = backends.map((_, i) => (next + i) % backends.length).filter((i) => up[i])
      const index = candidates[0]
      if (first) next = (next + 1) % backends.length
      if (index === undefined) {
        res.writeHead(503, { 'content-type': 'text/html' }).end('<html>no backend</html>')
        return
      }
      sent[index] = (sent[index] ?? 0) + 1
      const target = new URL(backends[index] as string)
      const out = forward({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers)
        answer.pipe(res)
      })
      out.on('error', (err: NodeJS.ErrnoException) => {
        up[index] = false
        if (err.code === 'ECONNREFUSED' && !res.headersSent) return pass(false)
        if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/html' }).end('<html>502 Bad Gateway</html>')
        else res.destroy()
      })
      out.end(Buffer.concat(chunks))
    }
  })
  server.keepAliveTimeout = 1000
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('no address')
  return {
    url: `http://127.0.0.1:${address.port}`,
    sent,
    async close () {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
    }
  }
}
