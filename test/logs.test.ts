// The log of a run through every error path, at the most verbose level: it names the failures
// with their cause chains, and holds no secret, no Authorization header, no token in a URL,
// and no request body.
import t from 'tap'
import { SECRETS, TOKENS, build } from './helpers/build.js'
import { ALERT_URL, CREATED_AT, postAlerts } from './helpers/requests.js'
import { FAILURE_MODES } from '../dev/threatstack-simulator.js'

type Log = Record<string, unknown> & { level?: number, reqId?: string, err?: { type?: string, message?: string, stack?: string } }

// Appears only inside request bodies: finding it in the log means a body was logged.
const BODY_MARKER = 'body-marker-7f3a9c1e'
const UNKNOWN_TOKEN = 'unknown-SECRET-token-5555'

t.test('a run through every error path logs the failures and no secret', async (t) => {
  const built = await build(t, { logLevel: 'trace', s3Proxy: true })
  const { app, threatstack, s3proxy } = built
  const alert = (id: string): Record<string, unknown> => ({ id, created_at: CREATED_AT, title: BODY_MARKER, note: { marker: BODY_MARKER } })
  const statuses: number[] = []
  const record = (status: number): void => { statuses.push(status) }

  // Input and auth errors.
  record((await postAlerts(app, { alerts: [alert('ok000001')] })).statusCode)
  record((await postAlerts(app, { alerts: [alert('ok000002')] }, { url: `${ALERT_URL}?token=${TOKENS.ingest}`, headers: { authorization: '' } })).statusCode)
  record((await app.inject({ method: 'POST', url: `${ALERT_URL}?token=${TOKENS.ingest}&x=1`, payload: alert('ok000003') })).statusCode)
  record((await app.inject({ method: 'POST', url: `${ALERT_URL}?token=${UNKNOWN_TOKEN}`, payload: alert('bad00001') })).statusCode)
  record((await app.inject({ method: 'POST', url: ALERT_URL, headers: { authorization: `Bearer ${UNKNOWN_TOKEN}` }, payload: alert('bad00002') })).statusCode)
  record((await app.inject({ method: 'POST', url: ALERT_URL, headers: { authorization: `Bearer ${TOKENS.read}` }, payload: alert('bad00003') })).statusCode)
  record((await app.inject({ method: 'GET', url: `${ALERT_URL}/ok000001`, headers: { authorization: `Bearer ${TOKENS.ingest}` } })).statusCode)
  record((await app.inject({ method: 'GET', url: `${ALERT_URL}/ok000001?token=${TOKENS.read}` })).statusCode)
  record((await app.inject({ method: 'GET', url: `${ALERT_URL}/missing01`, headers: { authorization: `Bearer ${TOKENS.read}` } })).statusCode)
  record((await postAlerts(app, { alerts: [{ ...alert('x'), id: `bad id ${BODY_MARKER}` }] })).statusCode)
  record((await postAlerts(app, `{"id":"${BODY_MARKER}",`, { contentType: 'application/json' })).statusCode)
  record((await postAlerts(app, `<xml>${BODY_MARKER}</xml>`, { contentType: 'application/xml' })).statusCode)
  record((await app.inject({ method: 'GET', url: `/%E0%A4%A?token=${TOKENS.ingest}` })).statusCode)
  record((await app.inject({ method: 'GET', url: `${ALERT_URL}?start=not-a-date&end=2017-01-16`, headers: { authorization: `Bearer ${TOKENS.read}` } })).statusCode)

  // Every Threat Stack failure.
  for (const mode of FAILURE_MODES) {
    await threatstack.failWith(mode, 1)
    record((await postAlerts(app, alert(`ts-${mode}`.slice(0, 40)))).statusCode)
    await threatstack.heal()
  }
  // S3 failures.
  for (const fault of ['internal', 'slowdown', 'refuse'] as const) {
    await s3proxy!.failWith(fault, { times: 1 })
    record((await postAlerts(app, alert(`s3-${fault}`))).statusCode)
    await s3proxy!.heal()
  }

  t.ok(statuses.some((s) => s === 200), 'some requests succeeded')
  t.ok(statuses.filter((s) => s >= 500).length >= FAILURE_MODES.length, `5xx answers: ${statuses.join(' ')}`)
  for (const s of [400, 401, 403, 404, 415]) t.ok(statuses.includes(s), `a ${s} was answered`)

  const logs = built.logs as Log[]
  const text = JSON.stringify(logs)
  const forbidden: Record<string, string> = {
    'API key': SECRETS.apiKey,
    'user id': SECRETS.userId,
    'organization id': SECRETS.organizationId,
    'ingest token': TOKENS.ingest,
    'read token': TOKENS.read,
    'unknown token': UNKNOWN_TOKEN,
    'request body': BODY_MARKER
  }
  for (const [what, value] of Object.entries(forbidden)) t.notOk(text.includes(value), `no ${what} in the log`)
  t.notMatch(text, /Bearer (?!realm=)/, 'no Authorization header value in the log')
  t.notMatch(text, /"authorization":"[^[]/i, 'no authorization header in the log unredacted')
  t.notMatch(text, /Hawk id=/, 'no Hawk header in the log')

  const urls = logs.map((l) => (l.req as { url?: string } | undefined)?.url).filter((u): u is string => u !== undefined)
  t.ok(urls.some((u) => u.includes('token=[redacted]')), 'query tokens are logged as [redacted]')

  const errors = logs.filter((l) => l.level === 50)
  t.equal(errors.length, statuses.filter((s) => s >= 500).length, 'each 5xx is logged once as an error')
  for (const line of errors) {
    t.match(line.err?.type, /Error$/, `${line.err?.type ?? '?'} logged with its type`)
    t.match(`${line.err?.message ?? ''}\n${line.err?.stack ?? ''}`, /caused by/, `${line.err?.type ?? '?'} logged with its cause chain`)
  }
})
