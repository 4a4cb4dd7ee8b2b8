// moto's S3 server: unlike s3rver and fauxqs, it enforces conditional writes (If-None-Match,
// If-Match), so leases are tested against their real semantics.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { CreateBucketCommand } from '@aws-sdk/client-s3'
import { request } from 'undici'
import { createS3Client, storeOf } from '../../plugins/s3.js'
import type { Store } from '../../services/storage.js'
import { freePort } from '../../dev/net.js'

type Tap = { teardown: (fn: () => unknown) => void }

/** A moto S3 server on loopback with one bucket, and a store over it; stopped at teardown. */
export async function startMoto (t: Tap, bucket = 'lease-bucket'): Promise<Store> {
  const port = await freePort()
  const child = spawn('moto_server', ['-H', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' })
  const exited = once(child, 'exit')
  t.teardown(async () => {
    if (child.exitCode === null) {
      child.kill('SIGTERM')
      await exited
    }
  })
  const endpoint = `http://127.0.0.1:${port}`
  const deadline = Date.now() + 30_000
  for (;;) {
    const up = await request(`${endpoint}/moto-api/`).then(async (res) => { await res.body.dump(); return true }, () => false)
    if (up) break
    if (child.exitCode !== null || Date.now() > deadline) throw new Error('moto_server did not start')
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  const cfg = {
    region: 'us-east-1',
    endpoint,
    credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
    prefix: '',
    bucket,
    timeoutMs: 5000,
    connectTimeoutMs: 1000,
    maxSockets: 8,
    maxAttempts: 1
  }
  const s3 = createS3Client(cfg)
  t.teardown(() => s3.destroy())
  await s3.send(new CreateBucketCommand({ Bucket: bucket }))
  return storeOf(cfg, s3)
}
