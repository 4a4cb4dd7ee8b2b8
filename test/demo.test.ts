import t from 'tap'
import type { AddressInfo } from 'node:net'
import { TOKENS, build } from './helpers/build.js'
import { runDemo } from '../dev/demo.js'

t.test('npm run demo archives sample webhooks and reads them back by id and by range', async (t) => {
  const { app } = await build(t)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as AddressInfo
  const lines: string[] = []
  const ok = await runDemo({ baseUrl: `http://127.0.0.1:${port}`, ingestToken: TOKENS.ingest, readToken: TOKENS.read, print: (l) => lines.push(l) })
  const report = lines.join('\n')
  t.ok(ok, 'every step answered as expected')
  t.notMatch(report, /^BAD/m, 'no step marked BAD')
  t.equal(report.match(/^ok {2}GET \/api\/v1\/s3\/alert\/demo/gm)?.length, 3, 'three alerts read back by id')
  t.match(report, /"demoAlertsFound":\["demo1[0-9a-f]+","demo2[0-9a-f]+","demo3[0-9a-f]+"\]/, 'the range holds the three, in created_at order')
  t.match(report, /doesnotexist \(not archived\) -> 404/)
})

t.test('the demo reports a step that does not answer as expected', async (t) => {
  const { app } = await build(t)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as AddressInfo
  const lines: string[] = []
  // A read token cannot post: the webhook steps fail and the demo says so.
  const ok = await runDemo({ baseUrl: `http://127.0.0.1:${port}`, ingestToken: TOKENS.read, readToken: TOKENS.read, print: (l) => lines.push(l) })
  t.notOk(ok)
  t.match(lines.join('\n'), /^BAD POST \/api\/v1\/s3\/alert/m)
})
