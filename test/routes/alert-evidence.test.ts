// GET /alert/:alert_id/evidence on real parts (s3rver, the simulator): the webhook record as
// stored, the full alert's hash, and the digest status of each, through to tampering.
import t from 'tap'
import { createHash } from 'node:crypto'
import { DeleteObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3'
import { build, BEARER, SECRETS, type Built } from '../helpers/build.js'
import { assertNoLeak } from '../helpers/leaks.js'
import { LOCAL_S3_CREDENTIALS } from '../../dev/local-s3.js'
import { canonicalJson, parseDigest, runDigestJob } from '../../services/digest.js'
import { putOnce } from '../../services/storage.js'
import { webhookKey } from '../../services/keys.js'

const HOUR = 3_600_000
const DAY = Date.UTC(2017, 0, 15)

/** A 24-hex id (an ObjectId, as Threat Stack uses) created at `ms`. */
function idAt (ms: number, n: number): string {
  return Math.floor(ms / 1000).toString(16).padStart(8, '0') + n.toString(16).padStart(16, '0')
}

const sha = (text: string): string => createHash('sha256').update(text).digest('hex')

function rawClient (t: Tap, built: Built): S3Client {
  const client = new S3Client({ region: 'us-east-1', endpoint: built.s3.endpoint, forcePathStyle: true, credentials: LOCAL_S3_CREDENTIALS })
  t.teardown(() => client.destroy())
  return client
}

type Tap = { teardown: (fn: () => unknown) => void }

/** Posts one alert by webhook (the simulator has its full alert). */
async function archive (built: Built, id: string, at: number, title = 'Root login over SSH'): Promise<void> {
  built.threatstack.setAlert(id, { id, created_at: at, severity: 1, title, server_or_region: 'web-1' })
  const res = await built.app.inject({
    method: 'POST',
    url: '/api/v1/s3/alert',
    // Spaces kept on purpose: the record is the text as posted, not a re-serialization.
    payload: `{"alerts": [ {"id": "${id}", "created_at": "${at}", "severity": 1, "title": "${title}"} ]}`,
    headers: { ...BEARER.ingest, 'content-type': 'application/json' }
  })
  if (res.statusCode !== 200 || res.json().archived[0] !== id) throw new Error(`not archived: ${res.body}`)
}

/** The digest job for the hour of `hourMs`, as the sweeper runs it once the hour has closed. */
async function digest (built: Built, hourMs: number): Promise<void> {
  const run = await runDigestJob({ store: built.app.store, owner: 'test', lookbackHours: 1 }, hourMs + HOUR + 5 * 60_000)
  if (run.written.length !== 1) throw new Error(`expected one digest, got ${JSON.stringify(run)}`)
}

async function evidence (built: Built, id: string, headers: Record<string, string> = BEARER.read, prefix = '/api/v1/s3') {
  return await built.app.inject({ url: `${prefix}/alert/${id}/evidence`, headers })
}

t.test('an alert of a digested hour: its record as stored, both objects covered', async (t) => {
  const built = await build(t)
  const at = DAY + 10 * HOUR + 5 * 60_000 + 17_000
  const id = idAt(at, 1)
  await archive(built, id, at)
  await digest(built, DAY + 10 * HOUR)
  const recordKey = `webhooks/2017/01/15/10/05/${id}`
  const alertKey = `alerts/${id.slice(0, 2)}/${id.slice(2, 4)}/${id}`
  const storedRecord = (await built.readObject(recordKey))!.body
  const storedAlert = (await built.readObject(alertKey))!.body

  for (const prefix of ['/api/v1/s3', '/threatstack-to-s3/api/v1/s3']) {
    const res = await evidence(built, id, BEARER.read, prefix)
    t.equal(res.statusCode, 200, prefix)
    t.equal(res.headers['cache-control'], 'no-store', 'the status changes over time: never cached')
    const body = res.json()
    t.same(body, {
      success: true,
      id,
      hour: '2017-01-15T10:00:00Z',
      webhook: {
        key: recordKey,
        sha256: sha(storedRecord),
        size: Buffer.byteLength(storedRecord),
        digest: { status: 'covered', digest: 'digests/2017/01/15/10.json' },
        text: storedRecord,
        record: { id, created_at: String(at), severity: 1, title: 'Root login over SSH' }
      },
      alert: {
        key: alertKey,
        stored: true,
        sha256: sha(storedAlert),
        size: Buffer.byteLength(storedAlert),
        digest: { status: 'covered', digest: 'digests/2017/01/15/10.json' }
      }
    })
    t.match(body.webhook.text, /^\{"id": /, 'the exact text as posted, spaces and all')
    assertNoLeak(t, res.body, [SECRETS.bucket])
  }
})

t.test('an alert of an hour without a digest: not yet, for both objects', async (t) => {
  const built = await build(t)
  const at = DAY + 11 * HOUR + 12 * 60_000
  const id = idAt(at, 2)
  await archive(built, id, at)
  const res = await evidence(built, id)
  t.equal(res.statusCode, 200)
  t.match(res.json(), {
    hour: '2017-01-15T11:00:00Z',
    webhook: { key: `webhooks/2017/01/15/11/12/${id}`, digest: { status: 'not-yet' } },
    alert: { stored: true, digest: { status: 'not-yet' } }
  })
  t.notOk('digest' in res.json().webhook.digest, 'no digest key when none covers it')
})

t.test('an object that came after its hour\'s digest is not yet covered, then covered by the supplement', async (t) => {
  const built = await build(t)
  const hour = DAY + 12 * HOUR
  await digest(built, hour)
  const at = hour + 30 * 60_000
  const id = idAt(at, 3)
  await archive(built, id, at)
  t.match((await evidence(built, id)).json(), { webhook: { digest: { status: 'not-yet' } }, alert: { digest: { status: 'not-yet' } } })
  await digest(built, hour)
  t.match((await evidence(built, id)).json(), {
    webhook: { digest: { status: 'covered', digest: 'digests/2017/01/15/12.1.json' } },
    alert: { digest: { status: 'covered', digest: 'digests/2017/01/15/12.1.json' } }
  })
})

t.test('a pending alert (record without full alert) is found near its ObjectId\'s time, within a bounded window', async (t) => {
  const built = await build(t)
  const idTime = DAY + 13 * HOUR + 20 * 60_000
  // created_at 3 minutes after the id's own time: the fallback looks a few minutes either side.
  const near = idAt(idTime, 4)
  const nearAt = idTime + 3 * 60_000 + 5_000
  await putOnce(built.app.store, webhookKey('', near, nearAt), JSON.stringify({ id: near, created_at: String(nearAt), title: 'pending' }))
  const res = await evidence(built, near)
  t.equal(res.statusCode, 200)
  t.match(res.json(), {
    webhook: { key: `webhooks/2017/01/15/13/23/${near}`, record: { title: 'pending' }, digest: { status: 'not-yet' } },
    alert: { key: `alerts/${near.slice(0, 2)}/${near.slice(2, 4)}/${near}`, stored: false, digest: { status: 'not-yet' } }
  })
  t.notOk('sha256' in res.json().alert, 'no hash for an object not stored')

  await digest(built, DAY + 13 * HOUR)
  t.match((await evidence(built, near)).json(), { webhook: { digest: { status: 'covered' } }, alert: { stored: false, digest: { status: 'not-yet' } } })

  // 20 minutes off: outside the window, so not found (no scan of the archive).
  const far = idAt(idTime, 5)
  await putOnce(built.app.store, webhookKey('', far, idTime + 20 * 60_000), JSON.stringify({ id: far, created_at: String(idTime + 20 * 60_000) }))
  const missing = await evidence(built, far)
  t.equal(missing.statusCode, 404)
  t.equal(missing.json().error.type, 'AlertNotFoundError')

  // Not an ObjectId, no full alert: nothing names its time.
  await putOnce(built.app.store, webhookKey('', 'not-an-objectid', idTime), JSON.stringify({ id: 'not-an-objectid', created_at: String(idTime) }))
  t.equal((await evidence(built, 'not-an-objectid')).statusCode, 404)
})

t.test('unknown id 404, bad id 400, missing or wrong token 401, ingest token 403, nothing leaked', async (t) => {
  const built = await build(t)
  const unknown = await evidence(built, idAt(DAY, 9))
  t.equal(unknown.statusCode, 404)
  t.match(unknown.json(), { success: false, error: { type: 'AlertNotFoundError', message: 'Alert not found in the archive' } })
  const bad = await evidence(built, 'ab')
  t.equal(bad.statusCode, 400)
  t.equal(bad.json().error.type, 'RequestValidationError')
  const none = await built.app.inject({ url: `/api/v1/s3/alert/${idAt(DAY, 9)}/evidence` })
  t.equal(none.statusCode, 401)
  t.equal(none.json().error.type, 'AuthenticationError')
  t.equal((await evidence(built, idAt(DAY, 9), { authorization: 'Bearer nope' })).statusCode, 401)
  const ingest = await evidence(built, idAt(DAY, 9), BEARER.ingest)
  t.equal(ingest.statusCode, 403)
  t.equal(ingest.json().error.type, 'AuthorizationError')
  for (const res of [unknown, bad, none, ingest]) assertNoLeak(t, res.body)
})

t.test('tampering after the digest: a mismatch, with what the digest lists', async (t) => {
  const built = await build(t)
  const s3 = rawClient(t, built)
  const at = DAY + 14 * HOUR + 2 * 60_000
  const id = idAt(at, 6)
  await archive(built, id, at)
  await digest(built, DAY + 14 * HOUR)
  const recordKey = `webhooks/2017/01/15/14/02/${id}`
  const alertKey = `alerts/${id.slice(0, 2)}/${id.slice(2, 4)}/${id}`
  const original = (await built.readObject(recordKey))!.body

  // The record rewritten in the bucket (s3rver keeps no checksum, so only the digest can tell).
  const forged = original.replace('Root login over SSH', 'Nothing to see here')
  await s3.send(new PutObjectCommand({ Bucket: SECRETS.bucket, Key: recordKey, Body: forged }))
  let res = await evidence(built, id)
  t.equal(res.statusCode, 200, 'the finding is the answer: both sides shown')
  t.same(res.json().webhook.digest, {
    status: 'mismatch',
    digest: 'digests/2017/01/15/14.json',
    listed: { sha256: sha(original), size: Buffer.byteLength(original) }
  })
  t.equal(res.json().webhook.sha256, sha(forged), 'the hash of what is stored now')
  t.equal(res.json().webhook.text, forged)
  t.equal(res.json().alert.digest.status, 'covered', 'the full alert is untouched')
  assertNoLeak(t, res.body, [SECRETS.bucket])

  // The full alert deleted: the digest lists an object no longer stored.
  await s3.send(new DeleteObjectCommand({ Bucket: SECRETS.bucket, Key: alertKey }))
  res = await evidence(built, id)
  t.equal(res.statusCode, 200)
  t.match(res.json().alert, { stored: false, digest: { status: 'mismatch', digest: 'digests/2017/01/15/14.json' } })
})

t.test('a digest rewritten to list another hash is a mismatch; one that is no digest is a 502', async (t) => {
  const built = await build(t)
  const s3 = rawClient(t, built)
  const at = DAY + 15 * HOUR + 45 * 60_000
  const id = idAt(at, 7)
  await archive(built, id, at)
  await digest(built, DAY + 15 * HOUR)
  const digestKey = 'digests/2017/01/15/15.json'
  const doc = parseDigest(Buffer.from((await built.readObject(digestKey))!.body))!
  const alertKey = `alerts/${id.slice(0, 2)}/${id.slice(2, 4)}/${id}`
  const changed = { ...doc, objects: doc.objects.map((o) => o.key === alertKey ? { ...o, sha256: '0'.repeat(64), size: 1 } : o) }
  await s3.send(new PutObjectCommand({ Bucket: SECRETS.bucket, Key: digestKey, Body: canonicalJson(changed) }))
  const res = await evidence(built, id)
  t.equal(res.statusCode, 200)
  t.same(res.json().alert.digest, { status: 'mismatch', digest: digestKey, listed: { sha256: '0'.repeat(64), size: 1 } })
  t.equal(res.json().webhook.digest.status, 'covered')

  await s3.send(new PutObjectCommand({ Bucket: SECRETS.bucket, Key: digestKey, Body: 'not a digest' }))
  const broken = await evidence(built, id)
  t.equal(broken.statusCode, 502)
  t.match(broken.json(), { success: false, error: { type: 'ArchiveIntegrityError', message: 'A stored object failed its integrity check' } })
  t.notMatch(broken.body, /digests\//, 'the reply does not name the key; the log does')
  assertNoLeak(t, broken.body, [SECRETS.bucket])
  const logged = built.logs.find((l) => (l.err as { type?: string } | undefined)?.type === 'ArchiveIntegrityError')
  t.match(JSON.stringify(logged), /digests\/2017\/01\/15\/15\.json/, 'the log names the digest')
})

t.test('the route is in the OpenAPI document with its error responses', async (t) => {
  const built = await build(t)
  const doc = (await built.app.inject({ url: '/documentation/json' })).json()
  const op = doc.paths['/api/v1/s3/alert/{alert_id}/evidence']?.get
  t.ok(op, 'documented')
  t.equal(op.operationId, 'getAlertEvidence')
  t.same(Object.keys(op.responses).sort(), ['200', '400', '401', '403', '404', '500', '502', '503'])
})
