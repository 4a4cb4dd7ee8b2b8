import t from 'tap'
import Fastify from 'fastify'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import errorsPlugin from '../plugins/errors.js'
import consoleRoutes from '../routes/console.js'
import { build, BEARER } from './helpers/build.js'
import { CONSOLE_CSP } from '../routes/console.js'
import { BROWSER_INSTALL, withBrowser } from './helpers/browser.js'

function recorder (): { tap: Parameters<typeof withBrowser>[0], comments: string[], failures: string[], ran: string[] } {
  const comments: string[] = []
  const failures: string[] = []
  const ran: string[] = []
  const tap = {
    teardown: () => {},
    comment: (...args: unknown[]) => { comments.push(args.join(' ')) },
    fail: (message: string) => { failures.push(message); return false },
    test: async (name: string) => { ran.push(name) }
  }
  return { tap, comments, failures, ran }
}

const NO_BROWSER = '/nonexistent/chromium'

t.test('no chromium: the browser test is not run, and a comment says so and how to install it', async (t) => {
  const r = recorder()
  await withBrowser(r.tap, 'some browser test', async () => { t.fail('must not run') }, {}, NO_BROWSER)
  t.same(r.ran, [])
  t.same(r.failures, [])
  t.equal(r.comments.length, 1)
  t.match(r.comments[0], /NOT RUN \(no browser at \/nonexistent\/chromium\): "some browser test"/)
  t.ok(r.comments[0]?.includes(BROWSER_INSTALL))
})

t.test('REQUIRE_BROWSER=1 without chromium: a failure, not a silent pass', async (t) => {
  const r = recorder()
  await withBrowser(r.tap, 'some browser test', async () => { t.fail('must not run') }, { REQUIRE_BROWSER: '1' }, NO_BROWSER)
  t.same(r.ran, [])
  t.equal(r.failures.length, 1)
  t.match(r.failures[0], /REQUIRE_BROWSER=1.*"some browser test".*apt-get install -y chromium/)
})

t.test('GET /console serves the page without a token, with a strict CSP and no framing', async (t) => {
  const { app } = await build(t)
  const res = await app.inject({ method: 'GET', url: '/console' })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^text\/html/)
  t.equal(res.headers['content-security-policy'], CONSOLE_CSP)
  t.match(CONSOLE_CSP, /script-src 'self';/)
  t.notMatch(CONSOLE_CSP, /unsafe-inline|unsafe-eval|https?:/, 'no inline script or style, no other origin')
  t.equal(res.headers['x-frame-options'], 'DENY')
  t.equal(res.headers['x-content-type-options'], 'nosniff')
  t.match(res.body, /<script type="module" src="\/console\/app.js"><\/script>/)
  t.notMatch(res.body, /<script>|<script [^>]*>[^<]+<\/script>|\sstyle=|\son[a-z]+=/, 'no inline script, style or handler')
  t.notMatch(res.body, /https?:\/\//, 'no asset from another origin')
})

t.test('the page\'s assets are served with the same headers, and nothing else under /console/', async (t) => {
  const { app } = await build(t)
  for (const [file, type] of [['app.js', /javascript/], ['api.js', /javascript/], ['console.css', /text\/css/]] as const) {
    const res = await app.inject({ method: 'GET', url: `/console/${file}` })
    t.equal(res.statusCode, 200, file)
    t.match(res.headers['content-type'], type, file)
    t.equal(res.headers['content-security-policy'], CONSOLE_CSP, file)
    t.equal(res.headers['x-frame-options'], 'DENY', file)
    t.notMatch(res.body, /https?:\/\/(?!www\.w3\.org\/2000\/svg)/, `${file} names no other origin`)
  }
  for (const url of ['/console/index.html', '/console/../package.json', '/console/%2e%2e/package.json', '/console/nope.js']) {
    const res = await app.inject({ method: 'GET', url })
    t.equal(res.statusCode, 404, url)
    t.match(res.json(), { success: false, error: { type: 'RouteNotFoundError' } }, url)
  }
})

t.test('the API keeps its own headers: the console CSP is for the console only', async (t) => {
  const { app } = await build(t)
  const res = await app.inject({ method: 'GET', url: '/api/v1/s3/coverage?start=2017-01-15&end=2017-01-16', headers: BEARER.read })
  t.equal(res.statusCode, 200)
  t.not(res.headers['content-security-policy'], CONSOLE_CSP)
  t.equal(res.headers['x-frame-options'], undefined)
})

t.test('the console is not in the OpenAPI document', async (t) => {
  const { app } = await build(t)
  const res = await app.inject({ method: 'GET', url: '/documentation/json' })
  t.equal(res.statusCode, 200)
  const paths = Object.keys((res.json() as { paths: Record<string, unknown> }).paths)
  t.ok(paths.length > 0)
  t.notOk(paths.some((p) => p.startsWith('/console')), 'no console path')
})

t.test('without its page installed the service still starts: a warning, and /console is a 404 envelope', async (t) => {
  const empty = await mkdtemp(join(tmpdir(), 'ts2s3-console-'))
  t.teardown(async () => rm(empty, { recursive: true, force: true }))
  const lines: Array<{ level: number, msg: string }> = []
  const stream = new Writable({
    write (chunk, _encoding, done) {
      for (const line of String(chunk).split('\n')) if (line !== '') lines.push(JSON.parse(line) as { level: number, msg: string })
      done()
    }
  })
  const app = Fastify({ logger: { level: 'warn', stream } })
  t.teardown(async () => app.close())
  await app.register(errorsPlugin)
  await app.register(consoleRoutes, { root: empty })
  await app.ready()
  const res = await app.inject({ method: 'GET', url: '/console' })
  t.equal(res.statusCode, 404)
  t.match(res.json(), { success: false, error: { type: 'RouteNotFoundError' } })
  t.match(lines.filter((l) => l.level === 40), [{ msg: /console: its page is not installed/ }], 'one warning at start')
})
