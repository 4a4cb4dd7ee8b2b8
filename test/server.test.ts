import t from 'tap'
import { once } from 'node:events'
import { createServer, type AddressInfo } from 'node:net'
import { request } from 'undici'
import { HeadObjectCommand, S3Client } from '@aws-sdk/client-s3'
import { LOCAL_S3_CREDENTIALS } from '../dev/local-s3.js'
import { alertKey, webhookKey } from '../services/keys.js'
import { startUpstreams, TOKENS, SECRETS } from './helpers/build.js'
import { freePort, startServer, type ServerProcess } from './helpers/process.js'

t.test('a missing or malformed variable stops the process with one line naming it', async (t) => {
  const { env } = await startUpstreams(t)
  const missing = await startServer({ ...env, TS_AWS_S3_BUCKET: '' }, { waitForListen: false })
  t.not(await missing.exited, 0, 'exit code is not 0')
  t.equal(missing.stderr().trim(), 'Invalid configuration: TS_AWS_S3_BUCKET is required')

  const malformed = await startServer({ ...env, THREATSTACK_API_KEY: `${SECRETS.apiKey} with a space` }, { waitForListen: false })
  t.not(await malformed.exited, 0)
  const lines = malformed.stderr().trim().split('\n')
  t.equal(lines.length, 1, 'one line')
  t.match(lines[0], /^Invalid configuration: THREATSTACK_API_KEY /)
  t.notMatch(malformed.stderr(), SECRETS.apiKey, 'the secret is not printed')

  const several = await startServer({ ...env, TRUST_PROXY: 'maybe', PORT: 'eighty', S3_MAX_SOCKETS: '0' }, { waitForListen: false })
  t.equal(await several.exited, 1)
  t.same(several.stderr().trim().split('\n').map((line) => line.split(' ')[2]), ['PORT', 'TRUST_PROXY', 'S3_MAX_SOCKETS'], 'every invalid variable, one line each, no stack')
})

t.test('a signing key file that cannot be read stops the process with one line naming its variable, exit 1, no stack', async (t) => {
  const { env } = await startUpstreams(t)
  const port = await freePort()
  const unreadable = await startServer({ ...env, PORT: String(port), HOST: '127.0.0.1', SWEEP_INTERVAL_S: '60', DIGEST_SIGNING_KEY_FILE: '/nonexistent/digest-key.pem' }, { waitForListen: false })
  t.equal(await unreadable.exited, 1)
  t.equal(unreadable.stderr().trim(), 'Invalid configuration: DIGEST_SIGNING_KEY_FILE must name a readable Ed25519 private key (PEM)')
  t.notMatch(unreadable.stdout() + unreadable.stderr(), /\bat .*:\d+:\d+/, 'no stack')
  t.notMatch(unreadable.stdout() + unreadable.stderr(), 'nonexistent', 'nor the value')
})

t.test('a busy port stops the process with one line naming the port, exit 1, no stack', async (t) => {
  const taken = createServer()
  taken.listen(0, '127.0.0.1')
  await once(taken, 'listening')
  t.teardown(() => taken.close())
  const port = (taken.address() as AddressInfo).port
  const { env } = await startUpstreams(t)
  const busy = await startServer({ ...env, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'info' }, { waitForListen: false })
  t.equal(await busy.exited, 1)
  t.equal(busy.stderr().trim(), `Cannot listen: port ${port} on 127.0.0.1 is already in use (set PORT to another port)`)
  t.notMatch(busy.stdout() + busy.stderr(), /\bat .*:\d+:\d+/, 'no stack')
})

t.test('listens on PORT and HOST, then closes gracefully on SIGTERM with a webhook in flight', async (t) => {
  const { env, threatstack, s3 } = await startUpstreams(t)
  const port = await freePort()
  const server = await startServer({ ...env, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'info', THREATSTACK_TIMEOUT_MS: '5000' })
  t.teardown(() => { if (server.child.exitCode === null) server.child.kill('SIGKILL') })
  t.match(server.stdout(), `Server listening at http://127.0.0.1:${port}`)

  const health = await request(`${server.url}/health`)
  t.equal(health.statusCode, 200)
  t.same(await health.body.json(), { status: 'ok' })

  // A slow Threat Stack keeps the webhook in flight while the signal arrives.
  threatstack.setLatency(1000)
  const inFlight = request(`${server.url}/api/v1/s3/alert`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKENS.ingest}`, 'content-type': 'application/json' },
    body: JSON.stringify({ id: 'shutdown-alert-1', created_at: 1484521800000 })
  })
  while (threatstack.requests.length === 0) await new Promise((resolve) => setTimeout(resolve, 20))
  server.child.kill('SIGTERM')

  const res = await inFlight
  t.equal(res.statusCode, 200, 'the webhook in flight still gets its answer')
  t.same(await res.body.json(), { success: true, archived: ['shutdown-alert-1'], pending: [] })
  t.equal(await server.exited, 0, 'exit code 0')
  const reader = new S3Client({ region: 'us-east-1', endpoint: s3.endpoint, forcePathStyle: true, credentials: LOCAL_S3_CREDENTIALS })
  t.teardown(() => reader.destroy())
  for (const key of [webhookKey('', 'shutdown-alert-1', 1484521800000), alertKey('', 'shutdown-alert-1')]) {
    const head = await reader.send(new HeadObjectCommand({ Bucket: SECRETS.bucket, Key: key }))
    t.equal(head.ContentType, 'application/json', `${key} is stored`)
  }
  t.notMatch(server.stdout() + server.stderr(), new RegExp(`${TOKENS.ingest}|${SECRETS.apiKey}`), 'no secret in the logs')
})

t.test('a second signal, or the grace deadline, ends a shutdown stuck on a hanging upstream', async (t) => {
  const { env, threatstack } = await startUpstreams(t)
  await threatstack.failWith('hang')
  const stuck = async (extra: Record<string, string>): Promise<ServerProcess> => {
    const port = await freePort()
    const server = await startServer({ ...env, PORT: String(port), HOST: '127.0.0.1', THREATSTACK_TIMEOUT_MS: '60000', THREATSTACK_BUDGET_MS: '60000', ...extra })
    t.teardown(() => { if (server.child.exitCode === null) server.child.kill('SIGKILL') })
    request(`${server.url}/api/v1/s3/alert`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKENS.ingest}`, 'content-type': 'application/json' },
      body: JSON.stringify({ id: 'stuck-alert-1', created_at: 1484521800000 })
    }).then(async (res) => { await res.body.dump() }, () => {})
    const seen = threatstack.requests.length
    while (threatstack.requests.length === seen) await new Promise((resolve) => setTimeout(resolve, 20))
    return server
  }

  const twice = await stuck({ SHUTDOWN_GRACE_MS: '60000' })
  twice.child.kill('SIGTERM')
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.equal(twice.child.exitCode, null, 'the first signal waits for the request in flight')
  twice.child.kill('SIGTERM')
  t.equal(await twice.exited, 1, 'the second signal ends it, with a failure code')

  const deadline = await stuck({ SHUTDOWN_GRACE_MS: '500' })
  deadline.child.kill('SIGTERM')
  t.equal(await deadline.exited, 1, 'the grace deadline ends it, with a failure code')
})
