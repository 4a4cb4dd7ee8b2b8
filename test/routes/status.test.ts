import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { build } from '../helpers/build.js'
import { assertNoLeak } from '../helpers/leaks.js'

type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

const STATUS_URLS = ['/api/v1/s3/status', '/threatstack-to-s3/api/v1/s3/status']

const checks = (requests: Array<{ path: string }>): number => requests.filter((r) => r.path.endsWith('/alerts?count=1')).length

function assertStatusBody (t: Tap, body: string, s3: boolean, threatstack: boolean): void {
  const json = JSON.parse(body) as Record<string, unknown>
  t.same(json, { success: s3 && threatstack, s3: { success: s3 }, threatstack: { success: threatstack } }, 'exactly the booleans')
  t.same(Object.keys(json).sort(), ['s3', 'success', 'threatstack'], 'no other key')
  assertNoLeak(t, body)
}
t.test('GET /status: both up is 200, with no token, under both prefixes', async (t) => {
  for (const url of STATUS_URLS) {
    const { app, threatstack } = await build(t)
    const res = await app.inject({ method: 'GET', url })
    t.equal(res.statusCode, 200, url)
    t.match(res.headers['content-type'], /^application\/json/)
    assertStatusBody(t, res.body, true, true)
    t.match(threatstack.requests, [{ method: 'GET', path: '/v2/alerts?count=1', authorized: true }], 'an authenticated check')
  }
})

t.test('GET /status with the legacy API key', async (t) => {
  const { app, threatstack } = await build(t, { hawk: false })
  const res = await app.inject({ method: 'GET', url: STATUS_URLS[0] as string })
  t.equal(res.statusCode, 200)
  assertStatusBody(t, res.body, true, true)
  t.match(threatstack.requests, [{ path: '/v2/alerts?count=1', authorized: true }])
})

t.test('GET /status when Threat Stack is down is 503 with threatstack false only', async (t) => {
  for (const mode of ['refused', 'json-500', 'json-401', 'html-503', 'invalid-json', 'hang'] as const) {
    t.test(mode, async (t) => {
      const { app, threatstack, logs } = await build(t)
      await threatstack.failWith(mode)
      const res = await app.inject({ method: 'GET', url: STATUS_URLS[0] as string })
      t.equal(res.statusCode, 503)
      t.match(res.headers['content-type'], /^application\/json/)
      assertStatusBody(t, res.body, true, false)
      t.ok(logs.some((l) => l.level === 40 && l.dependency === 'threatstack'), 'the failure is logged as a warning')
    })
  }
})

t.test('GET /status when S3 fails is 503 with s3 false only', async (t) => {
  t.test('bucket missing', async (t) => {
    const { app } = await build(t, { env: { TS_AWS_S3_BUCKET: 'no-such-bucket-here' } })
    const res = await app.inject({ method: 'GET', url: STATUS_URLS[1] as string })
    t.equal(res.statusCode, 503)
    assertStatusBody(t, res.body, false, true)
    t.notMatch(res.body, /no-such-bucket-here/)
  })
  t.test('S3 down', async (t) => {
    const { app, s3 } = await build(t)
    await s3.close()
    const res = await app.inject({ method: 'GET', url: STATUS_URLS[0] as string })
    t.equal(res.statusCode, 503)
    assertStatusBody(t, res.body, false, true)
  })
  t.test('both down', async (t) => {
    const { app, s3, threatstack } = await build(t)
    await s3.close()
    await threatstack.failWith('refused')
    const res = await app.inject({ method: 'GET', url: STATUS_URLS[0] as string })
    t.equal(res.statusCode, 503)
    assertStatusBody(t, res.body, false, false)
  })
})

t.test('GET /status is cached: calls in a row make one Threat Stack request', async (t) => {
  const { app, threatstack } = await build(t)
  const first = await app.inject({ method: 'GET', url: STATUS_URLS[0] as string })
  const second = await app.inject({ method: 'GET', url: STATUS_URLS[0] as string })
  const legacy = await app.inject({ method: 'GET', url: STATUS_URLS[1] as string })
  t.equal(first.statusCode, 200)
  t.equal(second.statusCode, 200)
  t.equal(legacy.statusCode, 200)
  t.equal(checks(threatstack.requests), 1, 'one check for three calls (one cache for both prefixes)')

  const burst = await Promise.all(Array.from({ length: 10 }, async () => app.inject({ method: 'GET', url: STATUS_URLS[0] as string })))
  t.ok(burst.every((r) => r.statusCode === 200))
  t.equal(checks(threatstack.requests), 1, 'a burst does not reach Threat Stack')
})

t.test('GET /status caches a failure too, and recovers once the cache expires', async (t) => {
  const { app, threatstack } = await build(t, { env: { STATUS_CACHE_MS: '0' } })
  await threatstack.failWith('json-500')
  t.equal((await app.inject({ method: 'GET', url: STATUS_URLS[0] as string })).statusCode, 503)
  await threatstack.heal()
  const res = await app.inject({ method: 'GET', url: STATUS_URLS[0] as string })
  t.equal(res.statusCode, 200, 'with STATUS_CACHE_MS=0 every call checks again')
  t.equal(checks(threatstack.requests), 2)

  const cached = await build(t)
  await cached.threatstack.failWith('json-500', 1)
  t.equal((await cached.app.inject({ method: 'GET', url: STATUS_URLS[0] as string })).statusCode, 503)
  t.equal((await cached.app.inject({ method: 'GET', url: STATUS_URLS[0] as string })).statusCode, 503, 'the cached answer, though Threat Stack is back')
  t.equal(checks(cached.threatstack.requests), 1)
})

t.test('GET /health is 200 {status: ok} and touches no upstream', async (t) => {
  const { app, threatstack, s3 } = await build(t)
  const res = await app.inject({ method: 'GET', url: '/health' })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^application\/json/)
  t.same(res.json(), { status: 'ok' })
  t.equal(threatstack.requests.length, 0, 'no Threat Stack request')

  // Still ok with both upstreams gone: liveness is about the process only.
  await s3.close()
  await threatstack.failWith('refused')
  const down = await app.inject({ method: 'GET', url: '/health' })
  t.equal(down.statusCode, 200)
  t.same(down.json(), { status: 'ok' })
})

t.test('the two checks run at once: Threat Stack is asked while the S3 check is still waiting', async (t) => {
  const { app, threatstack, s3proxy } = await build(t, { s3Proxy: true, env: { STATUS_TIMEOUT_MS: '5000' } })
  await s3proxy!.failWith('hold')
  const status = app.inject({ method: 'GET', url: '/api/v1/s3/status' })
  let both = false
  for (let i = 0; i < 150 && !both; i++) {
    both = checks(threatstack.requests) === 1 && s3proxy!.requests.some((r) => r.fault === 'hold')
    if (!both) await sleep(20)
  }
  t.ok(both, 'both upstreams were asked before either answered')
  await s3proxy!.heal()
  const res = await status
  t.equal(res.statusCode, 200)
  assertStatusBody(t, res.body, true, true)
})
