// The hourly digest job on moto (conditional writes, checksums): digests chain and sign every
// hour, late objects get supplements, one replica runs at a time, KMS signs as well as a key file.
import t from 'tap'
const tap = t
import { createPublicKey } from 'node:crypto'
import type { S3Client } from '@aws-sdk/client-s3'
import { KMSClient, CreateKeyCommand, GetPublicKeyCommand } from '@aws-sdk/client-kms'
import { webhookKey } from '../../services/keys.js'
import {
  HOUR_MS, chainHeadKey, digestKey, markLateObject, parseDigest, runDigestJob, signedBytes, type DigestDocument
} from '../../services/digest.js'
import { claimLease, releaseLease } from '../../services/leases.js'
import { ed25519Signer, kmsSigner, publicKeyId, verifySignature } from '../../services/signer.js'
import { verifyArchive } from '../../services/verify.js'
import { MOTO_CREDENTIALS, withMoto } from '../helpers/moto.js'
import { archivePair, keyPair, motoBuckets, readText, type DigestBucket } from '../helpers/digests.js'

let BUCKET = 'digest-archive-0'
// "Now" for the job: 2017-01-16T02:30Z, so the closed hours are up to 01:00.
const NOW = Date.UTC(2017, 0, 16, 2, 30)
const HOUR0 = Date.UTC(2017, 0, 15, 14)

// One moto for the whole file; each test gets a bucket of its own.
const bucketFor = motoBuckets(tap, 'digest-archive')
async function setup (t: any, executable: string): Promise<DigestBucket> {
  const made = await bucketFor(t, executable)
  BUCKET = made.bucket
  return made
}
const archive = archivePair
async function read (raw: S3Client, key: string): Promise<string> {
  return await readText(raw, BUCKET, key)
}

await withMoto(t, 'the job digests every closed hour, chained and signed; verify finds it all ok', async (t, executable) => {
  const { store, raw } = await setup(t, executable)
  const keys = makeKeys()
  const signer = ed25519Signer(keys.privatePem)
  const a = await archive(store, 'aaaa0001', HOUR0 + 10 * 60_000)
  await archive(store, 'aaaa0002', HOUR0 + 70 * 60_000)

  const run = await runDigestJob({ store, signer, owner: 'replica-1', lookbackHours: 12 }, NOW)
  t.equal(run.claimed, true)
  t.equal(run.written.length, 12, 'one digest per closed hour of the lookback, empty hours included')

  const doc = parseDigest(Buffer.from(await read(raw, digestKey('', HOUR0, 0)))) as DigestDocument
  t.equal(doc.hour, '2017-01-15T14:00:00Z')
  t.same(doc.objects.map((o) => o.key), [a.full, a.record].sort(), 'the record by its minute, the full alert with its record\'s hour')
  t.match(doc.objects[0], { size: Number, sha256: /^[0-9a-f]{64}$/ })
  t.equal(doc.signer?.keyId, publicKeyId(keys.publicKey))
  t.ok(verifySignature(keys.publicKey, 'Ed25519', signedBytes(doc), Buffer.from(doc.signature ?? '', 'base64')), 'signed')
  const next = parseDigest(Buffer.from(await read(raw, digestKey('', HOUR0 + HOUR_MS, 0)))) as DigestDocument
  t.equal(next.previous?.key, digestKey('', HOUR0, 0), 'chained to the previous digest written')
  t.same(JSON.parse(await read(raw, chainHeadKey(''))).key, run.written.at(-1), 'the head names the newest digest')

  const again = await runDigestJob({ store, signer, owner: 'replica-1', lookbackHours: 12 }, NOW)
  t.same(again.written, [], 'nothing new, nothing written')

  const report = await verifyArchive({ store, publicKey: keys.publicKey }, { startMs: HOUR0, endMs: HOUR0 + 12 * HOUR_MS })
  t.equal(report.ok, true, JSON.stringify(report.hours.filter((h) => !h.ok)))
  t.equal(report.objectsChecked, 4)
})

await withMoto(t, 'late objects get a supplement digest; an old hour marked late is digested too', async (t, executable) => {
  const { store, raw } = await setup(t, executable)
  const keys = makeKeys()
  const signer = ed25519Signer(keys.privatePem)
  await archive(store, 'bbbb0001', HOUR0 + 5 * 60_000)
  await runDigestJob({ store, signer, owner: 'r1', lookbackHours: 12 }, NOW)

  const late = await archive(store, 'bbbb0002', HOUR0 + 50 * 60_000)
  const old = Date.UTC(2016, 5, 1, 8, 15)
  const ancient = await archive(store, 'bbbb0003', old)
  t.equal(await markLateObject(store, ancient.record, 12, NOW), true, 'an hour outside the lookback is marked')
  t.equal(await markLateObject(store, webhookKey('', 'bbbb0009', HOUR0 + 5 * HOUR_MS), 12, NOW), false, 'one well inside is not')

  const run = await runDigestJob({ store, signer, owner: 'r1', lookbackHours: 12 }, NOW)
  t.same(run.written.sort(), [digestKey('', Date.UTC(2016, 5, 1, 8), 0), digestKey('', HOUR0, 1)].sort())
  const supplement = parseDigest(Buffer.from(await read(raw, digestKey('', HOUR0, 1)))) as DigestDocument
  t.equal(supplement.sequence, 1)
  t.same(supplement.objects.map((o) => o.key), [late.full, late.record].sort(), 'only what no digest covered')

  const report = await verifyArchive({ store, publicKey: keys.publicKey }, { startMs: HOUR0, endMs: HOUR0 + HOUR_MS })
  t.equal(report.ok, true, JSON.stringify(report.hours))
  const oldReport = await verifyArchive({ store, publicKey: keys.publicKey }, { startMs: Date.UTC(2016, 5, 1, 8), endMs: Date.UTC(2016, 5, 1, 9) })
  t.equal(oldReport.ok, true, JSON.stringify(oldReport.hours))
  t.equal((await runDigestJob({ store, signer, owner: 'r1', lookbackHours: 12 }, NOW)).written.length, 0, 'the mark is gone once digested')
})

await withMoto(t, 'while another replica holds the lease, a run does nothing; an expired lease is taken over', async (t, executable) => {
  const { store } = await setup(t, executable)
  const signer = ed25519Signer(makeKeys().privatePem)
  const held = await claimLease(store, 'digests', { owner: 'replica-2', ttlMs: 60_000 })
  t.ok(held)
  const run = await runDigestJob({ store, signer, owner: 'replica-1', lookbackHours: 3 }, NOW)
  t.same(run, { claimed: false, written: [], hoursChecked: 0 })
  t.equal(await claimLease(store, 'digests', { owner: 'replica-3', ttlMs: 60_000 }), undefined, 'a held lease is refused')
  if (held !== undefined) await releaseLease(store, held)
  const stale = await claimLease(store, 'digests', { owner: 'replica-2', ttlMs: 60_000, nowMs: Date.now() - 120_000 })
  t.ok(stale, 'claimed with a clock two minutes behind: already expired')
  t.equal((await runDigestJob({ store, signer, owner: 'replica-1', lookbackHours: 3 }, NOW)).claimed, true, 'an expired lease is taken over')
})

await withMoto(t, 'digests signed by an AWS KMS key (moto\'s KMS) verify with its public key', async (t, executable) => {
  const { store, endpoint } = await setup(t, executable)
  const kms = new KMSClient({ region: 'us-east-1', endpoint, credentials: MOTO_CREDENTIALS })
  t.teardown(() => kms.destroy())
  const key = await kms.send(new CreateKeyCommand({ KeySpec: 'ECC_NIST_P256', KeyUsage: 'SIGN_VERIFY' }))
  const keyId = key.KeyMetadata?.KeyId ?? ''
  const publicKey = createPublicKey({ key: Buffer.from((await kms.send(new GetPublicKeyCommand({ KeyId: keyId }))).PublicKey ?? []), format: 'der', type: 'spki' })
  await archive(store, 'dddd0001', HOUR0 + 60_000)
  // Digests under 4 KiB are signed as RAW messages; moto 5.2.1 mishandles MessageType DIGEST (it hashes the hash again).
  const run = await runDigestJob({ store, signer: await kmsSigner(kms, keyId), owner: 'r1', lookbackHours: 2 }, HOUR0 + 2 * HOUR_MS + 30 * 60_000)
  t.equal(run.written.length, 2)
  const report = await verifyArchive({ store, publicKey }, { startMs: HOUR0, endMs: HOUR0 + 2 * HOUR_MS })
  t.equal(report.ok, true, JSON.stringify(report.hours))
  const other = await verifyArchive({ store, publicKey: makeKeys().publicKey }, { startMs: HOUR0, endMs: HOUR0 + HOUR_MS })
  t.match(other.hours[0]?.problems, [{ kind: 'signature bad' }], 'another public key does not verify them')
})

function makeKeys (): ReturnType<typeof keyPair> {
  return keyPair()
}
