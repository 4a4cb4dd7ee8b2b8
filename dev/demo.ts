// `npm run demo`: posts a few sample webhooks to a running service (npm run dev), then reads
// them back by id and by time range, printing each call and its answer.
import { randomBytes } from 'node:crypto'
import { request } from 'undici'
import { DEV_INGEST_TOKEN, DEV_READ_TOKEN } from './local.js'

export interface DemoOptions {
  baseUrl: string
  ingestToken: string
  readToken: string
  /** Where the report goes, one line at a time. */
  print: (line: string) => void
}

interface Call { status: number, body: Record<string, unknown> }

async function call (method: 'GET' | 'POST', url: string, token: string, body?: unknown, contentType = 'application/json'): Promise<Call> {
  const res = await request(url, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined && { 'content-type': contentType }) },
    ...(body !== undefined && { body: JSON.stringify(body) })
  })
  const text = await res.body.text()
  let parsed: Record<string, unknown>
  try { parsed = JSON.parse(text) as Record<string, unknown> } catch { parsed = { text } }
  return { status: res.statusCode, body: parsed }
}

/** Runs the demo; resolves to true when every step answered as expected. */
export async function runDemo (options: DemoOptions): Promise<boolean> {
  const { baseUrl, ingestToken, readToken, print } = options
  const api = `${baseUrl.replace(/\/+$/, '')}/api/v1/s3`
  let ok = true
  const step = (what: string, res: Call, expected: number, shown: unknown = res.body): void => {
    const good = res.status === expected
    ok &&= good
    print(`${good ? 'ok ' : 'BAD'} ${what} -> ${res.status} ${JSON.stringify(shown)}`)
  }

  // Alerts from the last few minutes, with fresh ids so that each run adds its own.
  const now = Date.now()
  const suffix = randomBytes(6).toString('hex')
  const alerts = [
    { id: `demo1${suffix}`, created_at: String(now - 180_000), severity: '1', title: 'Demo: root login from a new address' },
    { id: `demo2${suffix}`, created_at: String(now - 120_000), severity: '2', title: 'Demo: package installed outside change window' },
    { id: `demo3${suffix}`, created_at: now - 60_000, severity: 3, title: 'Demo: unusual outbound connection' }
  ]

  print(`Service at ${baseUrl}`)
  const health = await request(`${baseUrl.replace(/\/+$/, '')}/health`).then(async (r) => ({ status: r.statusCode, body: await r.body.json() as Record<string, unknown> }))
  step('GET /health', health, 200)

  print('\n1. Webhooks in: the original {"alerts": [...]} form, then one bare alert sent as text/plain (as SNS does)')
  step('POST /api/v1/s3/alert  {"alerts": [2 alerts]}', await call('POST', `${api}/alert`, ingestToken, { alerts: alerts.slice(0, 2) }), 200)
  step('POST /api/v1/s3/alert  {bare alert} as text/plain', await call('POST', `${api}/alert`, ingestToken, alerts[2], 'text/plain'), 200)

  print('\n2. Read back by id')
  for (const alert of alerts) {
    const res = await call('GET', `${api}/alert/${alert.id}`, readToken)
    const stored = res.body.alert as Record<string, unknown> | undefined
    step(`GET /api/v1/s3/alert/${alert.id}`, res, 200, { id: stored?.id, title: stored?.title })
  }

  print('\n3. Read back by time range (start inclusive, end exclusive)')
  const start = new Date(now - 181_000).toISOString()
  const end = new Date(now - 59_000).toISOString()
  const range = await call('GET', `${api}/alert?start=${encodeURIComponent(start)}&end=${encodeURIComponent(end)}&limit=1000`, readToken)
  const found = ((range.body.alerts ?? []) as Array<Record<string, unknown>>).map((a) => a.id).filter((id) => alerts.some((a) => a.id === id))
  step(`GET /api/v1/s3/alert?start=${start}&end=${end}`, range, 200, { demoAlertsFound: found, missing: range.body.missing, nextCursor: range.body.nextCursor })
  if (found.length !== alerts.length) {
    ok = false
    print(`BAD expected the ${alerts.length} demo alerts in the range, found ${found.length}`)
  }

  print('\n4. What errors look like')
  step('GET /api/v1/s3/alert/doesnotexist (not archived)', await call('GET', `${api}/alert/doesnotexist`, readToken), 404)
  step('POST /api/v1/s3/alert with a read token', await call('POST', `${api}/alert`, readToken, alerts[0]), 403)

  print(ok ? '\nEverything answered as expected.' : '\nSome steps did not answer as expected (marked BAD).')
  return ok
}

export const DEMO_DEFAULTS = {
  baseUrl: 'http://localhost:3000',
  ingestToken: DEV_INGEST_TOKEN,
  readToken: DEV_READ_TOKEN
}
