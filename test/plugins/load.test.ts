import t from 'tap'
import { connect, type AddressInfo } from 'node:net'
import { once } from 'node:events'
import { build, BEARER, TOKENS } from '../helpers/build.js'
import { assertError } from '../helpers/requests.js'
import { sample } from '../helpers/metrics.js'

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

t.test('webhooks beyond the in-flight limit are taken with their enrichment deferred, not shed', async (t) => {
  // The first two wait long for Threat Stack (well within their wait), so all six are in flight at once.
  const { app, threatstack, readObject } = await build(t, {
    env: { LOAD_MAX_IN_FLIGHT_WEBHOOKS: '2', LOAD_RETRY_AFTER_SECONDS: '3', ENRICH_WAIT_MS: '20000', THREATSTACK_TIMEOUT_MS: '10000' }
  })
  threatstack.setLatency(1500)
  const results = await Promise.all(Array.from({ length: 6 }, async (_, i) => await app.inject({
    method: 'POST', url: '/api/v1/s3/alert', headers: BEARER.ingest, payload: { id: `burst-${i}-x`, created_at: 1484521800000 }
  })))
  t.same(results.map((r) => r.statusCode), [200, 200, 200, 200, 200, 200], 'every webhook whose record can be stored gets its 200')
  const bodies = results.map((r) => r.json() as { archived: string[], pending: Array<{ id: string }> })
  t.equal(bodies.filter((b) => b.pending.length === 1 && b.archived.length === 0).length, 4, 'those beyond the limit do not wait for Threat Stack')
  for (let i = 0; i < 6; i++) t.ok(await readObject(`webhooks/2017/01/15/23/10/burst-${i}-x`), `record of burst-${i}-x`)
  let complete = false
  for (let round = 0; round < 100 && !complete; round++) {
    complete = (await Promise.all(Array.from({ length: 6 }, async (_, i) => await readObject(`alerts/bu/rs/burst-${i}-x`)))).every((o) => o !== undefined)
    if (!complete) await sleep(100)
  }
  t.ok(complete, 'the deferred full alerts are completed in the background')
  const metrics = await app.inject({ method: 'GET', url: '/metrics', headers: BEARER.read })
  t.equal(sample(metrics.body, 'threatstack_to_s3_requests_shed_total'), 0, 'nothing shed')
  t.equal(sample(metrics.body, 'threatstack_to_s3_webhooks_deferred_total'), 4, 'the deferred are counted')

  threatstack.setLatency(0)
  const after = await app.inject({ method: 'POST', url: '/api/v1/s3/alert', headers: BEARER.ingest, payload: { id: 'after-burst', created_at: 1 } })
  t.same(after.json(), { success: true, archived: ['after-burst'], pending: [] }, 'the slots are released')
  const reads = await Promise.all(Array.from({ length: 5 }, async () => await app.inject({ method: 'GET', url: '/api/v1/s3/alert/after-burst', headers: BEARER.read })))
  t.same(reads.map((r) => r.statusCode), [200, 200, 200, 200, 200], 'reads are not counted as webhooks')
})

t.test('far beyond the in-flight limit (four times it), webhooks are shed with 503 and Retry-After', async (t) => {
  const { app, s3proxy } = await build(t, { s3Proxy: true, env: { LOAD_MAX_IN_FLIGHT_WEBHOOKS: '1', LOAD_RETRY_AFTER_SECONDS: '3' } })
  // Records held: every webhook stays in flight until the hold ends.
  await s3proxy!.failWith('hold', { match: /^PUT \/[^/]+\/webhooks\// })
  const shed: Array<Awaited<ReturnType<typeof app.inject>>> = []
  const posts = Array.from({ length: 6 }, async (_, i) => {
    const res = await app.inject({
      method: 'POST', url: '/api/v1/s3/alert', headers: BEARER.ingest, payload: { id: `flood-${i}-x`, created_at: 1484521800000 }
    })
    shed.push(res)
    return res
  })
  for (let round = 0; round < 100 && shed.length < 2; round++) await sleep(50)
  t.equal(shed.length, 2, 'two answered at once, while four are held')
  for (const res of shed) {
    assertError(t, res, 503, 'ServiceUnavailableError')
    t.equal(res.headers['retry-after'], '3')
  }
  await s3proxy!.heal()
  const all = await Promise.all(posts)
  t.equal(all.filter((r) => r.statusCode === 200).length, 4, 'the four taken are answered 200 once their records are stored')
})

t.test('a saturated event loop sheds requests, /health still answers, and the process recovers', async (t) => {
  const { app } = await build(t, { env: { LOAD_MAX_EVENT_LOOP_DELAY_MS: '200' } })
  const probe = async (): Promise<number> => (await app.inject({ method: 'GET', url: '/api/v1/s3/alert/pressure1', headers: BEARER.read })).statusCode
  t.equal(await probe(), 404, 'served before the pressure')

  let shed
  for (let round = 0; round < 20 && shed === undefined; round++) {
    // Keep the event loop busy, as a CPU-bound burst would.
    const until = Date.now() + 600
    while (Date.now() < until) { /* busy */ }
    await sleep(5)
    const res = await app.inject({ method: 'GET', url: '/api/v1/s3/alert/pressure1', headers: BEARER.read })
    if (res.statusCode === 503) {
      shed = res
      const health = await app.inject({ method: 'GET', url: '/health' })
      t.equal(health.statusCode, 200, '/health is never shed')
      // A webhook is not shed: its record is stored, its enrichment deferred.
      const webhook = await app.inject({ method: 'POST', url: '/api/v1/s3/alert', headers: BEARER.ingest, payload: { id: 'pressure-hook', created_at: 1 } })
      t.same(webhook.json(), { success: true, archived: [], pending: [{ id: 'pressure-hook' }] }, 'a webhook under pressure is taken, its enrichment deferred')
    }
  }
  t.ok(shed !== undefined, 'a request was shed under pressure')
  if (shed !== undefined) {
    assertError(t, shed, 503, 'ServiceUnavailableError')
    t.ok(Number(shed.headers['retry-after']) >= 1, 'with Retry-After')
  }

  let recovered = false
  for (let round = 0; round < 60 && !recovered; round++) {
    await sleep(250)
    recovered = await probe() === 404
  }
  t.ok(recovered, 'served again once the loop is free')
})

interface Trickler {
  /** The raw answer, once the server has sent it and closed (or the bound passed). */
  answer: Promise<string>
}

/** A sender on a raw socket that sends its head, then its body a byte every `everyMs`, never finishing it. */
function trickler (port: number, requestId: string, everyMs = 100): Trickler {
  const socket = connect({ port, host: '127.0.0.1' })
  socket.setEncoding('utf8')
  socket.write(`POST /api/v1/s3/alert HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer ${TOKENS.ingest}\r\n` +
    `Content-Type: application/json\r\nContent-Length: 4096\r\nx-request-id: ${requestId}\r\n\r\n{`)
  let received = ''
  let writes = 0
  const timer = setInterval(() => {
    // Bounded: 300 bytes at most, far fewer than the 4096 announced.
    if (writes++ >= 300 || socket.destroyed) clearInterval(timer)
    else socket.write(' ')
  }, everyMs)
  const answer = new Promise<string>((resolve) => {
    const done = (): void => {
      clearInterval(timer)
      socket.destroy()
      resolve(received)
    }
    socket.on('data', (chunk: string) => {
      received += chunk
      // The whole envelope is in once its JSON closes.
      if (/\r\n\r\n\{.*\}\s*$/s.test(received)) done()
    })
    socket.on('close', done)
    socket.on('error', done)
  })
  return { answer }
}

t.test('senders that trickle their bodies hold no webhook slot, and get a 408 envelope at BODY_TIMEOUT_MS', async (t) => {
  const built = await build(t, { env: { LOAD_MAX_IN_FLIGHT_WEBHOOKS: '1', BODY_TIMEOUT_MS: '3000' } })
  const { app } = built
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  const slow = [trickler(port, 'trickler-1'), trickler(port, 'trickler-2')]
  // Both are past their token check and reading their bodies before the others come.
  for (let i = 0; i < 200; i++) {
    const seen = new Set(built.logs.filter((l) => l.msg === 'incoming request').map((l) => l.reqId))
    if (seen.has('trickler-1') && seen.has('trickler-2')) break
    await sleep(25)
  }
  await sleep(100)

  for (let i = 0; i < 3; i++) {
    const res = await fetch(`http://127.0.0.1:${port}/api/v1/s3/alert`, {
      method: 'POST',
      headers: { ...BEARER.ingest, 'content-type': 'application/json' },
      body: JSON.stringify({ id: `beside-trickler-${i}`, created_at: 1484521800000 })
    })
    t.equal(res.status, 200, `webhook ${i} is served while two bodies trickle in, with a limit of one`)
    await res.arrayBuffer()
  }

  for (const [i, { answer }] of slow.entries()) {
    const raw = await answer
    t.match(raw, /^HTTP\/1\.1 408 /, `trickler ${i + 1} is answered 408`)
    t.match(raw, /\r\nconnection: close\r\n/i, 'and its connection closed')
    const body = JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4)) as { success: boolean, error: { type: string, message: string, requestId: string } }
    t.same(body, { success: false, error: { type: 'RequestTimeoutError', message: 'Request took too long to arrive', requestId: `trickler-${i + 1}` } })
  }
  const metrics = await app.inject({ method: 'GET', url: '/metrics', headers: BEARER.read })
  t.equal(sample(metrics.body, 'threatstack_to_s3_requests_shed_total'), 0, 'nothing was shed')
  const after = await app.inject({ method: 'POST', url: '/api/v1/s3/alert', headers: BEARER.ingest, payload: { id: 'after-tricklers', created_at: 1 } })
  t.equal(after.statusCode, 200, 'the service serves on')
})

t.test('a body that arrives in time is not cut off, however slowly its parts come', async (t) => {
  const { app } = await build(t, { env: { BODY_TIMEOUT_MS: '10000' } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  const body = JSON.stringify({ id: 'slow-but-in-time', created_at: 1484521800000 })
  const socket = connect({ port, host: '127.0.0.1' })
  socket.setEncoding('utf8')
  socket.write(`POST /api/v1/s3/alert HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${TOKENS.ingest}\r\n` +
    `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n`)
  for (const part of [body.slice(0, 10), body.slice(10, 20), body.slice(20)]) {
    await sleep(100)
    socket.write(part)
  }
  let raw = ''
  socket.on('data', (chunk: string) => { raw += chunk })
  await once(socket, 'close')
  t.match(raw, /^HTTP\/1\.1 200 /)
  t.match(raw, /"archived":\["slow-but-in-time"\]/)
})
