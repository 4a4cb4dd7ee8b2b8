import t, { type Test } from 'tap'
import Fastify from 'fastify'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { fileURLToPath } from 'node:url'
import { readFileSync } from 'node:fs'
import { request } from 'undici'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import app, { serverOptions } from '../app.js'
import { ConfigError } from '../config.js'
import { startUpstreams, TOKENS } from './helpers/build.js'
import { freePort } from './helpers/process.js'
import { DEV_BUCKET, DEV_INGEST_TOKEN, DEV_READ_TOKEN, startLocalDependencies } from '../dev/local.js'

// Several real npm process trees start here: room for a busy machine.
t.setTimeout(240_000)

/** Every upstream and the tokens configured: dev starts no stand-in. */
const CONFIGURED = {
  TS_AWS_S3_BUCKET: 'real-bucket',
  THREATSTACK_API_KEY: 'real-key',
  INGEST_TOKENS: 'ingest-token-0123456789',
  READ_TOKENS: 'read-token-0123456789a'
}

function capture (): { log: (text: string) => void, lines: string[] } {
  const lines: string[] = []
  return { log: (text) => { lines.push(text) }, lines }
}

t.test('with nothing configured, dev starts local S3, the simulator and dev tokens, and the app archives', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ts2s3-dev-'))
  t.teardown(async () => rm(dir, { recursive: true, force: true }))
  const { log, lines } = capture()
  // Load shedding would answer 503 at random on a busy machine (test/plugins/load.test.ts covers it).
  // The sender off: announce() below names a port nothing of this test listens on.
  const local = await startLocalDependencies(log, { LOAD_MAX_EVENT_LOOP_DELAY_MS: '0', LOAD_MAX_EVENT_LOOP_UTILIZATION: '0', DEV_SENDER: 'off' }, join(dir, 's3'))
  t.teardown(async () => local.close())

  t.match(local.config.s3, { bucket: DEV_BUCKET, endpoint: /^http:\/\/127\.0\.0\.1:\d+$/ })
  t.match(local.config.threatstack, { baseUrl: /^http:\/\/127\.0\.0\.1:\d+\/v2$/, auth: { kind: 'hawk' } })
  t.same(local.config.auth.ingestTokens, [DEV_INGEST_TOKEN])
  t.match(lines.join('\n'), /embedded S3 \(s3rver\)[\s\S]*Threat Stack simulator[\s\S]*dev tokens/, 'says what it started')
  t.match(lines.join('\n'), /digests signed with .*digest-signing-key\.pem; verify with --public-key .*digest-public-key\.pem/, 'says where the digest keys are')
  t.match(local.config.integrity.signingKeyFile, /digest-signing-key\.pem$/, 'the embedded archive\'s digests are signed')
  t.equal(local.config.server.host, '127.0.0.1', 'with HOST unset, the dev server answers this machine only')
  t.match(lines.join('\n'), 'listening on 127.0.0.1 only', 'and says so')

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
  t.equal(get.statusCode, 200, get.body)
  t.equal(get.json().alert.id, id)

  local.announce([{ address: '0.0.0.0', family: 'IPv4', port: 3000 }])
  const announced = lines.at(-1) ?? ''
  t.match(announced, 'http://localhost:3000/health')
  t.match(announced, 'http://localhost:3000/documentation')
  t.match(announced, 'npm run demo')
  t.match(announced, `curl -s -X POST http://localhost:3000/api/v1/s3/alert -H 'authorization: Bearer ${DEV_INGEST_TOKEN}'`)
  // The stand-ins' endpoints and credentials, ready for the reconcile command.
  t.match(announced, `AWS_ENDPOINT_URL_S3=${local.config.s3.endpoint ?? ''} TS_AWS_S3_BUCKET=${DEV_BUCKET} AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER`)
  t.match(announced, `THREATSTACK_BASE_URL=${local.config.threatstack.baseUrl} THREATSTACK_API_KEY=dev-api-key THREATSTACK_USER_ID=dev-user THREATSTACK_ORGANIZATION_ID=dev-org`)
  t.match(announced, 'npm run reconcile -- --start')
  t.match(announced, 'dev: simulated Threat Stack sender off (DEV_SENDER=off)', 'says the sender is off')
})

t.test('a HOST that is set is the dev server\'s listen address', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ts2s3-dev-'))
  t.teardown(async () => rm(dir, { recursive: true, force: true }))
  const { log, lines } = capture()
  const local = await startLocalDependencies(log, { HOST: '0.0.0.0', DEV_SENDER: 'off' }, join(dir, 's3'))
  t.teardown(async () => local.close())
  t.equal(local.config.server.host, '0.0.0.0')
  t.notMatch(lines.join('\n'), 'listening on 127.0.0.1 only')
})

t.test('the simulated sender\'s period is checked like any variable; with a configured Threat Stack there is no sender', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ts2s3-dev-'))
  t.teardown(async () => rm(dir, { recursive: true, force: true }))
  const { log } = capture()
  const err = await startLocalDependencies(log, { DEV_SENDER_INTERVAL_S: 'soon' }, dir).catch((e: unknown) => e)
  t.type(err, ConfigError)
  t.equal((err as ConfigError).variable, 'DEV_SENDER_INTERVAL_S')
  // With the service's own variables wrong too: all of them in one go, not one per restart.
  const several = await startLocalDependencies(log, { DEV_SENDER_INTERVAL_S: 'soon', PORT: 'eighty', TRUST_PROXY: 'maybe' }, dir).catch((e: unknown) => e)
  t.type(several, ConfigError)
  t.same((several as ConfigError).problems.map((p) => p.variable), ['PORT', 'TRUST_PROXY', 'DEV_SENDER_INTERVAL_S'], 'every invalid variable at once')

  const { log: log2, lines } = capture()
  const local = await startLocalDependencies(log2, { ...CONFIGURED }, '/nonexistent')
  t.teardown(async () => local.close())
  local.announce([{ address: '127.0.0.1', family: 'IPv4', port: 9 }])
  t.notMatch(lines.join('\n'), /sender/, 'the developer\'s own Threat Stack sends its own webhooks')
})

t.test('configured upstreams are used as they are, with no local stand-in', async (t) => {
  const { log, lines } = capture()
  const local = await startLocalDependencies(log, { ...CONFIGURED }, '/nonexistent')
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

// `npm run dev` itself, as a real process tree: npm, the watcher, the server.
const ROOT = fileURLToPath(new URL('..', import.meta.url))

interface Dev { child: ChildProcess, out: () => string, err: () => string, exited: Promise<number | null> }

function runDev (t: Test, env: Record<string, string>): Dev {
  const child = spawn('npm', ['run', 'dev'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? ROOT, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let out = ''
  let err = ''
  child.stdout.on('data', (chunk: Buffer) => { out += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { err += chunk.toString() })
  const exited = once(child, 'exit').then(([code]) => code as number | null)
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  return { child, out: () => out, err: () => err, exited }
}

async function healthy (url: string): Promise<boolean> {
  return await request(`${url}/health`).then(async (res) => { await res.body.dump(); return res.statusCode === 200 }, () => false)
}

/** What the service printed on stderr: npm's own report of a failed script left out. */
const ours = (text: string): string[] => text.split('\n').filter((line) => line.trim() !== '' && !line.startsWith('npm '))

t.test('npm run dev: SIGINT to its pid closes the server; LOG_LEVEL is honoured; stand-ins are printed', async (t) => {
  const { env } = await startUpstreams(t)
  // S3 is configured; Threat Stack is left to the stand-in.
  const { THREATSTACK_BASE_URL: _u, THREATSTACK_API_KEY: _k, THREATSTACK_USER_ID: _i, THREATSTACK_ORGANIZATION_ID: _o, ...s3Only } = env
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const dev = runDev(t, { ...s3Only, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn' })
  for (let i = 0; i < 600 && dev.child.exitCode === null && !dev.out().includes('npm run reconcile'); i++) await new Promise((resolve) => setTimeout(resolve, 100))
  t.ok(await healthy(url), `dev answers on ${url}`)
  const simulator = /THREATSTACK_BASE_URL=(http:\/\/127\.0\.0\.1:\d+)\/v2/.exec(dev.out())?.[1]
  t.ok(simulator, 'the simulator endpoint is printed')
  t.match(dev.out(), 'THREATSTACK_API_KEY=dev-api-key THREATSTACK_USER_ID=dev-user THREATSTACK_ORGANIZATION_ID=dev-org', 'with its credentials')

  const get = await request(`${url}/api/v1/s3/alert/587c0159a907346eccb84004`, { headers: { authorization: `Bearer ${TOKENS.read}` } })
  await get.body.dump()
  t.equal(get.statusCode, 404)
  t.notMatch(dev.out(), /INFO|incoming request|Server listening/, 'LOG_LEVEL=warn: no info lines')

  dev.child.kill('SIGINT')
  t.equal(await dev.exited, 0, 'npm run dev exits on SIGINT to its pid')
  t.notOk(await healthy(url), 'the server port is closed')
  const refused = await request(simulator ?? url).then(async (res) => { await res.body.dump(); return false }, () => true)
  t.ok(refused, 'the stand-in is closed')
})

t.test('npm run dev: the simulated sender raises alerts that the service archives with their full alert; SIGINT stops it all', async (t) => {
  const { env } = await startUpstreams(t)
  const { THREATSTACK_BASE_URL: _u, THREATSTACK_API_KEY: _k, THREATSTACK_USER_ID: _i, THREATSTACK_ORGANIZATION_ID: _o, ...s3Only } = env
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const dev = runDev(t, { ...s3Only, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', DEV_SENDER_INTERVAL_S: '1' })
  const delivered = /^dev: sender: batch \d+ \(severity \d, \d+ alerts?: ([0-9a-f]{24})[^)]*\) answered 200/m
  for (let i = 0; i < 900 && dev.child.exitCode === null && !delivered.test(dev.out()); i++) await new Promise((resolve) => setTimeout(resolve, 100))
  t.match(dev.out(), /dev: simulated Threat Stack sender: 1-3 alerts raised at the simulator every 1 s/, 'the banner says the sender runs')
  const id = delivered.exec(dev.out())?.[1]
  t.ok(id, 'a batch was answered 200', { output: dev.out().slice(-2000) })

  // Its full alert (only the simulator has its details) may still be owed in the background.
  let alert: Record<string, unknown> | undefined
  for (let i = 0; i < 300 && alert?.details === undefined; i++) {
    const res = await request(`${url}/api/v1/s3/alert/${id ?? 'none'}`, { headers: { authorization: `Bearer ${TOKENS.read}` } })
    const body = await res.body.json() as { alert?: Record<string, unknown> }
    if (res.statusCode === 200) alert = body.alert
    if (alert?.details === undefined) await new Promise((resolve) => setTimeout(resolve, 100))
  }
  t.equal(alert?.id, id, 'the alert the sender raised is archived')
  t.same(alert?.details, { user: 'root', address: '203.0.113.7' }, 'with its full alert from the simulator')

  dev.child.kill('SIGINT')
  t.equal(await dev.exited, 0, 'npm run dev exits 0 on SIGINT')
  t.notOk(await healthy(url), 'the server port is closed')
  t.notMatch(dev.out(), /sender: .*failed/, 'no batch failed, not even the last one during the shutdown')
})

t.test('npm run dev: bad variables, or a busy port, are one line each, exit 1, and the watcher stops', async (t) => {
  const bad = runDev(t, { PORT: 'eighty', TRUST_PROXY: 'maybe' })
  t.equal(await bad.exited, 1)
  t.same(ours(bad.err()), [
    'Invalid configuration: PORT must be a whole number from 0 to 65535',
    'Invalid configuration: TRUST_PROXY must be true, false, a hop count, or comma-separated IP addresses or CIDRs'
  ])
  t.notMatch(bad.out() + bad.err(), /\bat .*\.ts:\d+/, 'no stack')

  const taken = createServer()
  taken.listen(0, '127.0.0.1')
  await once(taken, 'listening')
  t.teardown(() => taken.close())
  const port = (taken.address() as { port: number }).port
  const { env } = await startUpstreams(t)
  const busy = runDev(t, { ...env, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'silent' })
  t.equal(await busy.exited, 1)
  t.same(ours(busy.err()), [`Cannot listen: port ${port} on 127.0.0.1 is already in use (set PORT to another port)`])
  t.notMatch(busy.out() + busy.err(), /\bat .*\.ts:\d+/, 'no stack')

  // A value found bad only as the app starts: the same one line, and the watcher stops.
  const unreadable = runDev(t, { ...env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', SWEEP_INTERVAL_S: '60', DIGEST_SIGNING_KEY_FILE: '/nonexistent/digest-key.pem' })
  t.equal(await unreadable.exited, 1)
  t.same(ours(unreadable.err()), ['Invalid configuration: DIGEST_SIGNING_KEY_FILE must name a readable Ed25519 private key (PEM)'])
  t.notMatch(unreadable.out() + unreadable.err(), /\bat .*\.ts:\d+/, 'no stack')
})

t.test('the app knows nothing of dev/, and fastify start still runs it from the environment', async (t) => {
  t.notMatch(readFileSync(join(ROOT, 'app.ts'), 'utf8'), /from '\.\/dev\/|import\('\.\/dev\//, 'app.ts imports nothing of dev/')
  const { env } = await startUpstreams(t)
  const port = await freePort()
  const child = spawn(process.execPath, [join(ROOT, 'node_modules', 'fastify-cli', 'cli.js'), 'start', '-l', 'warn', '-a', '127.0.0.1', '-p', String(port), 'app.ts'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', NODE_OPTIONS: '--import tsx', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let out = ''
  child.stderr.on('data', (chunk: Buffer) => { out += chunk.toString() })
  const exited = once(child, 'exit')
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  const url = `http://127.0.0.1:${port}`
  let up = false
  for (let i = 0; i < 300 && !up && child.exitCode === null; i++) {
    up = await healthy(url)
    if (!up) await new Promise((resolve) => setTimeout(resolve, 100))
  }
  t.ok(up, `fastify start serves the app: ${out}`)
  const read = await request(`${url}/api/v1/s3/alert/587c0159a907346eccb84004`, { headers: { authorization: `Bearer ${TOKENS.read}` } })
  await read.body.dump()
  t.equal(read.statusCode, 404, 'with the config read from the environment (tokens, S3)')
  child.kill('SIGTERM')
  await exited
})
