import t from 'tap'
import { build, BEARER } from '../helpers/build.js'
import { assertError } from '../helpers/requests.js'
import { sample } from '../helpers/metrics.js'

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

t.test('webhooks beyond the in-flight limit are shed with 503 and Retry-After, then served again', async (t) => {
  const { app, threatstack, readObject } = await build(t, { env: { LOAD_MAX_IN_FLIGHT_WEBHOOKS: '2', LOAD_RETRY_AFTER_SECONDS: '3' } })
  threatstack.setLatency(300)
  const results = await Promise.all(Array.from({ length: 6 }, async (_, i) => await app.inject({
    method: 'POST', url: '/api/v1/s3/alert', headers: BEARER.ingest, payload: { id: `burst-${i}-x`, created_at: 1484521800000 }
  })))
  const ok = results.filter((r) => r.statusCode === 200)
  const shed = results.filter((r) => r.statusCode === 503)
  t.equal(ok.length, 2, 'as many as the limit are served')
  t.equal(shed.length, 4, 'the rest are shed at once')
  for (const res of shed) {
    assertError(t, res, 503, 'ServiceUnavailableError')
    t.equal(res.headers['retry-after'], '3')
  }
  for (const res of ok) {
    const id = (res.json() as { archived: string[] }).archived[0] as string
    t.ok(await readObject(`alerts/${id.slice(0, 2)}/${id.slice(2, 4)}/${id}`), `${id} is complete`)
  }
  const metrics = await app.inject({ method: 'GET', url: '/metrics', headers: BEARER.read })
  t.equal(sample(metrics.body, 'threatstack_to_s3_requests_shed_total'), 4)

  threatstack.setLatency(0)
  const after = await app.inject({ method: 'POST', url: '/api/v1/s3/alert', headers: BEARER.ingest, payload: { id: 'after-burst', created_at: 1 } })
  t.equal(after.statusCode, 200, 'the slots are released')
  const reads = await Promise.all(Array.from({ length: 5 }, async () => await app.inject({ method: 'GET', url: '/api/v1/s3/alert/after-burst', headers: BEARER.read })))
  t.same(reads.map((r) => r.statusCode), [200, 200, 200, 200, 200], 'reads are not counted as webhooks')
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
