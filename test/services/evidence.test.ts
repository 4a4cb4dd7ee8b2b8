// services/evidence.ts: where a record is looked for, and on moto (an S3 that stores and checks
// SHA-256 checksums) the two ways a changed object shows: replaced together with a checksum of
// its own (only the digest tells: a mismatch), or bytes under a checksum they fail (502).
import t from 'tap'
import { createHash } from 'node:crypto'
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3'
import { candidateMinutes, getEvidence, objectIdTimeMs, RECORD_SEARCH_MINUTES } from '../../services/evidence.js'
import { runDigestJob } from '../../services/digest.js'
import { alertKey, webhookKey } from '../../services/keys.js'
import { putOnce } from '../../services/storage.js'
import { ArchiveIntegrityError, AlertNotFoundError } from '../../errors/index.js'
import { motoStore, startMoto, withMoto } from '../helpers/moto.js'

const MINUTE = 60_000
const AT = Date.UTC(2017, 0, 15, 9, 30, 12)
const ID = Math.floor(AT / 1000).toString(16) + '0000000000000001'

const sha64 = (text: string): string => createHash('sha256').update(text).digest('base64')
const sha = (text: string): string => createHash('sha256').update(text).digest('hex')

t.test('an ObjectId names its time; anything else does not', async (t) => {
  t.equal(objectIdTimeMs(ID), Math.floor(AT / 1000) * 1000)
  t.equal(objectIdTimeMs(ID.toUpperCase()), Math.floor(AT / 1000) * 1000)
  t.equal(objectIdTimeMs('abcd1234ef'), undefined)
  t.equal(objectIdTimeMs(`${ID}0`), undefined)
})

t.test('candidate minutes: the full alert\'s first, then the id\'s, then the window nearest first, bounded', async (t) => {
  const idMinute = Date.UTC(2017, 0, 15, 9, 30)
  const far = candidateMinutes(ID, Date.UTC(2017, 0, 15, 10, 10, 40))
  t.same(far.slice(0, 4), [Date.UTC(2017, 0, 15, 10, 10), idMinute, idMinute - MINUTE, idMinute + MINUTE])
  t.equal(far.length, 2 * RECORD_SEARCH_MINUTES + 2)
  t.ok(far.slice(1).every((m) => Math.abs(m - idMinute) <= RECORD_SEARCH_MINUTES * MINUTE), 'the rest within the window')
  const near = candidateMinutes(ID, Date.UTC(2017, 0, 15, 9, 31, 40))
  t.same(near.slice(0, 2), [Date.UTC(2017, 0, 15, 9, 31), idMinute])
  t.equal(near.length, 2 * RECORD_SEARCH_MINUTES + 1, 'the full alert\'s minute is inside the window: read once')
  t.same(candidateMinutes(ID, undefined).length, 2 * RECORD_SEARCH_MINUTES + 1)
  t.same(candidateMinutes('abcd1234ef', AT), [Date.UTC(2017, 0, 15, 9, 30)], 'not an ObjectId: the full alert\'s minute only')
  t.same(candidateMinutes('abcd1234ef', undefined), [], 'nothing to go by')
  t.same(candidateMinutes('abcd1234ef', Number.NaN), [])
})

await withMoto(t, 'on moto: a replaced object is a mismatch, bytes failing their checksum an ArchiveIntegrityError', async (t, executable) => {
  const moto = await startMoto(t, executable, [{ name: 'evidence' }])
  const store = motoStore(t, moto, 'evidence')
  const recordText = JSON.stringify({ id: ID, created_at: String(AT), title: 'original' })
  const alertText = JSON.stringify({ id: ID, created_at: AT, title: 'original', severity: 1 })
  const recordKey = webhookKey('', ID, AT)
  const fullKey = alertKey('', ID)
  t.equal(await putOnce(store, recordKey, recordText), 'created')
  t.equal(await putOnce(store, fullKey, alertText), 'created')

  let evidence = await getEvidence({ store }, ID)
  t.match(evidence, { webhook: { key: recordKey, sha256: sha(recordText), digest: { status: 'not-yet' } }, alert: { stored: true, sha256: sha(alertText) } })

  const run = await runDigestJob({ store, owner: 'test', lookbackHours: 1 }, Date.UTC(2017, 0, 15, 10, 5))
  t.same(run.written, ['digests/2017/01/15/09.json'])
  evidence = await getEvidence({ store }, ID)
  t.same([evidence.webhook.digest, evidence.alert.digest], [
    { status: 'covered', digest: 'digests/2017/01/15/09.json' },
    { status: 'covered', digest: 'digests/2017/01/15/09.json' }
  ])

  // Replaced together with a checksum that matches the new bytes: the read check cannot see it.
  const forged = recordText.replace('original', 'forged')
  await moto.client.send(new PutObjectCommand({ Bucket: 'evidence', Key: recordKey, Body: forged, ChecksumAlgorithm: 'SHA256', ChecksumSHA256: sha64(forged) }))
  evidence = await getEvidence({ store }, ID)
  t.same(evidence.webhook.digest, {
    status: 'mismatch',
    digest: 'digests/2017/01/15/09.json',
    listed: { sha256: sha(recordText), size: Buffer.byteLength(recordText) }
  })
  t.equal(evidence.webhook.text, forged)

  // Bytes under a checksum they fail: never shown, whatever the digest says.
  const changed = alertText.replace('original', 'changed!')
  await moto.client.send(new PutObjectCommand({ Bucket: 'evidence', Key: fullKey, Body: changed, ChecksumAlgorithm: 'SHA256', ChecksumSHA256: sha64(alertText) }))
  const stored = await moto.client.send(new GetObjectCommand({ Bucket: 'evidence', Key: fullKey }))
  t.equal(await stored.Body!.transformToString(), changed, 'moto kept the bytes under the old checksum')
  await t.rejects(getEvidence({ store }, ID), ArchiveIntegrityError)
})

await withMoto(t, 'on moto: an unknown id is AlertNotFoundError after a bounded number of reads', async (t, executable) => {
  const moto = await startMoto(t, executable, [{ name: 'evidence-empty' }])
  const store = motoStore(t, moto, 'evidence-empty')
  let calls = 0
  const counted = { ...store, limit: async <T>(call: () => Promise<T>): Promise<T> => { calls++; return await call() } }
  await t.rejects(getEvidence({ store: counted }, ID), AlertNotFoundError)
  // The full alert, then each candidate minute; no listing of the archive.
  t.equal(calls, 1 + 2 * RECORD_SEARCH_MINUTES + 1)
})
