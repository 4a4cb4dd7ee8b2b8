import t from 'tap'
import { request } from 'undici'
import { startUpstreams, TOKENS, SECRETS } from './helpers/build.js'
import { freePort, startServer } from './helpers/process.js'

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
})

t.test('listens on PORT and HOST, then closes gracefully on SIGTERM with a webhook in flight', async (t) => {
  const { env, threatstack } = await startUpstreams(t)
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
  t.same(await res.body.json(), { success: true, archived: ['shutdown-alert-1'] })
  t.equal(await server.exited, 0, 'exit code 0')
  t.notMatch(server.stdout() + server.stderr(), new RegExp(`${TOKENS.ingest}|${SECRETS.apiKey}`), 'no secret in the logs')
})
