// Write-once, checksums and Object Lock of the archive, on moto: an S3 that enforces
// If-None-Match, stores SHA-256 checksums and refuses to delete a locked version.
import t from 'tap'
import {
  CreateBucketCommand, DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, ListObjectVersionsCommand, PutObjectCommand,
  PutObjectLockConfigurationCommand, type S3Client
} from '@aws-sdk/client-s3'
import { createHash } from 'node:crypto'
import { build, BEARER } from './helpers/build.js'
import { MOTO_CREDENTIALS, startMoto, withMoto, type Moto } from './helpers/moto.js'
import { sample } from './helpers/metrics.js'
import { assertNoLeak } from './helpers/leaks.js'

let BUCKET = 'integrity-archive-0'
let LOCKED = 'integrity-locked-0'
let runs = 0
const sha = (body: string): string => createHash('sha256').update(body).digest('base64')

// One moto for the whole file (it starts in seconds, which adds up on a busy machine); each test
// gets buckets of its own.
let shared: Promise<Moto> | undefined

async function motoApp (_t: any, executable: string, env: Record<string, string> = {}, locked = false, defaultRetention?: { Mode: 'GOVERNANCE' | 'COMPLIANCE', Days: number }): Promise<{ app: Awaited<ReturnType<typeof build>>, s3: S3Client }> {
  shared ??= startMoto(t, executable, [])
  const moto = await shared
  runs++
  BUCKET = `integrity-archive-${runs}`
  LOCKED = `integrity-locked-${runs}`
  await moto.client.send(new CreateBucketCommand({ Bucket: BUCKET }))
  await moto.client.send(new CreateBucketCommand({ Bucket: LOCKED, ObjectLockEnabledForBucket: true }))
  if (defaultRetention !== undefined) {
    await moto.client.send(new PutObjectLockConfigurationCommand({ Bucket: LOCKED, ObjectLockConfiguration: { ObjectLockEnabled: 'Enabled', Rule: { DefaultRetention: defaultRetention } } }))
  }
  const built = await build(_t, {
    env: {
      AWS_ENDPOINT_URL_S3: moto.endpoint,
      TS_AWS_S3_BUCKET: locked ? LOCKED : BUCKET,
      AWS_ACCESS_KEY_ID: MOTO_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: MOTO_CREDENTIALS.secretAccessKey,
      ...env
    }
  })
  return { app: built, s3: moto.client }
}

async function text (s3: S3Client, bucket: string, key: string): Promise<string> {
  const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))
  return await res.Body!.transformToString()
}

const ALERT = { id: 'abcd1234ef', created_at: '1484521800000', severity: 2, title: 'first delivery' }
const RECORD_KEY = 'webhooks/2017/01/15/23/10/abcd1234ef'
const ALERT_KEY = 'alerts/ab/cd/abcd1234ef'

await withMoto(t, 'a re-posted id with other content is a 200, the archived objects are unchanged, the conflict counted', async (t, executable) => {
  const { app: { app, logs }, s3 } = await motoApp(t, executable)
  const post = async (alert: Record<string, unknown>): Promise<number> => (await app.inject({
    method: 'POST', url: '/api/v1/s3/alert', headers: BEARER.ingest, payload: { alerts: [alert] }
  })).statusCode
  t.equal(await post(ALERT), 200)
  const record = await text(s3, BUCKET, RECORD_KEY)
  const full = await text(s3, BUCKET, ALERT_KEY)

  t.equal(await post(ALERT), 200, 'the same delivery again: already archived')
  t.equal(await post({ ...ALERT, title: 'a forgery' }), 200, 'other content under the same id: still a success for the sender')
  t.equal(await text(s3, BUCKET, RECORD_KEY), record, 'the webhook record is the first one')
  t.equal(await text(s3, BUCKET, ALERT_KEY), full, 'the full alert is the first one')

  const metrics = (await app.inject({ url: '/metrics', headers: BEARER.read })).body
  t.equal(sample(metrics, 'threatstack_to_s3_duplicates_total', { object: 'webhook' }), 2)
  t.equal(sample(metrics, 'threatstack_to_s3_duplicates_total', { object: 'alert' }), 2)
  t.equal(sample(metrics, 'threatstack_to_s3_conflicts_total', { object: 'webhook' }), 1, 'only the forged record differs')
  t.equal(sample(metrics, 'threatstack_to_s3_conflicts_total', { object: 'alert' }), 0, 'Threat Stack gave the same full alert')
  const warnings = logs.filter((l) => String(l.msg).includes('offered again with a different body'))
  t.equal(warnings.length, 1)
  t.match(warnings[0], { object: 'webhook', id: 'abcd1234ef' })
  t.notMatch(JSON.stringify(warnings), /forgery|webhooks\//, 'the warning names ids, not bodies or keys')
})

await withMoto(t, 'every object carries the SHA-256 of its bytes, stored by S3', async (t, executable) => {
  const { app: { app }, s3 } = await motoApp(t, executable)
  t.equal((await app.inject({ method: 'POST', url: '/api/v1/s3/alert', headers: BEARER.ingest, payload: { alerts: [ALERT] } })).statusCode, 200)
  for (const key of [RECORD_KEY, ALERT_KEY]) {
    const head = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key, ChecksumMode: 'ENABLED' }))
    t.equal(head.ChecksumSHA256, sha(await text(s3, BUCKET, key)), `${key}: the stored checksum is that of its bytes`)
  }
  const res = await app.inject({ url: '/api/v1/s3/alert/abcd1234ef', headers: BEARER.read })
  t.equal(res.statusCode, 200, 'a good object reads back')
})

await withMoto(t, 'an object whose bytes no longer match its checksum is a 502 ArchiveIntegrityError that shows nothing of it', async (t, executable) => {
  const { app: { app, logs }, s3 } = await motoApp(t, executable)
  t.equal((await app.inject({ method: 'POST', url: '/api/v1/s3/alert', headers: BEARER.ingest, payload: { alerts: [ALERT] } })).statusCode, 200)
  // Someone with bucket access replaces the bytes; moto stores the checksum it is given
  // without checking it, which is what a bucket whose bytes changed under their checksum looks like.
  const original = await text(s3, BUCKET, ALERT_KEY)
  const tampered = original.replace('"abcd1234ef"', '"TAMPERED-id"')
  await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: ALERT_KEY, Body: tampered, ChecksumAlgorithm: 'SHA256', ChecksumSHA256: sha(original) }))

  const res = await app.inject({ url: '/api/v1/s3/alert/abcd1234ef', headers: BEARER.read })
  t.equal(res.statusCode, 502)
  t.match(res.json(), { success: false, error: { type: 'ArchiveIntegrityError', message: 'A stored object failed its integrity check' } })
  t.notMatch(res.body, /TAMPERED|alerts\/ab|integrity-archive/, 'neither the object nor its key nor the bucket')
  assertNoLeak(t, res.body)
  const logged = logs.find((l) => (l.err as { type?: string } | undefined)?.type === 'ArchiveIntegrityError')
  t.ok(logged, 'logged')
  t.match(JSON.stringify(logged), /alerts\/ab\/cd\/abcd1234ef/, 'the log names the key')

  const search = await app.inject({ url: '/api/v1/s3/alert?start=2017-01-15&end=2017-01-16', headers: BEARER.read })
  t.equal(search.statusCode, 502, 'a search never serves it either')
  t.equal(search.json().error.type, 'ArchiveIntegrityError')
})

await withMoto(t, 'an object without a checksum (as the Python service wrote them) reads as before', async (t, executable) => {
  const { app: { app }, s3 } = await motoApp(t, executable)
  await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'alerts/py/th/python0001', Body: JSON.stringify({ id: 'python0001', title: 'old' }) }))
  const res = await app.inject({ url: '/api/v1/s3/alert/python0001', headers: BEARER.read })
  t.equal(res.statusCode, 200)
  t.match(res.json(), { alert: { id: 'python0001', title: 'old' } })
})

await withMoto(t, 'with S3_OBJECT_LOCK_MODE and _DAYS every object is retained; a locked version cannot be deleted', async (t, executable) => {
  const before = Date.now()
  const { app: { app, logs }, s3 } = await motoApp(t, executable, { S3_OBJECT_LOCK_MODE: 'GOVERNANCE', S3_OBJECT_LOCK_DAYS: '2' }, true)
  t.equal((await app.inject({ method: 'POST', url: '/api/v1/s3/alert', headers: BEARER.ingest, payload: { alerts: [ALERT] } })).statusCode, 200)
  for (const key of [RECORD_KEY, ALERT_KEY]) {
    // moto's GetObjectRetention answers unparseable XML; HeadObject carries the same two fields.
    const head = await s3.send(new HeadObjectCommand({ Bucket: LOCKED, Key: key }))
    t.equal(head.ObjectLockMode, 'GOVERNANCE', `${key} is locked`)
    const until = head.ObjectLockRetainUntilDate?.getTime() ?? 0
    t.ok(until >= before + 2 * 86_400_000 - 1000, 'for the days configured')
  }
  const versions = await s3.send(new ListObjectVersionsCommand({ Bucket: LOCKED, Prefix: ALERT_KEY }))
  const versionId = versions.Versions?.[0]?.VersionId
  t.ok(versionId)
  await t.rejects(s3.send(new DeleteObjectCommand({ Bucket: LOCKED, Key: ALERT_KEY, VersionId: versionId })), { name: 'AccessDenied' })
  t.equal(await text(s3, LOCKED, ALERT_KEY) !== '', true, 'still there')
  t.notOk(logs.some((l) => String(l.msg).includes('Object Lock') && l.level === 50), 'bucket and settings agree: no complaint at start')
})

await withMoto(t, 'the start-up check logs when the bucket and the lock settings disagree', async (t, executable) => {
  const { app: { logs } } = await motoApp(t, executable, { S3_OBJECT_LOCK_MODE: 'COMPLIANCE', S3_OBJECT_LOCK_DAYS: '1' })
  const line = logs.find((l) => String(l.msg).includes('Object Lock'))
  t.ok(line, 'a line at start-up')
  t.match(String(line?.msg), /not enabled on the bucket/)
  t.equal(line?.level, 50, 'an error: every write will be refused')
})

await withMoto(t, 'without lock settings on a locked bucket, the start-up check says the bucket\'s default retention applies', async (t, executable) => {
  const { app: { logs } } = await motoApp(t, executable, {}, true)
  const line = logs.find((l) => String(l.msg).includes('Object Lock'))
  t.ok(line)
  t.equal(line?.level, 40, 'a warning')
})

await withMoto(t, 'a bucket whose default retention differs from the settings: a warning naming both at start; /status stays booleans only', async (t, executable) => {
  const { app: { app, logs } } = await motoApp(t, executable, { S3_OBJECT_LOCK_MODE: 'COMPLIANCE', S3_OBJECT_LOCK_DAYS: '3' }, true, { Mode: 'GOVERNANCE', Days: 1 })
  const line = logs.find((l) => String(l.msg).includes('Object Lock'))
  t.equal(line?.level, 40, 'a warning')
  t.match(String(line?.msg), /\(GOVERNANCE, 1 days\) differs from S3_OBJECT_LOCK_MODE\/_DAYS \(COMPLIANCE, 3 days\)/)
  const status = await app.inject({ url: '/api/v1/s3/status' })
  t.same(Object.keys(status.json()).sort(), ['s3', 'success', 'threatstack'])
  t.same(status.json().s3, { success: true }, 'nothing of the lock in /status')
})
