// The app runs the digest job on its own, as the sweeper's last step: every SWEEP_INTERVAL_S, signed with the configured key,
// covering late objects of old hours, and stops with the app. On moto.
import t from 'tap'
import { generateKeyPairSync } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3'
import { build, BEARER } from '../helpers/build.js'
import { MOTO_CREDENTIALS, startMoto, withMoto } from '../helpers/moto.js'
import { HOUR_MS, digestKey, hourStart, parseDigest } from '../../services/digest.js'

const BUCKET = 'digest-plugin-archive'

async function get (s3: S3Client, key: string): Promise<string | undefined> {
  try {
    return await (await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }))).Body!.transformToString()
  } catch {
    return undefined
  }
}

/** Polls until the object exists: at most 60 tries, 0.5 s apart. */
async function waitFor (s3: S3Client, key: string): Promise<string | undefined> {
  for (let i = 0; i < 60; i++) {
    const body = await get(s3, key)
    if (body !== undefined) return body
    await new Promise((resolve) => setTimeout(resolve, 500))
  }
  return undefined
}

async function motoEnv (t: any, executable: string): Promise<{ env: Record<string, string>, s3: S3Client }> {
  const moto = await startMoto(t, executable, [{ name: BUCKET }])
  return {
    s3: moto.client,
    env: {
      AWS_ENDPOINT_URL_S3: moto.endpoint,
      TS_AWS_S3_BUCKET: BUCKET,
      AWS_ACCESS_KEY_ID: MOTO_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: MOTO_CREDENTIALS.secretAccessKey,
      SWEEP_INTERVAL_S: '1',
      SWEEP_LOOKBACK_HOURS: '3'
    }
  }
}

await withMoto(t, 'the app digests closed hours with its key, and an old alert posted today gets its hour digested', async (t, executable) => {
  const { env, s3 } = await motoEnv(t, executable)
  const dir = await mkdtemp(join(tmpdir(), 'ts2s3-digest-key-'))
  t.teardown(async () => rm(dir, { recursive: true, force: true }))
  const keyFile = join(dir, 'key.pem')
  await writeFile(keyFile, generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }))
  // An hour closed more than the job's delay ago, and one of 2016.
  const recent = hourStart(Date.now() - 120_000) - HOUR_MS + 30 * 60_000
  const old = Date.UTC(2016, 1, 3, 4, 5)
  const { app, logs } = await build(t, { env: { ...env, DIGEST_SIGNING_KEY_FILE: keyFile } })
  const res = await app.inject({
    method: 'POST',
    url: '/api/v1/s3/alert',
    headers: BEARER.ingest,
    payload: { alerts: [{ id: 'recent0001', created_at: String(recent) }, { id: 'old0000001', created_at: String(old) }] }
  })
  t.equal(res.statusCode, 200)

  // The job may have run for the recent hour before the post: then a supplement covers it.
  const keys = [digestKey('', hourStart(recent), 0), digestKey('', hourStart(recent), 1)]
  let covered: string[] = []
  for (let i = 0; i < 60 && !covered.includes('alerts/re/ce/recent0001'); i++) {
    covered = (await Promise.all(keys.map(async (k) => get(s3, k))))
      .flatMap((body) => body === undefined ? [] : parseDigest(Buffer.from(body))?.objects.map((o) => o.key) ?? [])
    if (!covered.includes('alerts/re/ce/recent0001')) await new Promise((resolve) => setTimeout(resolve, 500))
  }
  t.ok(covered.includes('alerts/re/ce/recent0001') && covered.some((k) => k.endsWith('/recent0001') && k.startsWith('webhooks/')), 'the recent hour is digested')
  const oldDigest = await waitFor(s3, digestKey('', hourStart(old), 0))
  t.ok(oldDigest, 'the 2016 hour got a digest')
  const doc = parseDigest(Buffer.from(oldDigest ?? ''))
  t.same(doc?.objects.map((o) => o.key), ['alerts/ol/d0/old0000001', 'webhooks/2016/02/03/04/05/old0000001'])
  t.match(doc?.signer, { algorithm: 'Ed25519', keyId: /^sha256:[0-9a-f]{64}$/ })
  t.notOk(logs.some((l) => String(l.msg).includes('unsigned')), 'no unsigned warning with a key')
  await app.close()
  t.pass('closes while the job is scheduled')
})

await withMoto(t, 'without a signing key the app warns at start that digests are unsigned; an unreadable key stops it', async (t, executable) => {
  const { env } = await motoEnv(t, executable)
  const { logs } = await build(t, { env })
  const warning = logs.find((l) => String(l.msg).includes('digests are chained but unsigned'))
  t.ok(warning)
  t.equal(warning?.level, 40)
  await t.rejects(build(t, { env: { ...env, DIGEST_SIGNING_KEY_FILE: '/nonexistent/key.pem' } }), /DIGEST_SIGNING_KEY_FILE must name a readable Ed25519 private key/)
})
