import t from 'tap'
import type { AddressInfo } from 'node:net'
import { TOKENS, build } from './helpers/build.js'
import { runDemo } from '../dev/demo.js'
import { DEV_INGEST_TOKEN, DEV_READ_TOKEN } from '../dev/local.js'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

// Several real npm process trees start here: room for a busy machine.
t.setTimeout(240_000)

type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

/** Runs the demo against a listening service with these tokens; its report, line by line. */
async function demo (t: Tap, ingestToken: string): Promise<{ ok: boolean, report: string }> {
  const { app } = await build(t)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as AddressInfo
  const lines: string[] = []
  const ok = await runDemo({ baseUrl: `http://127.0.0.1:${port}`, ingestToken, readToken: TOKENS.read, print: (l) => lines.push(l) })
  return { ok, report: lines.join('\n') }
}

t.test('npm run demo archives sample webhooks and reads them back by id and by range', async (t) => {
  const { ok, report } = await demo(t, TOKENS.ingest)
  t.ok(ok, 'every step answered as expected')
  t.notMatch(report, /^BAD/m, 'no step marked BAD')
  t.equal(report.match(/^ok {2}GET \/api\/v1\/s3\/alert\/demo/gm)?.length, 3, 'three alerts read back by id')
  t.match(report, /"demoAlertsFound":\["demo1[0-9a-f]+","demo2[0-9a-f]+","demo3[0-9a-f]+"\]/, 'the range holds the three, in created_at order')
  t.match(report, /doesnotexist \(not archived\) -> 404/)
})

t.test('the demo reports a step that does not answer as expected', async (t) => {
  // A read token cannot post: the webhook steps fail and the demo says so.
  const { ok, report } = await demo(t, TOKENS.read)
  t.notOk(ok)
  t.match(report, /^BAD POST \/api\/v1\/s3\/alert/m)
})

t.test('npm run demo follows PORT, as npm run dev does, and has --help', async (t) => {
  const { app } = await build(t, { env: { INGEST_TOKENS: DEV_INGEST_TOKEN, READ_TOKENS: DEV_READ_TOKEN } })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as AddressInfo
  const env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? ROOT, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' }
  const run = await npm(['run', '--silent', 'demo'], { ...env, PORT: String(port) })
  t.equal(run.code, 0, run.out)
  t.match(run.out, `http://localhost:${port}`)

  const help = await npm(['run', '--silent', 'demo', '--', '--help'], env)
  t.equal(help.code, 0)
  t.match(help.out, /^Usage: npm run demo/)
  t.match(help.out, 'PORT')
})

async function npm (args: string[], env: Record<string, string>): Promise<{ code: number | null, out: string }> {
  const child = spawn('npm', args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (chunk: Buffer) => { out += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { out += chunk.toString() })
  const [code] = await once(child, 'exit')
  return { code: code as number | null, out }
}
