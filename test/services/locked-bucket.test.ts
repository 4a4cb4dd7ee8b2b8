// A bucket with Object Lock and a default retention, on moto: S3 refuses there every PUT that
// carries no checksum, and enforces If-None-Match. Everything the service writes must go through:
// the evidence once, with its SHA-256 and retention; the derived state (ledgers, table manifests
// and parts, leases) rewritten as often as it changes.
import t from 'tap'
import { HeadObjectCommand, PutObjectLockConfigurationCommand } from '@aws-sdk/client-s3'
import { loadConfig } from '../../config.js'
import { alertKey, webhookKey } from '../../services/keys.js'
import { getJson, putJson, putOnce, type Store } from '../../services/storage.js'
import { closeThreatStackClient, createThreatStackClient } from '../../services/threatstack.js'
import { backfillHour, entryCreatedMs } from '../../services/backfill.js'
import { LEDGER_VERSION, readLedger, writeLedger, type Ledger } from '../../services/ledger.js'
import { claimLease, releaseLease } from '../../services/leases.js'
import { compactDay, readManifest } from '../../services/tables.js'
import { HOUR_MS, chainHeadKey, digestKey, lateHourKey, markLateHour, runDigestJob } from '../../services/digest.js'
import { ed25519Signer } from '../../services/signer.js'
import { verifyArchive } from '../../services/verify.js'
import { archivePair, keyPair, readText } from '../helpers/digests.js'
import { startBackend } from '../helpers/s3.js'
import { startUpstreams } from '../helpers/build.js'
import { motoStore, startMoto, withMoto, type Moto } from '../helpers/moto.js'

const HOUR = Date.UTC(2026, 10, 30, 10)
const BUCKET = 'locked-bucket'

async function lockedStore (t: any, executable: string): Promise<{ moto: Moto, store: Store, conflicts: string[] }> {
  const moto = await startMoto(t, executable, [{ name: BUCKET, objectLock: true }])
  await moto.client.send(new PutObjectLockConfigurationCommand({
    Bucket: BUCKET,
    ObjectLockConfiguration: { ObjectLockEnabled: 'Enabled', Rule: { DefaultRetention: { Mode: 'GOVERNANCE', Days: 1 } } }
  }))
  const conflicts: string[] = []
  const store: Store = { ...motoStore(t, moto, BUCKET), lock: { mode: 'GOVERNANCE', days: 2 }, onExisting: (key, conflict) => { if (conflict) conflicts.push(key) } }
  return { moto, store, conflicts }
}

async function head (moto: Moto, key: string): Promise<{ checksum: string | undefined, mode: string | undefined }> {
  const res = await moto.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key, ChecksumMode: 'ENABLED' }))
  return { checksum: res.ChecksumSHA256, mode: res.ObjectLockMode }
}

function ledgerOf (checks: number): Ledger {
  const none = { missing: [], pending: [], unknown: [], backfilled: [], unknownTries: {} }
  const counts = { threatstack: { total: 0, active: 0, dismissed: 0 }, archived: { total: 0, viaWebhook: 0, viaBackfill: 0 } }
  return { version: LEDGER_VERSION, hour: new Date(HOUR).toISOString(), checkedAt: new Date(HOUR + checks).toISOString(), checks, complete: true, ...counts, ...none }
}

await withMoto(t, 'on a locked bucket the backfill writes evidence once, with its SHA-256 and retention; a webhook\'s record stays and is no conflict', async (t, executable) => {
  const { moto, store, conflicts } = await lockedStore(t, executable)
  const upstreams = await startUpstreams(t)
  const client = createThreatStackClient(loadConfig(upstreams.env).threatstack)
  t.teardown(async () => closeThreatStackClient(client))
  const raised = upstreams.threatstack.raiseAlerts({ count: 4, fromMs: HOUR, untilMs: HOUR + 3_600_000, seed: 21 })
  const first = raised[0] as Record<string, unknown>
  const webhookRecord = { id: first.id, created_at: String(entryCreatedMs(first)), title: 'as the webhook sent it' }
  t.equal(await putJson(store, webhookKey('', first.id as string, entryCreatedMs(first)), webhookRecord), 'created')

  const report = await backfillHour({ store, threatstack: client, concurrency: 2, list: { baseDelayMs: 1, maxDelayMs: 5 } }, HOUR, { now: () => HOUR + 3 * 3_600_000 })
  t.same(report.failed, [], 'S3 took every write')
  t.same(report.backfilled, raised.slice(1).map((a) => a.id as string).sort())
  for (const a of raised) {
    const id = a.id as string
    for (const key of [webhookKey('', id, entryCreatedMs(a)), alertKey('', id)]) {
      t.match(await head(moto, key), { checksum: /^[A-Za-z0-9+/]{43}=$/, mode: 'GOVERNANCE' }, `${key}: checksum and retention`)
    }
  }
  t.same(await readLedger(store, HOUR).then((l) => l?.backfilled), report.backfilled)
  t.same(await getJson(store, webhookKey('', first.id as string, entryCreatedMs(first))), webhookRecord, 'the webhook\'s record is the one archived')
  t.same(conflicts, [], 'the record built from the list differs from the webhook\'s by design: not a conflict')
})

await withMoto(t, 'on a locked bucket the derived state is rewritten: ledgers, table manifests and parts, leases, late-hour marks', async (t, executable) => {
  const { moto, store } = await lockedStore(t, executable)
  await writeLedger(store, HOUR, ledgerOf(1))
  await writeLedger(store, HOUR, ledgerOf(2))
  t.match(await readLedger(store, HOUR), { checks: 2 }, 'a re-check\'s ledger replaces the first')

  const day = '2026-11-30'
  const add = async (id: string, at: number): Promise<void> => {
    await putJson(store, webhookKey('', id, at), { id, created_at: String(at) })
    await putJson(store, alertKey('', id), { id, created_at: at, title: `alert ${id}` })
  }
  await add('lock0001', HOUR + 60_000)
  t.match(await compactDay({ store, concurrency: 2 }, day), { status: 'written', rows: 1 })
  await add('lock0002', HOUR + 120_000)
  t.match(await compactDay({ store, concurrency: 2 }, day), { status: 'written', rows: 2 })
  t.match(await readManifest(store, day), { rows: 2 }, 'the manifest follows the day')

  const lease = await claimLease(store, 'locked-hour', { owner: 'replica-a', ttlMs: 60_000, nowMs: HOUR })
  t.ok(lease, 'claimed')
  t.ok(await claimLease(store, 'locked-hour', { owner: 'replica-a', ttlMs: 60_000, nowMs: HOUR + 1000 }), 'renewed')
  t.equal(await claimLease(store, 'locked-hour', { owner: 'replica-b', ttlMs: 60_000, nowMs: HOUR + 2000 }), undefined, 'held against another owner')

  t.ok(await markLateHour(store, HOUR, 48, HOUR + 100 * 3_600_000))
  t.match(await head(moto, lateHourKey('', HOUR)), { checksum: /=$/ })
  const current = await claimLease(store, 'locked-hour', { owner: 'replica-a', ttlMs: 60_000, nowMs: HOUR + 3000 })
  await releaseLease(store, current!)
  t.ok(await claimLease(store, 'locked-hour', { owner: 'replica-b', ttlMs: 60_000, nowMs: HOUR + 4000 }), 'released, then free')
})

await withMoto(t, 'on a locked bucket the digest job runs; each digest is retained, and written once: another body for its key is refused', async (t, executable) => {
  const { moto, store } = await lockedStore(t, executable)
  const keys = keyPair()
  const signer = ed25519Signer(keys.privatePem)
  const now = HOUR + 3 * HOUR_MS + 30 * 60_000
  await archivePair(store, 'lockdig001', HOUR + 10 * 60_000)
  const run = await runDigestJob({ store, signer, owner: 'replica-a', lookbackHours: 3 }, now)
  t.equal(run.written.length, 3, 'lease, digests and chain head all taken by S3')
  for (const key of run.written) t.match(await head(moto, key), { checksum: /^[A-Za-z0-9+/]{43}=$/, mode: 'GOVERNANCE' }, `${key}: checksum and retention`)
  t.match(await head(moto, chainHeadKey('')), { checksum: /=$/ })

  const first = digestKey('', HOUR, 0)
  const stored = await readText(moto.client, BUCKET, first)
  t.equal(await putOnce(store, first, '{"forged":true}'), 'conflict')
  t.equal(await readText(moto.client, BUCKET, first), stored, 'the digest written stays')
  const report = await verifyArchive({ store, publicKey: keys.publicKey }, { startMs: HOUR, endMs: HOUR + 3 * HOUR_MS })
  t.equal(report.ok, true, JSON.stringify(report.hours.filter((h) => !h.ok)))
})

t.test('on s3rver, which ignores conditional writes, two replicas running the digest job at once leave a chain that verifies', async (t) => {
  const store = await startBackend(t, 's3rver', 'digest-twice')
  const keys = keyPair()
  const signer = ed25519Signer(keys.privatePem)
  const now = HOUR + 4 * HOUR_MS + 30 * 60_000
  for (let i = 0; i < 4; i++) await archivePair(store, `twice00${i}`, HOUR + i * HOUR_MS + 5 * 60_000)
  const runs = await Promise.all(['replica-a', 'replica-b'].map(async (owner) => runDigestJob({ store, signer, owner, lookbackHours: 4 }, now)))
  t.ok(runs.every((r) => r.claimed), 'nothing stops the second replica there')
  const report = await verifyArchive({ store, publicKey: keys.publicKey }, { startMs: HOUR, endMs: HOUR + 4 * HOUR_MS })
  t.equal(report.ok, true, JSON.stringify(report.hours.filter((h) => !h.ok)))
  t.equal(report.objectsChecked, 8)
  const again = await runDigestJob({ store, signer, owner: 'replica-a', lookbackHours: 4 }, now + 60_000)
  t.same(again.written, [], 'a later run finds every hour digested')
})
