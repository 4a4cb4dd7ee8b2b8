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

  // Every Threat Stack failure: the record is stored, so the answer is 200 with the alert
  // pending, and the failure is logged as a warning with its cause chain. Only this alert's
  // first fetch fails: its background retry cannot take the next mode's failure.
  let tsStatuses = 0
  for (const mode of FAILURE_MODES) {
    const id = `ts-${mode}`.slice(0, 40)
    await threatstack.failWith(mode, 1, { path: new RegExp(`/${id}$`) })
    const res = await postAlerts(app, alert(id))
    if (res.statusCode === 200) tsStatuses++
    // Never a Threat Stack error: at worst the record's own PUT failed on a loaded machine.
    else t.equal((res.json() as { error: { type: string } }).error.type, 'S3ClientError', `${mode}: only a record failure is an error`)
    record(res.statusCode)
    await threatstack.heal()
  }
  t.ok(tsStatuses > 0, 'Threat Stack failures are answered 200, the alert pending')
  // S3 failures.
  for (const fault of ['internal', 'slowdown', 'refuse'] as const) {
    // Only this alert's record fails: background retries of the alerts above cannot take the fault.
    await s3proxy!.failWith(fault, { times: 1, match: new RegExp(`^PUT /[^/]+/webhooks/.*s3-${fault}`) })
    record((await postAlerts(app, alert(`s3-${fault}`))).statusCode)
    await s3proxy!.heal()
  }

  t.ok(statuses.some((s) => s === 200), 'some requests succeeded')
  t.ok(statuses.filter((s) => s >= 500).length >= 3, `5xx answers (S3): ${statuses.join(' ')}`)
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

  const pendingLines = logs.filter((l) => l.level === 40 && l.msg === 'full alert pending: its fetch failed, retried in the background')
  t.ok(pendingLines.length >= tsStatuses, 'each Threat Stack failure answered 200 is logged as a warning')
  for (const line of pendingLines) t.match(`${line.err?.message ?? ''}\n${line.err?.stack ?? ''}`, /caused by/, `${line.err?.type ?? '?'} logged with its cause chain`)

  const errors = logs.filter((l) => l.level === 50)
  t.equal(errors.length, statuses.filter((s) => s >= 500).length, 'each 5xx is logged once as an error')
  for (const line of errors) {
    t.match(line.err?.type, /Error$/, `${line.err?.type ?? '?'} logged with its type`)
    t.match(`${line.err?.message ?? ''}\n${line.err?.stack ?? ''}`, /caused by/, `${line.err?.type ?? '?'} logged with its cause chain`)
  }
})

t.test('no query value of an ingest request reaches the log, whatever its name or encoding; read routes keep theirs but token', async (t) => {
  const built = await build(t, { logLevel: 'trace' })
  const { app } = built
  // Marks every value sent: none may be logged. Percent-encoded forms are checked too.
  const V = 'qvSECRET9d2e'
  const T = TOKENS.ingest
  const names = [
    'token', 'TOKEN', '%2574oken', '%74oken', '%25%37%34oken', 'token%00', '%00token', 'token[]', 'token%5B%5D', 'to%6Ben', 'token+',
    '+token', 'tok+en', '%20token', 'token.x', 'x', '', 'a=1&token', 'a=1;token', 'a=1&&token', 'token%3D', 'token%26x'
  ]
  const queries = [
    ...names.flatMap((name) => [`?${name}=${T}`, `?${name}=${V}`]),
    `?${T}`, `?${V}`, `?=${V}`, `?token=${T}&token=${V}`, `?token=${encodeURIComponent(encodeURIComponent(T))}`,
    `?a=${V}`, `?a=1#token=${V}`, `#?token=${V}`, `#frag?token=${V}`, `;token=${V}`, `;${V}?x=1`, `?token=${V}#${V}`,
    `??token=${V}`, `?&token=${V}`, `?token=${V}%`, `?%E0%A4%A=${V}`, `?token=%E0%A4%A${V}`
  ]
  const statuses = new Set<number>()
  for (const prefix of ['/api/v1/s3', '/threatstack-to-s3/api/v1/s3']) {
    for (const query of queries) {
      for (const headers of [{}, { authorization: `Bearer ${T}` }]) {
        const res = await app.inject({ method: 'POST', url: `${prefix}/alert${query}`, headers, payload: { id: 'logq0001', created_at: CREATED_AT } })
        statuses.add(res.statusCode)
      }
    }
  }
  // A read route keeps its query in the log, except what names a token.
  for (const query of ['?token', '?%2574oken', '?token%00', '?token[]', '?TOKEN', '?a=1;token']) {
    await app.inject({ method: 'GET', url: `${ALERT_URL}/logq0001${query}=${V}`, headers: { authorization: `Bearer ${TOKENS.read}` } })
  }
  await app.inject({ method: 'GET', url: `${ALERT_URL}?start=2017-01-15&end=2017-01-16&limit=5`, headers: { authorization: `Bearer ${TOKENS.read}` } })
  t.ok(statuses.has(200) && statuses.has(400) && statuses.has(401), `refused and accepted alike: ${[...statuses].join(' ')}`)

  const text = JSON.stringify(built.logs)
  for (const value of [V, T, encodeURIComponent(T), encodeURIComponent(encodeURIComponent(T))]) {
    t.notOk(text.includes(value), `${value.slice(0, 6)}… is not in the log`)
  }
  // Nor as bytes of a Buffer (an error's raw packet).
  t.notOk(text.includes(String(T.charCodeAt(0)) + ',' + String(T.charCodeAt(1)) + ',' + String(T.charCodeAt(2))), 'nor as raw bytes')
  const urls = built.logs.map((l) => (l.req as { url?: string } | undefined)?.url).filter((u): u is string => u !== undefined)
  t.ok(urls.includes(`${ALERT_URL}?start=2017-01-15&end=2017-01-16&limit=5`), 'a search keeps its query in the log')
  const posted = built.logs.map((l) => l.req as { method?: string, url?: string } | undefined).filter((r) => r?.method === 'POST')
  t.ok(posted.length >= queries.length * 4, 'every webhook request is logged')
  t.ok(posted.every((r) => /^\/[^?;#]*alert(\?\[redacted\])?$/.test(r?.url ?? '')), 'a webhook is logged with its path only')
  t.ok(urls.includes(`${ALERT_URL}/logq0001?%2574oken=[redacted]`), 'a read keeps the names of its parameters')
})
