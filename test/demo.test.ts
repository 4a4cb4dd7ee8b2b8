import t from 'tap'
import type { AddressInfo } from 'node:net'
import { TOKENS, build } from './helpers/build.js'
import { runDemo } from '../dev/demo.js'

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
