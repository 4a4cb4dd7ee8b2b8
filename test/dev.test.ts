import t from 'tap'
import Fastify from 'fastify'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import app, { serverOptions } from '../app.js'
import { ConfigError } from '../config.js'
import { DEV_BUCKET, DEV_INGEST_TOKEN, DEV_READ_TOKEN, startLocalDependencies } from '../dev/local.js'

function capture (): { log: Parameters<typeof startLocalDependencies>[0], lines: string[] } {
  const lines: string[] = []
  const log = Fastify({ logger: { level: 'info', stream: { write: (line: string) => { lines.push(String(JSON.parse(line).msg)) } } } }).log
  return { log, lines }
}

t.test('with nothing configured, dev starts local S3, the simulator and dev tokens, and the app archives', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ts2s3-dev-'))
  t.teardown(async () => rm(dir, { recursive: true, force: true }))
  const { log, lines } = capture()
  const local = await startLocalDependencies(log, {}, dir)
  t.teardown(async () => local.close())

  t.match(local.config.s3, { bucket: DEV_BUCKET, endpoint: /^http:\/\/127\.0\.0\.1:\d+$/ })
  t.match(local.config.threatstack, { baseUrl: /^http:\/\/127\.0\.0\.1:\d+\/v2$/, auth: { kind: 'hawk' } })
  t.same(local.config.auth.ingestTokens, [DEV_INGEST_TOKEN])
  t.match(lines.join('\n'), /embedded S3 \(s3rver\)[\s\S]*Threat Stack simulator[\s\S]*dev tokens/, 'says what it started')

  const server = Fastify({ ...serverOptions(local.config), logger: false })
  await server.register(app, { config: local.config })
  t.teardown(async () => server.close())
  const id = '587c0159a907346eccb84004'
  const post = await server.inject({
    method: 'POST',
    url: '/api/v1/s3/alert',
    headers: { authorization: `Bearer ${DEV_INGEST_TOKEN}` },
    payload: { alerts: [{ id, created_at: '1484521800000' }] }
  })
  t.equal(post.statusCode, 200)
  const get = await server.inject({ method: 'GET', url: `/api/v1/s3/alert/${id}`, headers: { authorization: `Bearer ${DEV_READ_TOKEN}` } })
  t.equal(get.statusCode, 200)
  t.equal(get.json().alert.id, id)

  local.announce([{ address: '0.0.0.0', family: 'IPv4', port: 3000 }])
  const announced = lines.at(-1) ?? ''
  t.match(announced, 'http://localhost:3000/health')
  t.match(announced, 'http://localhost:3000/documentation')
  t.match(announced, 'npm run demo')
  t.match(announced, `curl -s -X POST http://localhost:3000/api/v1/s3/alert -H 'authorization: Bearer ${DEV_INGEST_TOKEN}'`)
})

t.test('configured upstreams are used as they are, with no local stand-in', async (t) => {
  const { log, lines } = capture()
  const local = await startLocalDependencies(log, {
    TS_AWS_S3_BUCKET: 'real-bucket',
    THREATSTACK_API_KEY: 'real-key',
    INGEST_TOKENS: 'ingest-token-0123456789',
    READ_TOKENS: 'read-token-0123456789a'
  }, '/nonexistent')
  t.teardown(async () => local.close())
  t.equal(local.config.s3.bucket, 'real-bucket')
  t.equal(local.config.s3.endpoint, undefined, 'AWS itself')
  t.equal(local.config.threatstack.baseUrl, 'https://app.threatstack.com/api/v1')
  t.same(lines, [], 'nothing started')
})

t.test('a configuration error still stops dev, after closing what it started', async (t) => {
  const { log } = capture()
  const dir = await mkdtemp(join(tmpdir(), 'ts2s3-dev-'))
  t.teardown(async () => rm(dir, { recursive: true, force: true }))
  const err = await startLocalDependencies(log, { PORT: 'not-a-port' }, dir).catch((e: unknown) => e)
  t.type(err, ConfigError)
  t.equal((err as ConfigError).variable, 'PORT')
})
