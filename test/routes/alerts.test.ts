import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { request } from 'undici'
import { SECRETS, TOKENS, build, startUpstreams, type Built } from '../helpers/build.js'
import { freePort, startServer } from '../helpers/process.js'
import { startS3FaultProxy } from '../../dev/s3-fault-proxy.js'
import {
  ALERT_URL, CREATED_AT, LEGACY_ALERT_URL, WEBHOOK_MINUTE, assertError, getAlert, listKeys, postAlerts
} from '../helpers/requests.js'
import { assertNoLeak } from '../helpers/leaks.js'
import { MAX_CREATED_AT_MS } from '../../schemas/alert.js'
import type { FailureMode } from '../../dev/threatstack-simulator.js'

type Log = Record<string, unknown> & { level?: number, reqId?: string, err?: { message?: string, stack?: string, type?: string } }

async function readJson (built: Built, key: string): Promise<unknown> {
  const object = await built.readObject(key)
  return object === undefined ? undefined : JSON.parse(object.body)
}

t.test('POST /alert archives the webhook record and the full alert', async (t) => {
  t.test('batch form with one alert: exact keys, content type, bodies as sent and as fetched', async (t) => {
    const built = await build(t)
    const alert = {
      id: '587c0159a907346eccb84004',
      created_at: '1484521800000',
      severity: '2',
      title: 'Unexpected login',
      organization_id: 'org-1',
      custom_field: { nested: [1, 'two', null] },
      another_unknown: true
    }
    const full = { id: alert.id, title: 'Full alert from the API', created_at: CREATED_AT, severity: 2, rule: { name: 'r' } }
    built.threatstack.setAlert(alert.id, full)

    const res = await postAlerts(built.app, { alerts: [alert] })
    t.equal(res.statusCode, 200)
    t.match(res.headers['content-type'], /^application\/json/)
    t.same(res.json(), { success: true, archived: [alert.id], pending: [] })

    const webhookKey = `${WEBHOOK_MINUTE}/${alert.id}`
    const alertKey = `alerts/58/7c/${alert.id}`
    t.same(await listKeys(t, built.s3.endpoint), [alertKey, webhookKey].sort(), 'exactly the two objects')

    const record = await built.readObject(webhookKey)
    t.equal(record?.contentType, 'application/json')
    const stored = JSON.parse(record?.body ?? 'null') as typeof alert
    t.same(stored, alert, 'the webhook record is the alert as sent, unknown fields kept')
    t.equal(typeof stored.severity, 'string', 'a string severity stays a string')
    t.equal(typeof stored.created_at, 'string', 'a string created_at stays a string')

    const fullObject = await built.readObject(alertKey)
    t.equal(fullObject?.contentType, 'application/json')
    t.same(JSON.parse(fullObject?.body ?? 'null'), full, 'the full alert is what Threat Stack returned')
    t.match(built.threatstack.requests, [{ method: 'GET', path: `/v2/alerts/${alert.id}`, authorized: true }])
  })

  t.test('batch form with several alerts, at different minutes', async (t) => {
    const built = await build(t)
    const alerts = [
      { id: 'aaaa0001', created_at: '1484521800000', severity: '1' },
      { id: 'bbbb0002', created_at: 1484521860000, severity: 3 }, // 23:11
      { id: 'cccc0003', created_at: '1484611199999' } // 2017-01-16T23:59:59.999Z
    ]
    for (const a of alerts) built.threatstack.setAlert(a.id, { id: a.id, full: true })
    const res = await postAlerts(built.app, { alerts })
    t.equal(res.statusCode, 200)
    t.same(res.json(), { success: true, archived: ['aaaa0001', 'bbbb0002', 'cccc0003'], pending: [] })
    t.same(await listKeys(t, built.s3.endpoint), [
      'alerts/aa/aa/aaaa0001',
      'alerts/bb/bb/bbbb0002',
      'alerts/cc/cc/cccc0003',
      'webhooks/2017/01/15/23/10/aaaa0001',
      'webhooks/2017/01/15/23/11/bbbb0002',
      'webhooks/2017/01/16/23/59/cccc0003'
    ])
    for (const a of alerts) {
      t.same(await readJson(built, `alerts/${a.id.slice(0, 2)}/${a.id.slice(2, 4)}/${a.id}`), { id: a.id, full: true })
    }
    t.same(await readJson(built, 'webhooks/2017/01/15/23/11/bbbb0002'), alerts[1], 'integer fields stay integers')
  })

  t.test('a batch of 100 alerts (the upper bound) is accepted', async (t) => {
    // Waits long enough for every full alert on a busy machine: the subject is the bound, not the wait.
    const built = await build(t, { env: { ENRICH_WAIT_MS: '60000' } })
    const alerts = Array.from({ length: 100 }, (_, i) => ({ id: `bulk${String(i).padStart(4, '0')}`, created_at: CREATED_AT }))
    const res = await postAlerts(built.app, { alerts })
    t.equal(res.statusCode, 200)
    t.same(res.json().archived, alerts.map((a) => a.id), 'ids in the order received')
    t.equal((await listKeys(t, built.s3.endpoint)).length, 200)
  })

  t.test('bare alert form, integer created_at and severity', async (t) => {
    const built = await build(t)
    const alert = { id: 'abcd1234', created_at: CREATED_AT, severity: 2, source: 'host', unknown: { x: 1 } }
    const res = await postAlerts(built.app, alert)
    t.equal(res.statusCode, 200)
    t.same(res.json(), { success: true, archived: ['abcd1234'], pending: [] })
    const record = await built.readObject(`${WEBHOOK_MINUTE}/abcd1234`)
    t.equal(record?.contentType, 'application/json')
    t.same(JSON.parse(record?.body ?? 'null'), alert)
    t.equal(typeof (JSON.parse(record?.body ?? '{}') as { severity: unknown }).severity, 'number')
    t.match(await readJson(built, 'alerts/ab/cd/abcd1234'), { id: 'abcd1234', source: 'simulator' }, 'the simulator made-up alert')
  })

  t.test('JSON sent as text/plain, with or without a charset', async (t) => {
    const built = await build(t)
    const alert = { id: 'text0001', created_at: '1484521800000', severity: '3' }
    for (const contentType of ['text/plain', 'text/plain; charset=utf-8']) {
      const res = await postAlerts(built.app, JSON.stringify({ alerts: [alert] }), { contentType })
      t.equal(res.statusCode, 200, contentType)
      t.same(res.json(), { success: true, archived: ['text0001'], pending: [] })
    }
    const res = await postAlerts(built.app, JSON.stringify(alert), { contentType: 'application/json; charset=utf-8' })
    t.equal(res.statusCode, 200, 'application/json with a charset')
    t.same(await readJson(built, `${WEBHOOK_MINUTE}/text0001`), alert)
    t.match(await readJson(built, 'alerts/te/xt/text0001'), { id: 'text0001' })
  })

  t.test('boundaries of id and created_at are accepted', async (t) => {
    const built = await build(t)
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ id: 'a-_Z', created_at: 0 }, 'webhooks/1970/01/01/00/00/a-_Z'],
      [{ id: 'y'.repeat(128), created_at: MAX_CREATED_AT_MS }, `webhooks/9999/12/31/23/59/${'y'.repeat(128)}`],
      [{ id: 'maxstring', created_at: String(MAX_CREATED_AT_MS) }, 'webhooks/9999/12/31/23/59/maxstring']
    ]
    for (const [alert, key] of cases) {
      const res = await postAlerts(built.app, alert)
      t.equal(res.statusCode, 200, `${String(alert.id).slice(0, 10)} / ${String(alert.created_at)}`)
      t.same(await readJson(built, key), alert, key.slice(0, 40))
    }
    t.ok(await built.readObject('alerts/a-/_Z/a-_Z'), 'full alert of the 4-char id')
  })

  t.test('TS_AWS_S3_PREFIX puts every key under the prefix, and GET reads it there', async (t) => {
    const built = await build(t, { env: { TS_AWS_S3_PREFIX: 'tenant-a' } })
    const res = await postAlerts(built.app, { alerts: [{ id: 'pref1234', created_at: '1484521800000' }] })
    t.equal(res.statusCode, 200)
    t.same(await listKeys(t, built.s3.endpoint), ['tenant-a/alerts/pr/ef/pref1234', `tenant-a/${WEBHOOK_MINUTE}/pref1234`])
    const got = await getAlert(built.app, 'pref1234')
    t.equal(got.statusCode, 200)
    t.match(got.json(), { success: true, alert: { id: 'pref1234' } })
  })

  t.test('the legacy prefix works for POST and GET', async (t) => {
    const built = await build(t)
    const res = await postAlerts(built.app, { id: 'legacy01', created_at: '1484521800000' }, { url: LEGACY_ALERT_URL })
    t.equal(res.statusCode, 200)
    t.same(res.json(), { success: true, archived: ['legacy01'], pending: [] })
    t.ok(await built.readObject(`${WEBHOOK_MINUTE}/legacy01`))
    for (const url of [LEGACY_ALERT_URL, ALERT_URL]) {
      const got = await getAlert(built.app, 'legacy01', { url })
      t.equal(got.statusCode, 200, url)
      t.match(got.json(), { success: true, alert: { id: 'legacy01' } })
    }
  })

  t.test('?token=<ingest token> authenticates a POST', async (t) => {
    const built = await build(t)
    const res = await built.app.inject({
      method: 'POST',
      url: `${ALERT_URL}?token=${encodeURIComponent(TOKENS.ingest)}`,
      payload: { id: 'query001', created_at: CREATED_AT }
    })
    t.equal(res.statusCode, 200)
    t.same(res.json(), { success: true, archived: ['query001'], pending: [] })
    t.ok(await built.readObject(`${WEBHOOK_MINUTE}/query001`))
  })

  t.test('?token= does not authenticate a GET', async (t) => {
    const built = await build(t)
    t.equal((await postAlerts(built.app, { id: 'query002', created_at: CREATED_AT })).statusCode, 200)
    for (const token of [TOKENS.read, TOKENS.ingest]) {
      const res = await built.app.inject({ method: 'GET', url: `${ALERT_URL}/query002?token=${encodeURIComponent(token)}` })
      assertError(t, res, 401, 'AuthenticationError')
    }
  })

  t.test('posting the same alert twice answers 200 twice and writes the same keys', async (t) => {
    const built = await build(t)
    const alert = { id: 'twice001', created_at: '1484521800000' }
    const first = await postAlerts(built.app, { alerts: [alert] })
    const keysAfterFirst = await listKeys(t, built.s3.endpoint)
    const second = await postAlerts(built.app, { alerts: [alert] })
    t.equal(first.statusCode, 200)
    t.equal(second.statusCode, 200)
    t.same(second.json(), { success: true, archived: ['twice001'], pending: [] })
    t.same(keysAfterFirst, ['alerts/tw/ic/twice001', `${WEBHOOK_MINUTE}/twice001`])
    t.same(await listKeys(t, built.s3.endpoint), keysAfterFirst, 'no new key')
    t.same(await readJson(built, `${WEBHOOK_MINUTE}/twice001`), alert)
  })
})

t.test('POST /alert refuses bad input with 400 WebhookDataError naming the field', async (t) => {
  const built = await build(t)
  const valid = { id: 'abcd1234', created_at: '1484521800000' }

  const cases: Array<[string, unknown, RegExp]> = [
    ['missing id', { created_at: '1484521800000' }, /^\/id /],
    ['id too short', { ...valid, id: 'abc' }, /^\/id /],
    ['id with a slash', { ...valid, id: 'ab/cd' }, /^\/id /],
    ['id with ..', { ...valid, id: 'ab..cd' }, /^\/id /],
    ['id with spaces', { ...valid, id: 'ab cd ef' }, /^\/id /],
    ['id of 129 chars', { ...valid, id: 'x'.repeat(129) }, /^\/id /],
    ['id not a string', { ...valid, id: 12345678 }, /^\/id /],
    ['created_at missing', { id: 'abcd1234' }, /^\/created_at /],
    ['created_at negative', { ...valid, created_at: -1 }, /^\/created_at /],
    ['created_at a float', { ...valid, created_at: 1484521800000.5 }, /^\/created_at /],
    ['created_at not digits', { ...valid, created_at: '12ab' }, /^\/created_at /],
    ['created_at a negative string', { ...valid, created_at: '-1484521800000' }, /^\/created_at /],
    ['created_at integer beyond year 9999', { ...valid, created_at: MAX_CREATED_AT_MS + 1 }, /^\/created_at /],
    ['severity 4', { ...valid, severity: 4 }, /^\/severity /],
    ['severity "0"', { ...valid, severity: '0' }, /^\/severity /],
    ['severity "high"', { ...valid, severity: 'high' }, /^\/severity /],
    ['title not a string', { ...valid, title: 7 }, /^\/title /],
    ['alerts empty', { alerts: [] }, /^\/alerts /],
    ['101 alerts', { alerts: Array.from({ length: 101 }, (_, i) => ({ id: `many${i}xx`, created_at: CREATED_AT })) }, /^\/alerts /],
    ['an invalid alert in a batch', { alerts: [valid, { ...valid, id: 'a/b/c' }] }, /^\/alerts\/1\/id /],
    ['body an array', [valid], /^\/ /]
  ]
  for (const [name, body, detail] of cases) {
    t.test(name, async (t) => {
      const res = await postAlerts(built.app, body)
      const error = assertError(t, res, 400, 'WebhookDataError')
      t.ok(Array.isArray(error.details) && error.details.length > 0, 'details given')
      t.ok(error.details?.some((d) => detail.test(d)), `a detail matches ${String(detail)}: ${JSON.stringify(error.details)}`)
    })
  }

  t.test('created_at as a digit string beyond year 9999', async (t) => {
    for (const body of [{ ...valid, created_at: '999999999999999' }, { alerts: [{ ...valid, created_at: '999999999999999' }] }]) {
      const res = await postAlerts(built.app, body)
      const error = assertError(t, res, 400, 'WebhookDataError')
      t.ok(error.details?.some((d) => /created_at/.test(d)), `details name created_at: ${JSON.stringify(error.details)}`)
    }
  })

  t.test('a bare alert with a digit string beyond year 9999 is described by its own path', async (t) => {
    const res = await postAlerts(built.app, { ...valid, created_at: '999999999999999' })
    const error = assertError(t, res, 400, 'WebhookDataError')
    t.same(error.details, ['/created_at must be milliseconds since the epoch, as an integer or a string of digits'],
      'the body has no alerts array: the detail must not point into one')
  })

  t.test('non-object JSON bodies', async (t) => {
    for (const text of ['"a string"', 'null', '42', 'true']) {
      const res = await postAlerts(built.app, text, { contentType: 'application/json' })
      const error = assertError(t, res, 400, 'WebhookDataError')
      t.ok(Array.isArray(error.details), `details for ${text}`)
    }
  })

  t.test('invalid JSON, as application/json and as text/plain', async (t) => {
    for (const contentType of ['application/json', 'text/plain']) {
      const res = await postAlerts(built.app, '{"id": "abcd1234", "created_at": ', { contentType })
      const error = assertError(t, res, 400, 'WebhookDataError')
      t.notMatch(error.message, /created_at|Unexpected|position/, 'the body is not echoed')
    }
  })

  t.test('empty body with a JSON content type', async (t) => {
    for (const contentType of ['application/json', 'text/plain']) {
      const res = await postAlerts(built.app, '', { contentType })
      assertError(t, res, 400, 'WebhookDataError')
    }
  })

  t.test('prototype poisoning is refused with a 400', async (t) => {
    const bodies = [
      '{"__proto__": {"polluted": true}, "id": "abcd1234", "created_at": 1}',
      '{"constructor": {"prototype": {"polluted": true}}, "id": "abcd1234", "created_at": 1}',
      '{"alerts": [{"__proto__": {"polluted": true}, "id": "abcd1234", "created_at": 1}]}'
    ]
    for (const contentType of ['application/json', 'text/plain']) {
      for (const body of bodies) {
        const res = await postAlerts(built.app, body, { contentType })
        t.equal(res.statusCode, 400, `${contentType} ${body.slice(0, 30)}`)
        const json = res.json() as { success: boolean, error: { type: string, requestId: string } }
        t.equal(json.success, false)
        t.ok(['WebhookDataError', 'RequestValidationError'].includes(json.error.type), json.error.type)
        assertNoLeak(t, res.body)
      }
    }
    t.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype untouched')
  })

  t.test('nothing is written for a refused body', async (t) => {
    const res = await postAlerts(built.app, { alerts: [{ id: 'goodgood', created_at: CREATED_AT }, { id: 'badbad', created_at: '999999999999999' }] })
    assertError(t, res, 400, 'WebhookDataError')
    t.equal(await built.readObject(`${WEBHOOK_MINUTE}/goodgood`), undefined, 'no webhook record of the valid sibling')
    t.equal(await built.readObject('alerts/go/od/goodgood'), undefined, 'no full alert of the valid sibling')
    t.notOk(built.threatstack.requests.some((r) => r.path.includes('goodgood')), 'Threat Stack not called')
  })

  t.test('other content types are 415 UnsupportedMediaTypeError', async (t) => {
    for (const [contentType, body] of [
      ['application/xml', '<alert><id>abcd1234</id></alert>'],
      ['application/x-www-form-urlencoded', 'id=abcd1234&created_at=1'],
      ['text/html', '{"id":"abcd1234","created_at":1}'],
      ['multipart/form-data; boundary=x', '--x\r\n\r\n--x--']
    ]) {
      const res = await postAlerts(built.app, body, { contentType })
      assertError(t, res, 415, 'UnsupportedMediaTypeError')
    }
    const res = await postAlerts(built.app, '{"id":"abcd1234","created_at":1}')
    assertError(t, res, 415, 'UnsupportedMediaTypeError')
  })
})

t.test('a body over BODY_LIMIT_BYTES is 413 PayloadTooLargeError', async (t) => {
  const built = await build(t, { env: { BODY_LIMIT_BYTES: '2048' } })
  const big = { id: 'bigbig01', created_at: CREATED_AT, title: 'x'.repeat(3000) }
  for (const contentType of ['application/json', 'text/plain']) {
    const res = await postAlerts(built.app, JSON.stringify(big), { contentType })
    assertError(t, res, 413, 'PayloadTooLargeError')
  }
  const small = await postAlerts(built.app, { id: 'small001', created_at: CREATED_AT, title: 'x'.repeat(1500) })
  t.equal(small.statusCode, 200, 'a body under the limit passes')
  t.equal(await built.readObject(`${WEBHOOK_MINUTE}/bigbig01`), undefined, 'nothing of the big body written')
})

t.test('GET /alert/:alert_id', async (t) => {
  const built = await build(t)
  const full = { id: 'stored01', title: 'full', created_at: CREATED_AT, nested: { a: [1, 2] } }
  built.threatstack.setAlert('stored01', full)
  t.equal((await postAlerts(built.app, { id: 'stored01', created_at: '1484521800000' })).statusCode, 200)

  t.test('a stored alert is 200 with the full alert', async (t) => {
    const res = await getAlert(built.app, 'stored01')
    t.equal(res.statusCode, 200)
    t.match(res.headers['content-type'], /^application\/json/)
    t.same(res.json(), { success: true, alert: full })
  })

  t.test('an alert stored by the Python service (numbers, other fields) is served as stored', async (t) => {
    // Same layout, written directly: what an existing archive holds.
    const legacy = { id: 'legacy99', created_at: 1484521800000, severity: 1, hostname: 'h', agent_id: 'a' }
    built.threatstack.setAlert('legacy99', legacy)
    t.equal((await postAlerts(built.app, { id: 'legacy99', created_at: CREATED_AT })).statusCode, 200)
    const res = await getAlert(built.app, 'legacy99')
    t.same(res.json(), { success: true, alert: legacy })
  })

  t.test('an alert not archived is 404 AlertNotFoundError', async (t) => {
    const res = await getAlert(built.app, 'notthere1')
    assertError(t, res, 404, 'AlertNotFoundError')
  })

  t.test('an alert whose webhook record is stored but full alert is not is 404', async (t) => {
    // Its own app: the background retries of this alert must not reach the shared simulator.
    const own = await build(t)
    await own.threatstack.failWith('json-500')
    t.equal((await postAlerts(own.app, { id: 'partial1', created_at: CREATED_AT })).statusCode, 200)
    t.ok(await own.readObject(`${WEBHOOK_MINUTE}/partial1`))
    assertError(t, await getAlert(own.app, 'partial1'), 404, 'AlertNotFoundError')
  })

  t.test('malformed ids are 400 RequestValidationError', async (t) => {
    for (const id of ['ab', 'a%2Fb', 'ab%2Fcd', 'x'.repeat(129), 'a.b', 'abc.def', 'ab%20cd', '..%2F..%2Fetc', '', 'x'.repeat(201)]) {
      const res = await getAlert(built.app, id)
      const error = assertError(t, res, 400, 'RequestValidationError')
      t.notMatch(JSON.stringify(error), /xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx/, `no long echo of ${id.slice(0, 12)}`)
    }
  })

  t.test('a GET is not a webhook: the simulator is not called', async (t) => {
    const before = built.threatstack.requests.length
    await getAlert(built.app, 'stored01')
    await getAlert(built.app, 'notthere2')
    t.equal(built.threatstack.requests.length, before)
  })
})

/**
 * Polls `check` until it holds: at most `tries` times, `ms` apart. The bound is generous (a minute):
 * on a machine running several suites at once a background retry and its S3 PUT can take seconds.
 */
async function eventually (check: () => Promise<boolean>, tries = 600, ms = 100): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    if (await check()) return true
    await sleep(ms)
  }
  return false
}

interface ArchiveBody { success: true, archived: string[], pending: Array<{ id: string, error?: { type: string, message: string } }> }

t.test('POST /alert when Threat Stack fails: 200 once the record is stored, the alert pending with the error', async (t) => {
  const cases: Array<{ mode: FailureMode, type: string, message: RegExp, retryAfter?: string }> = [
    { mode: 'refused', type: 'ThreatStackRequestError', message: /^Failure to communicate with Threat Stack$/ },
    { mode: 'hang', type: 'ThreatStackRequestError', message: /^Threat Stack did not answer in time|Threat Stack/ },
    { mode: 'reset', type: 'ThreatStackRequestError', message: /^Failure to communicate with Threat Stack$/ },
    { mode: 'html-503', type: 'ThreatStackRequestError', message: /^Failure to communicate with Threat Stack \(status 503\)$/ },
    { mode: 'json-404', type: 'ThreatStackAPIError', message: /^Failure to communicate with Threat Stack \(status 404\)$/ },
    { mode: 'json-500', type: 'ThreatStackAPIError', message: /^Failure to communicate with Threat Stack \(status 500\)$/ },
    { mode: 'json-401', type: 'ThreatStackAPIError', message: /^Failure to communicate with Threat Stack \(status 401\)$/ },
    { mode: 'json-429', type: 'ThreatStackAPIError', message: /Threat Stack/, retryAfter: '1' },
    { mode: 'invalid-json', type: 'ThreatStackRequestError', message: /^Failure to communicate with Threat Stack \(status 200\)$/ },
    { mode: 'oversized', type: 'ThreatStackRequestError', message: /^Failure to communicate with Threat Stack/ }
  ]
  for (const { mode, type, message, retryAfter } of cases) {
    t.test(`${mode} -> 200, pending with ${type}; once healed, the full alert is stored in the background`, async (t) => {
      // Retries close together, so that the one after the heal comes soon.
      const built = await build(t, { env: { ENRICH_RETRY_MAX_DELAY_MS: '500' } })
      await built.threatstack.failWith(mode, undefined, retryAfter === undefined ? {} : { retryAfter })
      const alert = { id: '587c0159a907346eccb84004', created_at: '1484521800000', severity: '1' }
      const res = await postAlerts(built.app, { alerts: [alert] })
      t.equal(res.statusCode, 200, 'exactly 200: the sender has nothing to resend')
      const body = res.json() as ArchiveBody
      t.same(body.archived, [])
      t.equal(body.pending.length, 1)
      t.equal(body.pending[0]?.id, alert.id)
      t.equal(body.pending[0]?.error?.type, type)
      t.match(body.pending[0]?.error?.message, message, 'the fixed message of the envelope')
      t.same(Object.keys(body.pending[0]?.error ?? {}).sort(), ['message', 'type'], 'nothing more than type and message')
      assertNoLeak(t, res.body, [SECRETS.apiKey, SECRETS.bucket, String(built.threatstack.port), '127.0.0.1', 'ECONNREFUSED'])
      t.equal(res.headers['retry-after'], undefined, 'no retry-after on a 200')
      t.same(await readJson(built, `${WEBHOOK_MINUTE}/${alert.id}`), alert, 'the webhook record is stored')
      t.equal(await built.readObject(`alerts/58/7c/${alert.id}`), undefined, 'the full alert is not, yet')

      await built.threatstack.heal()
      t.ok(await eventually(async () => await built.readObject(`alerts/58/7c/${alert.id}`) !== undefined), 'the background retries store the full alert')
      t.ok(await eventually(async () => built.app.enrichment.size === 0), 'nothing owed any more')
    })
  }

  t.test('a 429 with Retry-After is honoured: the background retry waits for it', async (t) => {
    const built = await build(t)
    await built.threatstack.failWith('json-429', 1, { retryAfter: '2' })
    const res = await postAlerts(built.app, { id: 'throttl1', created_at: CREATED_AT })
    t.equal(res.statusCode, 200)
    t.equal((res.json() as ArchiveBody).pending[0]?.error?.type, 'ThreatStackAPIError')
    const asked = built.threatstack.requests.filter((r) => r.path.endsWith('/throttl1')).length
    t.equal(asked, 1, 'one fetch so far')
    // Well inside the 2 s asked for, no second fetch has been made.
    await sleep(300)
    t.equal(built.threatstack.requests.filter((r) => r.path.endsWith('/throttl1')).length, 1, 'no retry before Retry-After')
    t.ok(await eventually(async () => await built.readObject('alerts/th/ro/throttl1') !== undefined), 'stored after it')
  })

  t.test('Threat Stack slower than ENRICH_WAIT_MS: 200 with the alert pending (no error), then stored in the background', async (t) => {
    const built = await build(t, { env: { ENRICH_WAIT_MS: '100', THREATSTACK_TIMEOUT_MS: '5000' } })
    built.threatstack.setLatency(800)
    const res = await postAlerts(built.app, { id: 'slowslow', created_at: CREATED_AT })
    t.equal(res.statusCode, 200)
    t.same(res.json(), { success: true, archived: [], pending: [{ id: 'slowslow' }] }, 'pending, with no error: the fetch has not failed')
    t.ok(await built.readObject(`${WEBHOOK_MINUTE}/slowslow`), 'the record is stored before the answer')
    t.ok(await eventually(async () => await built.readObject('alerts/sl/ow/slowslow') !== undefined), 'the full alert follows')
  })

  t.test('ENRICH_WAIT_MS=0: the answer never waits for Threat Stack', async (t) => {
    const built = await build(t, { env: { ENRICH_WAIT_MS: '0' } })
    built.threatstack.setLatency(300)
    const res = await postAlerts(built.app, { id: 'nowait01', created_at: CREATED_AT })
    t.same(res.json(), { success: true, archived: [], pending: [{ id: 'nowait01' }] })
    t.ok(await eventually(async () => await built.readObject('alerts/no/wa/nowait01') !== undefined), 'the full alert follows')
  })

  t.test('ENRICH_WAIT_MS=0: the answer waits for the record only, not for its index entry, which follows it', async (t) => {
    const built = await build(t, { s3Proxy: true, env: { ENRICH_WAIT_MS: '0' } })
    await built.s3proxy!.failWith('hold', { match: /^PUT [^?]*\/index\// })
    const answered = await Promise.race([
      postAlerts(built.app, { id: 'noindex1', created_at: CREATED_AT }),
      sleep(20_000).then(() => undefined)
    ])
    t.ok(answered !== undefined, 'answered while the index entry\'s PUT is held')
    t.same(answered?.json(), { success: true, archived: [], pending: [{ id: 'noindex1' }] })
    t.ok(await built.readObject(`${WEBHOOK_MINUTE}/noindex1`), 'the record is stored before the answer')
    t.equal(await built.readObject('index/2017/01/15/23/10/00.000-noindex1'), undefined, 'the entry is not, yet')
    await built.s3proxy!.heal()
    t.ok(await eventually(async () => await built.readObject('index/2017/01/15/23/10/00.000-noindex1') !== undefined), 'the entry follows')
  })

  t.test('the answer that waits for the full alert also waits for the index entry', async (t) => {
    const built = await build(t)
    const res = await postAlerts(built.app, { id: 'withidx1', created_at: CREATED_AT })
    t.same(res.json(), { success: true, archived: ['withidx1'], pending: [] })
    t.ok(await built.readObject('index/2017/01/15/23/10/00.000-withidx1'), 'the entry is stored by the answer')
  })

  t.test('a batch mixing archived and pending; metrics count the alerts received and owed', async (t) => {
    const built = await build(t, { env: { ARCHIVE_CONCURRENCY: '1' } })
    await built.threatstack.failWith('json-500', 1)
    const res = await postAlerts(built.app, { alerts: [{ id: 'first001', created_at: CREATED_AT }, { id: 'second01', created_at: CREATED_AT }] })
    t.equal(res.statusCode, 200)
    t.same(res.json(), {
      success: true,
      archived: ['second01'],
      pending: [{ id: 'first001', error: { type: 'ThreatStackAPIError', message: 'Failure to communicate with Threat Stack (status 500)' } }]
    })
    t.ok(await built.readObject(`${WEBHOOK_MINUTE}/first001`), 'record of the pending alert')
    t.ok(await built.readObject(`${WEBHOOK_MINUTE}/second01`), 'record of the other alert')
    t.ok(await built.readObject('alerts/se/co/second01'), 'the other full alert is stored')
    const received = await built.app.metrics.completeness.received.get()
    t.equal(received.values[0]?.value, 2, 'two alerts received')
    t.ok(await eventually(async () => await built.readObject('alerts/fi/rs/first001') !== undefined), 'the pending one is completed')
    t.ok(await eventually(async () => (await built.app.metrics.completeness.pending.get()).values[0]?.value === 0), 'pending gauge back to 0')
  })

  t.test('the sender resends a pending alert: 200, the same keys, nothing written twice', async (t) => {
    const built = await build(t)
    await built.threatstack.failWith('json-500', 1)
    const body = { id: 'retry001', created_at: CREATED_AT }
    t.equal((await postAlerts(built.app, body)).statusCode, 200)
    const res = await postAlerts(built.app, body)
    t.equal(res.statusCode, 200)
    t.ok(await eventually(async () => (await listKeys(t, built.s3.endpoint)).length === 2))
    t.same(await listKeys(t, built.s3.endpoint), ['alerts/re/tr/retry001', `${WEBHOOK_MINUTE}/retry001`])
  })
})

t.test('S3 failures are 502 S3ClientError', async (t) => {
  t.test('S3 down, on POST and on GET', async (t) => {
    const built = await build(t)
    await built.s3.close()
    const post = await postAlerts(built.app, { id: 'nos3s3s3', created_at: CREATED_AT })
    const error = assertError(t, post, 502, 'S3ClientError')
    t.equal(error.message, 'Failure to communicate with S3')
    assertNoLeak(t, post.body, [SECRETS.bucket])
    const get = await getAlert(built.app, 'nos3s3s3')
    assertError(t, get, 502, 'S3ClientError')
    assertNoLeak(t, get.body, [SECRETS.bucket])
  })

  t.test('bucket missing is a 502 (not a 404), on POST and on GET', async (t) => {
    const built = await build(t, { env: { TS_AWS_S3_BUCKET: 'no-such-bucket-here' } })
    const post = await postAlerts(built.app, { id: 'nobucket', created_at: CREATED_AT })
    assertError(t, post, 502, 'S3ClientError')
    assertNoLeak(t, post.body, ['no-such-bucket-here'])
    const get = await getAlert(built.app, 'nobucket')
    assertError(t, get, 502, 'S3ClientError')
    assertNoLeak(t, get.body, ['no-such-bucket-here'])
  })

  t.test('credentials S3 refuses (unknown access key id), on POST and on GET', async (t) => {
    // s3rver does not verify SigV4 signatures, so a wrong secret alone goes unnoticed; an
    // unknown access key id is refused (InvalidAccessKeyId, 403).
    const built = await build(t, { env: { AWS_ACCESS_KEY_ID: 'WRONG-ACCESS-KEY-ID', AWS_SECRET_ACCESS_KEY: 'wrong-secret' } })
    const post = await postAlerts(built.app, { id: 'badcreds', created_at: CREATED_AT })
    assertError(t, post, 502, 'S3ClientError')
    assertNoLeak(t, post.body, ['WRONG-ACCESS-KEY-ID', 'wrong-secret'])
    const get = await getAlert(built.app, 'badcreds')
    assertError(t, get, 502, 'S3ClientError')
    assertNoLeak(t, get.body, ['WRONG-ACCESS-KEY-ID', 'wrong-secret'])
    t.equal(await built.readObject(`${WEBHOOK_MINUTE}/badcreds`), undefined, 'nothing written')
  })
})

t.test('a 5xx is logged once at error level with its cause chain and the request id', async (t) => {
  const scenarios: Array<{ name: string, setup: (b: Built) => Promise<void>, env?: Record<string, string>, status: number, method?: 'GET' }> = [
    { name: 'S3 down', setup: async (b) => b.s3.close(), status: 502 },
    { name: 'S3 down on GET', setup: async (b) => b.s3.close(), status: 502, method: 'GET' }
  ]
  for (const { name, setup, status, method } of scenarios) {
    t.test(name, async (t) => {
      const built = await build(t)
      await setup(built)
      const res = method === 'GET'
        ? await getAlert(built.app, 'logged01')
        : await postAlerts(built.app, { id: 'logged01', created_at: CREATED_AT })
      t.equal(res.statusCode, status)
      const { requestId } = (res.json() as { error: { requestId: string } }).error
      const logs = built.logs as Log[]
      const errors = logs.filter((l) => l.level === 50)
      t.equal(errors.length, 1, 'one error line')
      const line = errors[0]
      t.equal(line?.reqId, requestId, 'the log line carries the request id of the reply')
      t.ok(line?.err !== undefined, 'the error is logged as err')
      t.equal(line?.err?.type, (res.json() as { error: { type: string } }).error.type, 'the logged error is the one answered')
      t.match(`${line?.err?.message ?? ''}\n${line?.err?.stack ?? ''}`, /caused by/, 'the cause chain is logged')
      t.ok(logs.filter((l) => l.reqId === requestId).length >= 2, 'the request lines share the id')
      const text = JSON.stringify(logs)
      for (const secret of [SECRETS.apiKey, TOKENS.ingest, TOKENS.read]) t.notOk(text.includes(secret), 'no secret in the logs')
    })
  }

  t.test('a 4xx is logged at info, not as an error', async (t) => {
    const built = await build(t)
    const res = await postAlerts(built.app, { id: 'abc', created_at: CREATED_AT })
    t.equal(res.statusCode, 400)
    const { requestId } = (res.json() as { error: { requestId: string } }).error
    const logs = built.logs as Log[]
    t.equal(logs.filter((l) => (l.level ?? 0) >= 50).length, 0, 'no error line')
    t.ok(logs.some((l) => l.level === 30 && l.reqId === requestId && l.err?.type === 'WebhookDataError'), 'an info line with the error')
  })
})

t.test('with the legacy API key (no Hawk): archived, and a JSON 401 from Threat Stack is not echoed', async (t) => {
  const ok = await build(t, { hawk: false })
  const good = await postAlerts(ok.app, { id: 'legacyk2', created_at: CREATED_AT })
  t.equal(good.statusCode, 200, 'the legacy API key header works')
  t.match(ok.threatstack.requests, [{ path: '/v2/alerts/legacyk2', authorized: true }])

  const built = await build(t, { hawk: false })
  await built.threatstack.failWith('json-401')
  const res = await postAlerts(built.app, { id: 'legacyky', created_at: CREATED_AT })
  t.same(res.json(), { success: true, archived: [], pending: [{ id: 'legacyky', error: { type: 'ThreatStackAPIError', message: 'Failure to communicate with Threat Stack (status 401)' } }] })
  t.notMatch(res.body, /Unauthorized|errors/, 'no upstream error text')
})

t.test('a bare alert cannot smuggle an alerts array: an object with alerts is the batch form', async (t) => {
  const built = await build(t)
  const bare = { id: 'carrier1', created_at: '1484521800000' }
  const cases: Array<[string, unknown, RegExp]> = [
    ['ids with ../ segments', [{ id: '../../../../escaped/xx', created_at: '1484521800000' }, { id: 'ab/../../cd', created_at: '1' }], /^\/alerts\/0\/id /],
    ['a non-string id', [{ id: 12345678, created_at: '1484521800000' }], /^\/alerts\/0\/id /],
    ['an empty array', [], /^\/alerts /],
    ['500 alerts', Array.from({ length: 500 }, (_, i) => ({ id: `many${String(i).padStart(4, '0')}`, created_at: CREATED_AT })), /^\/alerts /],
    ['created_at true', [{ id: 'boolean1', created_at: true }], /^\/alerts\/0\/created_at /],
    ['not an array', 'abcd1234', /^\/alerts /],
    ['null', null, /^\/alerts /]
  ]
  for (const [name, alerts, detail] of cases) {
    t.test(name, async (t) => {
      const res = await postAlerts(built.app, { ...bare, alerts })
      const error = assertError(t, res, 400, 'WebhookDataError')
      t.equal(error.message, 'Webhook body is invalid')
      t.ok(error.details?.some((d) => detail.test(d)), `a detail matches ${String(detail)}: ${JSON.stringify(error.details)}`)
      t.same(await listKeys(t, built.s3.endpoint), [], 'nothing written, the carrier included')
      t.equal(built.threatstack.requests.length, 0, 'nothing fetched')
    })
  }

  t.test('a batch element may not carry alerts either: each is validated as an alert of the batch', async (t) => {
    const res = await postAlerts(built.app, { alerts: [{ ...bare, alerts: [{ id: '../x/yyyy', created_at: 1 }] }] })
    t.equal(res.statusCode, 200, 'the inner field is an unknown field of the alert, archived as received')
    t.same(res.json(), { success: true, archived: ['carrier1'], pending: [] })
    t.same(await listKeys(t, built.s3.endpoint), ['alerts/ca/rr/carrier1', `${WEBHOOK_MINUTE}/carrier1`], 'only the alert itself')
  })
})

t.test('webhook records are stored exactly as received', async (t) => {
  const built = await build(t)

  async function storedBytes (key: string): Promise<Buffer | undefined> {
    const object = await built.readObject(key)
    return object === undefined ? undefined : Buffer.from(object.body, 'utf8')
  }

  t.test('a bare alert: big integers, unicode escapes and raw UTF-8, spacing and key order', async (t) => {
    const record = '{\n\t"title" : "caf\\u00e9 \\ud83d\\ude00 café 😀 \\"quoted\\" \\/",\n  "id":"exact001",   "created_at":"1484521800000",\n' +
      '  "big": 12345678901234567890, "float": 1.0e+2, "neg": -0.0, "n": [ 1 , 2 ], "obj": { } }'
    for (const contentType of ['application/json', 'text/plain; charset=utf-8']) {
      const res = await postAlerts(built.app, ` \r\n${record}\n\n`, { contentType })
      t.equal(res.statusCode, 200, contentType)
      t.same(await storedBytes(`${WEBHOOK_MINUTE}/exact001`), Buffer.from(record, 'utf8'), 'the bytes of the alert as sent')
    }
    t.equal((await built.readObject(`${WEBHOOK_MINUTE}/exact001`))?.contentType, 'application/json')
    t.match((await built.readObject(`${WEBHOOK_MINUTE}/exact001`))?.body, /12345678901234567890/, 'every digit of the big integer')
  })

  t.test('a batch: each element, byte for byte', async (t) => {
    const first = '{"id":"exact002","created_at":1484521800000,"big":-98765432109876543210}'
    const second = '{ "created_at" : "1484521860000" ,\n "id" : "exact003", "s": "\\u0041\\t" }'
    const body = `{ "before": [1, {"id": "x"}], "alerts" : [\n  ${first} ,\n\t${second}\n], "after": {"alerts": []} }`
    const res = await postAlerts(built.app, body, { contentType: 'application/json' })
    t.equal(res.statusCode, 200)
    t.same(res.json(), { success: true, archived: ['exact002', 'exact003'], pending: [] })
    t.same(await storedBytes(`${WEBHOOK_MINUTE}/exact002`), Buffer.from(first, 'utf8'))
    t.same(await storedBytes('webhooks/2017/01/15/23/11/exact003'), Buffer.from(second, 'utf8'))
  })

  t.test('a UTF-8 byte order mark is not part of the record', async (t) => {
    const record = '{"id":"exact004","created_at":"1484521800000"}'
    const res = await postAlerts(built.app, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(record)]), { contentType: 'application/json' })
    t.equal(res.statusCode, 200)
    t.same(await storedBytes(`${WEBHOOK_MINUTE}/exact004`), Buffer.from(record))
  })

  t.test('a key given twice in any object is a 400 naming the rule, and nothing is written', async (t) => {
    const cases: Array<[string, string]> = [
      ['{"id":"dupkey01","created_at":"1484521800000","id":"dupkey02"}', '/ has the key "id" more than once'],
      ['{"id":"dupkey01","created_at":"1484521800000","x":{"a":1,"\\u0061":2}}', '/x has the key "a" more than once'],
      ['{"alerts":[{"id":"dupkey01","created_at":"1484521800000"},{"id":"dupkey02","created_at":1,"created_at":2}]}', '/alerts/1 has the key "created_at" more than once'],
      ['{"alerts":[{"id":"dupkey01","created_at":"1484521800000"}],"alerts":[{"id":"dupkey02","created_at":"1484521800000"}]}', '/ has the key "alerts" more than once']
    ]
    for (const [body, detail] of cases) {
      const res = await postAlerts(built.app, body, { contentType: 'application/json' })
      const error = assertError(t, res, 400, 'WebhookDataError')
      t.equal(error.message, 'Webhook body holds a key more than once')
      t.same(error.details, [`${detail}; keys must be unique in every object`])
    }
    const keys = await listKeys(t, built.s3.endpoint)
    t.notOk(keys.some((k) => k.includes('dupkey')), 'nothing written')
    t.notOk(built.threatstack.requests.some((r) => r.path.includes('dupkey')), 'nothing fetched')
  })

  t.test('a body that is not UTF-8 is a 400: it could not be stored as sent', async (t) => {
    const body = Buffer.concat([Buffer.from('{"id":"notutf81","created_at":"1484521800000","t":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')])
    for (const contentType of ['application/json', 'text/plain']) {
      const res = await postAlerts(built.app, body, { contentType })
      const error = assertError(t, res, 400, 'WebhookDataError')
      t.equal(error.message, 'Webhook body is not valid UTF-8')
    }
    t.equal(await built.readObject(`${WEBHOOK_MINUTE}/notutf81`), undefined)
  })
})

t.test('POST /alert when Threat Stack answers 200 with JSON nested too deeply: pending with ThreatStackRequestError', async (t) => {
  const built = await build(t)
  await built.threatstack.failWith('deep-json')
  const alert = { id: 'deepjson', created_at: '1484521800000' }
  const res = await postAlerts(built.app, alert)
  t.same(res.json(), { success: true, archived: [], pending: [{ id: 'deepjson', error: { type: 'ThreatStackRequestError', message: 'Failure to communicate with Threat Stack (status 200)' } }] })
  t.same(await listKeys(t, built.s3.endpoint), [`${WEBHOOK_MINUTE}/deepjson`], 'the webhook record only')
  t.notOk(JSON.stringify(built.logs).includes('S3ClientError'), 'never an S3 error')
})

t.test('a server killed with SIGKILL mid-request leaves no full alert without its webhook record', async (t) => {
  const { env, s3, threatstack } = await startUpstreams(t)
  const proxy = await startS3FaultProxy(s3.endpoint)
  t.teardown(async () => proxy.close())
  // The records' PUTs are held: the fetches complete meanwhile, the moment a full alert could be written first.
  await proxy.failWith('hold', { match: /^PUT \/[^/]+\/webhooks\// })
  const port = await freePort()
  const server = await startServer({
    ...env, AWS_ENDPOINT_URL_S3: proxy.endpoint, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', ARCHIVE_CONCURRENCY: '10'
  })
  t.teardown(() => { if (server.child.exitCode === null) server.child.kill('SIGKILL') })
  const alerts = Array.from({ length: 10 }, (_, i) => ({ id: `killed${String(i).padStart(2, '0')}`, created_at: CREATED_AT + i }))
  const posted = request(`${server.url}${ALERT_URL}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKENS.ingest}`, 'content-type': 'application/json' },
    body: JSON.stringify({ alerts })
  }).then(async (res) => { await res.body.dump(); return res.statusCode }, () => 'no answer')

  let ready = false
  for (let i = 0; i < 250 && !ready; i++) {
    ready = threatstack.requests.length === alerts.length && proxy.requests.filter((r) => r.fault === 'hold').length === alerts.length
    if (!ready) await sleep(20)
  }
  t.ok(ready, 'every full alert fetched, every record PUT held')
  // Time for any full alert PUT to go out; none may.
  await sleep(300)
  server.child.kill('SIGKILL')
  await server.exited
  t.equal(await posted, 'no answer', 'the sender got no answer, and will resend')
  await proxy.close()

  const keys = await listKeys(t, s3.endpoint)
  const records = new Set(keys.filter((k) => k.startsWith('webhooks/')).map((k) => k.slice(k.lastIndexOf('/') + 1)))
  const orphans = keys.filter((k) => k.startsWith('alerts/') && !records.has(k.slice(k.lastIndexOf('/') + 1)))
  t.same(orphans, [], 'no full alert without its record')
  t.notOk(proxy.requests.some((r) => r.method === 'PUT' && r.path.includes('/alerts/')), 'no full alert PUT was even made')
})
