import t from 'tap'
import { build, BEARER } from '../helpers/build.js'
import { assertError } from '../helpers/requests.js'
import { sample } from '../helpers/metrics.js'

t.test('GET /metrics: Prometheus text whose counters move with the traffic', async (t) => {
  const { app, threatstack } = await build(t, { env: { THREATSTACK_RETRIES: '1', THREATSTACK_RETRY_BASE_MS: '1' } })
  const scrape = async (): Promise<string> => {
    const res = await app.inject({ method: 'GET', url: '/metrics', headers: BEARER.read })
    t.equal(res.statusCode, 200)
    t.match(res.headers['content-type'], /^text\/plain/)
    return res.body
  }
  const before = await scrape()
  t.equal(sample(before, 'threatstack_to_s3_alerts_archived_total'), 0)
  t.match(before, /threatstack_to_s3_process_resident_memory_bytes \d+/, 'process metrics too')

  const post = await app.inject({
    method: 'POST',
    url: '/api/v1/s3/alert',
    headers: BEARER.ingest,
    payload: { alerts: [{ id: 'metric-0001', created_at: 1484521800000 }, { id: 'metric-0002', created_at: 1484521800000 }] }
  })
  t.equal(post.statusCode, 200)
  await threatstack.failWith('json-500', 1)
  t.equal((await app.inject({ method: 'POST', url: '/api/v1/s3/alert', headers: BEARER.ingest, payload: { id: 'metric-0003', created_at: 1 } })).statusCode, 200, 'a retry saves it')
  await threatstack.failWith('json-404', 1)
  const pending = await app.inject({ method: 'POST', url: '/api/v1/s3/alert', headers: BEARER.ingest, payload: { id: 'metric-0004', created_at: 1 } })
  t.equal(pending.statusCode, 200, 'its record is stored: the sender is done')
  t.equal((pending.json() as { pending: Array<{ error?: { type: string } }> }).pending[0]?.error?.type, 'ThreatStackAPIError')
  // The background retry completes it.
  let completed = false
  for (let i = 0; i < 100 && !completed; i++) {
    completed = sample(await scrape(), 'threatstack_to_s3_alerts_archived_total') === 4
    if (!completed) await new Promise((resolve) => setTimeout(resolve, 50))
  }
  t.ok(completed, 'the pending alert is archived in the background')
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/s3/alert/metric-0001', headers: BEARER.read })).statusCode, 200)
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/s3/alert/absent-01', headers: BEARER.read })).statusCode, 404)

  const after = await scrape()
  t.equal(sample(after, 'threatstack_to_s3_alerts_archived_total'), 4, 'four alerts fully archived')
  t.equal(sample(after, 'threatstack_to_s3_alerts_received_total'), 4, 'four alerts received')
  t.equal(sample(after, 'threatstack_to_s3_alerts_pending'), 0, 'none owed any more')
  t.equal(sample(after, 'threatstack_to_s3_upstream_requests_total', { upstream: 'threatstack', outcome: 'success' }), 4)
  t.equal(sample(after, 'threatstack_to_s3_upstream_requests_total', { upstream: 'threatstack', outcome: 'http_5xx' }), 1)
  t.equal(sample(after, 'threatstack_to_s3_upstream_requests_total', { upstream: 'threatstack', outcome: 'http_4xx' }), 1)
  t.equal(sample(after, 'threatstack_to_s3_upstream_retries_total', { upstream: 'threatstack' }), 1)
  // Four records and their four search index entries, four full alerts, the background's
  // check that the record is stored, the GET found.
  t.equal(sample(after, 'threatstack_to_s3_upstream_requests_total', { upstream: 's3', outcome: 'success' }), 4 + 4 + 4 + 1 + 1, 'PUTs, HEAD and the GET found')
  t.equal(sample(after, 'threatstack_to_s3_upstream_requests_total', { upstream: 's3', outcome: 'not_found' }), 1)
  t.equal(sample(after, 'threatstack_to_s3_upstream_request_duration_seconds_count', { upstream: 's3', outcome: 'success' }), 14)
  t.equal(sample(after, 'threatstack_to_s3_http_request_duration_seconds_count', { method: 'POST', route: '/api/v1/s3/alert', status_code: '200' }), 3)
  t.equal(sample(after, 'threatstack_to_s3_http_request_duration_seconds_count', { method: 'GET', route: '/api/v1/s3/alert/:alert_id', status_code: '404' }), 1, 'by route pattern, not raw URL')
  t.notMatch(after, /metric-0001|absent-01/, 'no id in any label')
  t.equal(sample(after, 'threatstack_to_s3_requests_shed_total'), 0)
})

t.test('GET /metrics needs a read token', async (t) => {
  const { app } = await build(t)
  assertError(t, await app.inject({ method: 'GET', url: '/metrics' }), 401, 'AuthenticationError')
  assertError(t, await app.inject({ method: 'GET', url: '/metrics', headers: BEARER.ingest }), 403, 'AuthorizationError')
})
