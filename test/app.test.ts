// The HTTP server options of app.ts, as a balancer sees them.
import t from 'tap'
import { build } from './helpers/build.js'

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

t.test('keep-alive outlives the balancer; requests have a deadline', async (t) => {
  const { app } = await build(t, { env: { KEEP_ALIVE_TIMEOUT_MS: '65000', REQUEST_TIMEOUT_MS: '30000' } })
  t.equal(app.server.keepAliveTimeout, 65_000)
  t.equal(app.server.requestTimeout, 30_000)
  const defaults = await build(t)
  t.equal(defaults.app.server.keepAliveTimeout, 72_000, 'default above the 60 s idle timeout of AWS load balancers')
})
