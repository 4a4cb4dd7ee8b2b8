// The HTTP server options of app.ts, as a balancer sees them.
import t from 'tap'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { request, type Dispatcher } from 'undici'
import Fastify from 'fastify'
import app from '../app.js'
import { ConfigError } from '../config.js'
import { BEARER, build } from './helpers/build.js'

const incoming = (logs: Array<Record<string, unknown>>): Array<{ remoteAddress?: string }> =>
  logs.filter((l) => l.msg === 'incoming request').map((l) => l.req as { remoteAddress?: string })

t.test('the client address: the socket peer, or X-Forwarded-For behind a trusted proxy', async (t) => {
  const direct = await build(t)
  await direct.app.inject({ method: 'GET', url: '/health', headers: { 'x-forwarded-for': '203.0.113.7' } })
  t.equal(incoming(direct.logs).at(-1)?.remoteAddress, '127.0.0.1', 'TRUST_PROXY unset: the header is ignored')

  const proxied = await build(t, { env: { TRUST_PROXY: 'true' } })
  await proxied.app.inject({ method: 'GET', url: '/health', headers: { 'x-forwarded-for': '203.0.113.7' } })
  t.equal(incoming(proxied.logs).at(-1)?.remoteAddress, '203.0.113.7')

  const cidr = await build(t, { env: { TRUST_PROXY: '127.0.0.0/8' } })
  await cidr.app.inject({ method: 'GET', url: '/health', headers: { 'x-forwarded-for': '198.51.100.2' } })
  t.equal(incoming(cidr.logs).at(-1)?.remoteAddress, '198.51.100.2', 'a trusted proxy range')
})

t.test('the app requires a Config; registered without options (fastify start) it reads the environment', async (t) => {
  const saved = { bucket: process.env.TS_AWS_S3_BUCKET, key: process.env.THREATSTACK_API_KEY }
  delete process.env.TS_AWS_S3_BUCKET
  delete process.env.THREATSTACK_API_KEY
  t.teardown(() => {
    if (saved.bucket !== undefined) process.env.TS_AWS_S3_BUCKET = saved.bucket
    if (saved.key !== undefined) process.env.THREATSTACK_API_KEY = saved.key
  })
  const server = Fastify({ logger: false })
  t.teardown(async () => server.close())
  // @ts-expect-error the options must hold a Config: only fastify-cli registers the app without one
  const registered = server.register(app, {})
  const err = await registered.ready().then(() => undefined, (e: unknown) => e)
  t.type(err, ConfigError, 'no Config given: the environment is read, and this one lacks the required variables')
  t.match((err as ConfigError).problems, [{ variable: 'TS_AWS_S3_BUCKET', rule: 'is required' }])
})

t.test('keep-alive outlives the balancer; requests have a deadline', async (t) => {
  const { app } = await build(t, { env: { KEEP_ALIVE_TIMEOUT_MS: '65000', REQUEST_TIMEOUT_MS: '30000' } })
  t.equal(app.server.keepAliveTimeout, 65_000)
  t.equal(app.server.requestTimeout, 30_000)
  const defaults = await build(t)
  t.equal(defaults.app.server.keepAliveTimeout, 72_000, 'default above the 60 s idle timeout of AWS load balancers')
})

t.test('closing: no new connection is accepted, the webhook in flight is answered, then both upstream clients are closed', async (t) => {
  const { app, threatstack, s3proxy } = await build(t, { s3Proxy: true })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as AddressInfo
  const post = async (id: string): Promise<Dispatcher.ResponseData> => await request(`http://127.0.0.1:${port}/api/v1/s3/alert`, {
    method: 'POST',
    headers: { ...BEARER.ingest, 'content-type': 'application/json' },
    body: JSON.stringify({ id, created_at: 1484521800000 })
  })
  const warm = await post('close-001')
  t.equal(warm.statusCode, 200)
  await warm.body.dump()
  t.ok(threatstack.openConnections > 0 && s3proxy!.openConnections > 0, 'keep-alive connections to both upstreams are open')

  threatstack.setLatency(800)
  const inFlight = post('close-002')
  for (let i = 0; i < 100 && threatstack.requests.length < 2; i++) await sleep(10)
  const closed = app.close()
  await sleep(50)
  await t.rejects(request(`http://127.0.0.1:${port}/health`), { code: 'ECONNREFUSED' }, 'a new connection is refused')
  const res = await inFlight
  t.equal(res.statusCode, 200, 'the webhook in flight is answered')
  t.equal(res.headers.connection, 'close', 'and its connection closed')
  await res.body.dump()
  await closed
  for (let i = 0; i < 100 && (threatstack.openConnections > 0 || s3proxy!.openConnections > 0); i++) await sleep(20)
  t.equal(threatstack.openConnections, 0, 'the Threat Stack pool is closed')
  t.equal(s3proxy!.openConnections, 0, 'the S3 client is destroyed')
})

t.test('GET / points to the API reference and the OpenAPI document, with no token', async (t) => {
  const { app } = await build(t)
  const index = await app.inject({ method: 'GET', url: '/' })
  t.equal(index.statusCode, 200)
  t.match(index.headers['content-type'], /^application\/json/)
  t.same(index.json(), { service: 'threatstack-to-s3', documentation: '/documentation', openapi: '/documentation/json' })
  const doc = await app.inject({ method: 'GET', url: index.json().openapi })
  t.equal(doc.statusCode, 200, 'the OpenAPI document is where it says')
  const root = doc.json().paths['/']?.get
  t.equal(root?.operationId, 'getIndex', 'GET / is in the OpenAPI document')
  t.same(root?.security ?? [], [], 'with no security requirement')
  t.equal((await app.inject({ method: 'GET', url: index.json().documentation })).statusCode < 400, true, 'the reference answers')
})
