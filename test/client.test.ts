import t from 'tap'
import { readFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { createArchiveClient, type ArchiveClient, type ErrorEnvelope } from '../client/index.js'
import { DOCUMENT_FILE, TYPES_FILE, generateDocument, generateTypes } from '../client/generate.js'
import { TOKENS, build } from './helpers/build.js'
import { CREATED_AT } from './helpers/requests.js'

const LEGACY = '/threatstack-to-s3/api/v1/s3'

async function serve (t: Tap): Promise<{ baseUrl: string, built: Awaited<ReturnType<typeof build>> }> {
  const built = await build(t)
  await built.app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = built.app.server.address() as AddressInfo
  return { baseUrl: `http://127.0.0.1:${port}`, built }
}
type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

/** The envelope of a failed call, checked for the fields every error has. */
function expectError (t: Tap, error: ErrorEnvelope | undefined, response: Response, status: number, type: string): void {
  t.equal(response.status, status, `status ${status}`)
  t.equal(error?.success, false)
  t.equal(error?.error.type, type, `type ${type}`)
  t.equal(error?.error.requestId, response.headers.get('x-request-id'), 'requestId is the x-request-id header')
}

t.test('the typed client reaches every route and every kind of answer', async (t) => {
  const { baseUrl, built } = await serve(t)
  const ingest: ArchiveClient = createArchiveClient({ baseUrl, token: TOKENS.ingest })
  const read = createArchiveClient({ baseUrl, token: TOKENS.read })
  const anonymous = createArchiveClient({ baseUrl })

  t.test('archive a batch, a bare alert, and under the legacy prefix', async (t) => {
    const full = { id: 'client0001', created_at: CREATED_AT, title: 'Full alert from the API' }
    built.threatstack.setAlert(full.id, full)
    const batch = await ingest.POST('/api/v1/s3/alert', {
      body: { alerts: [{ id: 'client0001', created_at: String(CREATED_AT), severity: '2', extra: { kept: true } }] }
    })
    t.equal(batch.response.status, 200)
    const archived: string[] | undefined = batch.data?.archived
    t.same(archived, ['client0001'])
    t.equal(batch.error, undefined)

    const bare = await ingest.POST('/api/v1/s3/alert', { body: { id: 'client0002', created_at: CREATED_AT + 60_000, severity: 1 } })
    t.same(bare.data, { success: true, archived: ['client0002'], pending: [] })

    const legacy = await ingest.POST(`${LEGACY}/alert`, { body: { id: 'client0003', created_at: CREATED_AT + 120_000 } })
    t.same(legacy.data, { success: true, archived: ['client0003'], pending: [] })
  })

  t.test('get one alert, by either prefix; 404 and 400 as envelopes', async (t) => {
    const got = await read.GET('/api/v1/s3/alert/{alert_id}', { params: { path: { alert_id: 'client0001' } } })
    t.equal(got.response.status, 200)
    const alert: Record<string, unknown> | undefined = got.data?.alert
    t.same(alert, { id: 'client0001', created_at: CREATED_AT, title: 'Full alert from the API' })

    const legacy = await read.GET(`${LEGACY}/alert/{alert_id}`, { params: { path: { alert_id: 'client0001' } } })
    t.same(legacy.data, got.data)

    const missing = await read.GET('/api/v1/s3/alert/{alert_id}', { params: { path: { alert_id: 'absent0001' } } })
    t.equal(missing.data, undefined)
    expectError(t, missing.error, missing.response, 404, 'AlertNotFoundError')

    const bad = await read.GET('/api/v1/s3/alert/{alert_id}', { params: { path: { alert_id: 'no' } } })
    expectError(t, bad.error, bad.response, 400, 'RequestValidationError')
    t.match(bad.error?.error.details, [/alert_id/])
  })

  t.test('search a range, page by page; bad dates are 400 DateParseError', async (t) => {
    const first = await read.GET('/api/v1/s3/alert', { params: { query: { start: '2017-01-15', end: '2017-01-16', limit: 2 } } })
    t.equal(first.response.status, 200)
    const page: { alerts: Array<Record<string, unknown>>, nextCursor: string | null, missing: string[] } | undefined = first.data
    t.same(page?.alerts.map((a) => a.id), ['client0001', 'client0002'])
    t.same(page?.missing, [])
    t.type(page?.nextCursor, 'string')

    const next = await read.GET(`${LEGACY}/alert`, {
      params: { query: { start: '2017-01-15', end: '2017-01-16', limit: 2, cursor: page?.nextCursor ?? undefined } }
    })
    t.same(next.data?.alerts.map((a) => a.id), ['client0003'])
    t.equal(next.data?.nextCursor, null)

    const exact = await read.GET('/api/v1/s3/alert', {
      params: { query: { start: '2017-01-15T23:10:00Z', end: '2017-01-15T23:11:00.000+00:00' } }
    })
    t.same(exact.data?.alerts.map((a) => a.id), ['client0001'], 'start ≤ created_at < end')

    const unparseable = await read.GET('/api/v1/s3/alert', { params: { query: { start: 'yesterday', end: '2017-01-16' } } })
    expectError(t, unparseable.error, unparseable.response, 400, 'DateParseError')
    const reversed = await read.GET('/api/v1/s3/alert', { params: { query: { start: '2017-01-16', end: '2017-01-15' } } })
    expectError(t, reversed.error, reversed.response, 400, 'DateParseError')
    t.equal(reversed.error?.error.message, 'start must be before end')
  })

  t.test('401 without a token, 403 with the other scope', async (t) => {
    const noToken = await anonymous.GET('/api/v1/s3/alert/{alert_id}', { params: { path: { alert_id: 'client0001' } } })
    expectError(t, noToken.error, noToken.response, 401, 'AuthenticationError')
    t.match(noToken.response.headers.get('www-authenticate'), /^Bearer/)
    const noTokenPost = await anonymous.POST('/api/v1/s3/alert', { body: { id: 'client0009', created_at: CREATED_AT } })
    expectError(t, noTokenPost.error, noTokenPost.response, 401, 'AuthenticationError')

    const wrongScope = await ingest.GET('/api/v1/s3/alert', { params: { query: { start: '2017-01-15', end: '2017-01-16' } } })
    expectError(t, wrongScope.error, wrongScope.response, 403, 'AuthorizationError')
    const readPosts = await read.POST('/api/v1/s3/alert', { body: { id: 'client0009', created_at: CREATED_AT } })
    expectError(t, readPosts.error, readPosts.response, 403, 'AuthorizationError')
    const metrics = await ingest.GET('/metrics', { parseAs: 'text' })
    expectError(t, metrics.error, metrics.response, 403, 'AuthorizationError')
  })

  t.test('an invalid webhook is a 400 WebhookDataError', async (t) => {
    const res = await ingest.POST('/api/v1/s3/alert', { body: { alerts: [{ id: '../etc', created_at: CREATED_AT }] } })
    expectError(t, res.error, res.response, 400, 'WebhookDataError')
  })

  t.test('status, health and metrics', async (t) => {
    for (const path of ['/api/v1/s3/status', `${LEGACY}/status`] as const) {
      const status = await anonymous.GET(path)
      t.equal(status.response.status, 200, path)
      t.same(status.data, { success: true, s3: { success: true }, threatstack: { success: true } })
    }
    const health = await anonymous.GET('/health')
    const ok: 'ok' | undefined = health.data?.status
    t.equal(ok, 'ok')

    const metrics = await read.GET('/metrics', { parseAs: 'text' })
    t.equal(metrics.response.status, 200)
    t.match(metrics.response.headers.get('content-type'), /^text\/plain; version=0\.0\.4/)
    const text: string | undefined = metrics.data
    t.match(text, /^threatstack_to_s3_alerts_archived_total 3$/m)
  })
})

t.test('client/openapi.json and client/schema.d.ts are what the routes generate', async (t) => {
  const document = await generateDocument()
  const committedDocument = await readFile(DOCUMENT_FILE, 'utf8').catch(() => '')
  t.ok(document === committedDocument, 'client/openapi.json is up to date: run npm run gen:client')
  const types = await generateTypes(document)
  const committedTypes = await readFile(TYPES_FILE, 'utf8').catch(() => '')
  t.ok(types === committedTypes, 'client/schema.d.ts is up to date: run npm run gen:client')
})
