// The requests the Python/Flask service accepted, replayed as its clients sent them, and the
// archives it wrote, read back.
import t from 'tap'
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3'
import { LOCAL_S3_CREDENTIALS } from '../dev/local-s3.js'
import { BEARER, SECRETS, build } from './helpers/build.js'
import { ALERT_URL, CREATED_AT, LEGACY_ALERT_URL, WEBHOOK_MINUTE, assertError, getAlert, listKeys, postAlerts } from './helpers/requests.js'

const PREFIXES = ['/api/v1/s3', '/threatstack-to-s3/api/v1/s3']

t.test('webhooks as the Python service received them', async (t) => {
  const built = await build(t)
  const cases = [
    { url: ALERT_URL, alert: { id: '587c0159a907346eccb84004', created_at: '1484521800000', severity: 2, title: 'string created_at' } },
    { url: ALERT_URL, alert: { id: '587c0159a907346eccb84005', created_at: 1484521800000, severity: 1, title: 'number created_at' } },
    { url: LEGACY_ALERT_URL, alert: { id: '587c0159a907346eccb84006', created_at: '1484521800000', title: 'legacy prefix, string' } },
    { url: LEGACY_ALERT_URL, alert: { id: '587c0159a907346eccb84007', created_at: 1484521800000, title: 'legacy prefix, number' } }
  ]
  for (const { url, alert } of cases) {
    // Flask read the body with request.get_json(): senders set application/json.
    const res = await postAlerts(built.app, JSON.stringify({ alerts: [alert] }), { url, contentType: 'application/json' })
    t.equal(res.statusCode, 200, `${url} ${typeof alert.created_at} created_at`)
    t.match(res.json(), { success: true }, 'the Python reply ({"success": true}) is still there')
    t.same(res.json(), { success: true, archived: [alert.id], pending: [] })
    const stored = await built.readObject(`${WEBHOOK_MINUTE}/${alert.id}`)
    t.same(JSON.parse(stored?.body ?? 'null'), alert, 'the webhook record at the Python key')
    t.ok(await built.readObject(`alerts/58/7c/${alert.id}`), 'the full alert at the Python key')
  }
  t.equal((await listKeys(t, built.s3.endpoint)).length, 8)
})

t.test('reads as the Python service answered them', async (t) => {
  const built = await build(t)
  const id = '587c0159a907346eccb84004'
  t.equal((await postAlerts(built.app, { alerts: [{ id, created_at: String(CREATED_AT) }] })).statusCode, 200)
  for (const prefix of PREFIXES) {
    const one = await getAlert(built.app, id, { url: `${prefix}/alert` })
    t.equal(one.statusCode, 200, `${prefix}/alert/<id>`)
    t.match(one.json(), { success: true, alert: { id } })

    const range = await built.app.inject({ method: 'GET', url: `${prefix}/alert?start=2017-01-15&end=2017-01-16`, headers: BEARER.read })
    t.equal(range.statusCode, 200, `${prefix}/alert?start=2017-01-15&end=2017-01-16`)
    t.match(range.json(), { success: true, alerts: [{ id }] })

    const status = await built.app.inject({ method: 'GET', url: `${prefix}/status` })
    t.equal(status.statusCode, 200, `${prefix}/status`)
    t.same(status.json(), { success: true, s3: { success: true }, threatstack: { success: true } }, 'the Python reply, field for field')
  }
})

t.test('a search with start and end in a form body, as Flask first read them', async (t) => {
  const built = await build(t)
  const id = '587c0159a907346eccb84004'
  t.equal((await postAlerts(built.app, { alerts: [{ id, created_at: String(CREATED_AT) }] })).statusCode, 200)
  for (const prefix of PREFIXES) {
    const form = await built.app.inject({
      method: 'GET',
      url: `${prefix}/alert`,
      headers: { ...BEARER.read, 'content-type': 'application/x-www-form-urlencoded' },
      payload: 'start=2017-01-15&end=2017-01-16'
    })
    t.equal(form.statusCode, 200, `${prefix}/alert with a form body`)
    t.match(form.json(), { success: true, alerts: [{ id }] })
  }
})

t.test('what the Python service accepted and this one refuses', async (t) => {
  const built = await build(t)
  // iso8601.parse_date read a date-time without offset as UTC; RFC 3339 requires the offset.
  const noOffset = await built.app.inject({ method: 'GET', url: `${ALERT_URL}?start=2017-01-15T23:00:00&end=2017-01-16`, headers: BEARER.read })
  assertError(t, noOffset, 400, 'DateParseError')
  const withOffset = await built.app.inject({ method: 'GET', url: `${ALERT_URL}?start=2017-01-15T23:00:00Z&end=2017-01-16`, headers: BEARER.read })
  t.equal(withOffset.statusCode, 200, 'the same instant with Z')
  // The Python service archived without asking for a token.
  const anonymous = await built.app.inject({ method: 'POST', url: ALERT_URL, payload: { alerts: [{ id: 'abcd1234', created_at: CREATED_AT }] } })
  assertError(t, anonymous, 401, 'AuthenticationError')
})

t.test('archives written by the Python service are readable', async (t) => {
  const built = await build(t)
  const writer = new S3Client({ region: 'us-east-1', endpoint: built.s3.endpoint, forcePathStyle: true, credentials: LOCAL_S3_CREDENTIALS })
  t.teardown(() => writer.destroy())
  // boto3 put_object(Body=json.dumps(alert)): Python's separators (", " and ": "), \u escapes for
  // anything outside ASCII, and no content type (S3 stores binary/octet-stream).
  const put = async (key: string, body: string): Promise<void> => {
    await writer.send(new PutObjectCommand({ Bucket: SECRETS.bucket, Key: key, Body: body }))
  }
  const id = '587c0159a907346eccb84004'
  await put(`${WEBHOOK_MINUTE}/${id}`, `{"id": "${id}", "created_at": 1484521800000}`)
  await put(`alerts/58/7c/${id}`,
    `{"id": "${id}", "created_at": 1484521800000, "severity": 2, "title": "Connexion inattendue \\u00e0 l'h\\u00f4te", ` +
    '"rule": {"name": "ssh", "enabled": true}, "tags": [], "server": null}')
  // A webhook record whose full alert the Python service never wrote (its fetch failed).
  await put(`${WEBHOOK_MINUTE}/587c0159a907346eccb84099`, '{"id": "587c0159a907346eccb84099", "created_at": 1484521830000}')

  const expected = {
    id,
    created_at: 1484521800000,
    severity: 2,
    title: 'Connexion inattendue à l\'hôte',
    rule: { name: 'ssh', enabled: true },
    tags: [],
    server: null
  }
  const one = await getAlert(built.app, id)
  t.equal(one.statusCode, 200)
  t.same(one.json(), { success: true, alert: expected }, 'by id')

  const range = await built.app.inject({ method: 'GET', url: `${ALERT_URL}?start=2017-01-15&end=2017-01-16`, headers: BEARER.read })
  t.equal(range.statusCode, 200)
  t.same(range.json(), { success: true, alerts: [expected], nextCursor: null, missing: ['587c0159a907346eccb84099'] }, 'by time range')

  // Archiving the same alert again rewrites the same keys: nothing is duplicated.
  t.equal((await postAlerts(built.app, { alerts: [{ id, created_at: 1484521800000 }] })).statusCode, 200)
  t.same(await listKeys(t, built.s3.endpoint), [
    `alerts/58/7c/${id}`,
    `${WEBHOOK_MINUTE}/${id}`,
    `${WEBHOOK_MINUTE}/587c0159a907346eccb84099`
  ])
})
