// What the digest and verify tests share: an Ed25519 key pair, a bucket of its own per test on
// one moto per file, and alerts archived the way the service archives them.
import { generateKeyPairSync, type KeyObject } from 'node:crypto'
import { CreateBucketCommand, GetObjectCommand, type S3Client } from '@aws-sdk/client-s3'
import { alertKey, webhookKey } from '../../services/keys.js'
import { putJson, type Store } from '../../services/storage.js'
import { motoStore, startMoto, type Moto } from './moto.js'

export function keyPair (): { privateKey: KeyObject, publicKey: KeyObject, privatePem: string, publicPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  return {
    privateKey,
    publicKey,
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString()
  }
}

export interface DigestBucket { store: Store, raw: S3Client, endpoint: string, bucket: string }

/**
 * One moto for the whole file (started on first use, stopped with `tap`); each call makes a
 * bucket of its own, named `<name>-<n>`, and the service's store over it (`motoStore`).
 */
export function motoBuckets (tap: { teardown: (fn: () => unknown) => void }, name: string): (t: { teardown: (fn: () => unknown) => void }, executable: string) => Promise<DigestBucket> {
  let shared: Promise<Moto> | undefined
  let runs = 0
  return async (t, executable) => {
    shared ??= startMoto(tap as never, executable, [])
    const moto = await shared
    const bucket = `${name}-${++runs}`
    await moto.client.send(new CreateBucketCommand({ Bucket: bucket }))
    return { store: motoStore(t as never, moto, bucket), raw: moto.client, endpoint: moto.endpoint, bucket }
  }
}

/** One alert archived (record + full alert) at `ms`. */
export async function archivePair (store: Store, id: string, ms: number): Promise<{ record: string, full: string }> {
  const record = webhookKey('', id, ms)
  const full = alertKey('', id)
  await putJson(store, record, { id, created_at: String(ms), severity: 2, title: `alert ${id}` })
  await putJson(store, full, { id, created_at: ms, title: `alert ${id}`, details: 'from Threat Stack' })
  return { record, full }
}

/** An object's body as text, read around the service. */
export async function readText (raw: S3Client, bucket: string, key: string): Promise<string> {
  return await (await raw.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body!.transformToString()
}
