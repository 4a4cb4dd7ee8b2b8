// Two replicas on one bucket behind a round-robin balancer; one is killed mid-load. The sender
// retries on 5xx and connection errors, as Threat Stack does. Every alert answered 200 must be
// complete in S3, and the survivor keeps serving.
import t from 'tap'
import { Agent, request } from 'undici'
import { HeadObjectCommand, S3Client } from '@aws-sdk/client-s3'
import pLimit from 'p-limit'
import { startUpstreams, SECRETS, TOKENS } from './helpers/build.js'
import { freePort, startServer } from './helpers/process.js'
import { startBalancer } from './helpers/balancer.js'
import { LOCAL_S3_CREDENTIALS } from '../dev/local-s3.js'
import { alertKey, webhookKey } from '../services/keys.js'

const WEBHOOKS = 120
const KILL_AFTER = 40
const CREATED_AT = 1484521800000

t.test('a replica killed mid-load loses no alert that was answered 200', async (t) => {
  const { env, threatstack, s3 } = await startUpstreams(t)
  threatstack.setLatency(20)
  const replicas = await Promise.all([0, 1].map(async () => {
    const port = await freePort()
    const server = await startServer({ ...env, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', THREATSTACK_RETRIES: '1' })
    t.teardown(() => { if (server.child.exitCode === null) server.child.kill('SIGKILL') })
    return server
  }))
  t.ok(replicas.every((r) => r.child.exitCode === null), 'both replicas listen')
  const balancer = await startBalancer(replicas.map((r) => r.url))
  t.teardown(async () => balancer.close())

  const client = new Agent({ connections: 8 })
  t.teardown(async () => client.close())
  const answered: string[] = []
  let attempts = 0
  let killed = false
  const send = async (id: string): Promise<boolean> => {
    for (let attempt = 0; attempt < 8; attempt++) {
      attempts++
      try {
        const res = await request(`${balancer.url}/api/v1/s3/alert`, {
          method: 'POST',
          dispatcher: client,
          headers: { authorization: `Bearer ${TOKENS.ingest}`, 'content-type': 'application/json' },
          body: JSON.stringify({ id, created_at: String(CREATED_AT), severity: '2' })
        })
        await res.body.dump()
        if (res.statusCode === 200) {
          answered.push(id)
          if (!killed && answered.length >= KILL_AFTER) {
            killed = true
            replicas[0]?.child.kill('SIGKILL')
          }
          return true
        }
      } catch {
        // A reset connection: retry, as the sender would.
      }
      await new Promise((resolve) => setTimeout(resolve, 50 * (attempt + 1)))
    }
    return false
  }

  const limit = pLimit(6)
  const ids = Array.from({ length: WEBHOOKS }, (_, i) => `replica-${String(i).padStart(4, '0')}`)
  const delivered = await Promise.all(ids.map(async (id) => limit(async () => send(id))))
  t.ok(killed, 'one replica was killed mid-load')
  t.equal(await replicas[0]?.exited, null, 'killed by the signal')
  t.equal(delivered.filter(Boolean).length, WEBHOOKS, 'every webhook was answered 200 in the end')
  t.ok(attempts >= WEBHOOKS, `${attempts} attempts for ${WEBHOOKS} webhooks`)
  t.ok((balancer.sent[1] ?? 0) > 0 && (balancer.sent[0] ?? 0) > 0, 'both replicas served')

  const reader = new S3Client({ region: 'us-east-1', endpoint: s3.endpoint, forcePathStyle: true, credentials: LOCAL_S3_CREDENTIALS })
  t.teardown(() => reader.destroy())
  const exists = async (key: string): Promise<boolean> => {
    try {
      await reader.send(new HeadObjectCommand({ Bucket: SECRETS.bucket, Key: key }))
      return true
    } catch {
      return false
    }
  }
  const incomplete: string[] = []
  for (const id of answered) {
    if (!await exists(webhookKey('', id, CREATED_AT)) || !await exists(alertKey('', id))) incomplete.push(id)
  }
  t.same(incomplete, [], `all ${answered.length} alerts answered 200 have both objects`)

  const health = await request(`${replicas[1]?.url ?? ''}/health`, { dispatcher: client })
  t.equal(health.statusCode, 200, 'the survivor serves')
  await health.body.dump()
})
