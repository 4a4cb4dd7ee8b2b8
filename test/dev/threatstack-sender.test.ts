import t from 'tap'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { once } from 'node:events'
import { startThreatStackSender } from '../../dev/threatstack-sender.js'
import { build, TOKENS } from '../helpers/build.js'

type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

/** A webhook receiver answering the statuses it is given, in turn (then 200), recording each body. */
async function receiver (t: Tap, statuses: number[]): Promise<{ url: string, bodies: Array<{ alerts: Array<{ id: string, severity: number }> }> }> {
  const bodies: Array<{ alerts: Array<{ id: string, severity: number }> }> = []
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let text = ''
    req.on('data', (chunk: Buffer) => { text += chunk.toString() })
    req.on('end', () => {
      bodies.push(JSON.parse(text) as { alerts: Array<{ id: string, severity: number }> })
      res.writeHead(statuses.shift() ?? 200, { 'content-type': 'application/json' })
      res.end('{}')
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(async () => { await new Promise((resolve) => server.close(resolve)) })
  const address = server.address() as { port: number }
  return { url: `http://127.0.0.1:${address.port}/hook`, bodies }
}

const alert = (id: string, severity: number): Record<string, unknown> => ({ id, severity, created_at: '1484521800000' })

t.test('batches by severity: one POST per severity per interval', async (t) => {
  const hook = await receiver(t, [])
  const sender = startThreatStackSender({ url: hook.url, intervalMs: 0 })
  t.teardown(async () => sender.close())
  for (const [id, sev] of [['aaaa0001', 1], ['aaaa0002', 2], ['aaaa0003', 1], ['aaaa0004', 3]] as const) sender.raise(alert(id, sev))
  await sender.tick()
  t.equal(hook.bodies.length, 3)
  t.same(hook.bodies.map((b) => b.alerts.map((a) => a.id)).sort(), [['aaaa0001', 'aaaa0003'], ['aaaa0002'], ['aaaa0004']])
  t.same([...sender.delivered].sort(), ['aaaa0001', 'aaaa0002', 'aaaa0003', 'aaaa0004'])
  await sender.tick()
  t.equal(hook.bodies.length, 3, 'nothing queued, nothing sent')
})

t.test('any answer but exactly 200 fails: resent at the next intervals, at most three times', async (t) => {
  const hook = await receiver(t, [201, 202, 500])
  const sender = startThreatStackSender({ url: hook.url, intervalMs: 0 })
  t.teardown(async () => sender.close())
  sender.raise(alert('bbbb0001', 2))
  for (let i = 0; i < 4; i++) await sender.tick()
  t.same(sender.attempts.map((a) => [a.attempt, a.status, a.ok]), [[0, 201, false], [1, 202, false], [2, 500, false], [3, 200, true]])
  t.same(sender.delivered, ['bbbb0001'], 'the third resend got through')
  t.same(sender.dropped, [])
})

t.test('after the third resend fails, the batch is dropped', async (t) => {
  const hook = await receiver(t, [503, 503, 503, 503, 200])
  const sender = startThreatStackSender({ url: hook.url, intervalMs: 0 })
  t.teardown(async () => sender.close())
  sender.raise(alert('cccc0001', 1))
  sender.raise(alert('cccc0002', 1))
  for (let i = 0; i < 6; i++) await sender.tick()
  t.equal(sender.attempts.length, 4, 'one send and three resends, no more')
  t.same(sender.dropped, [{ batch: 1, severity: '1', ids: ['cccc0001', 'cccc0002'] }])
  t.same(sender.delivered, [])
  t.equal(sender.outstanding, 0)
})

t.test('no answer is a failure too', async (t) => {
  const sender = startThreatStackSender({ url: 'http://127.0.0.1:1/hook', intervalMs: 0, maxResends: 1 })
  t.teardown(async () => sender.close())
  sender.raise(alert('dddd0001', 3))
  await sender.tick()
  await sender.tick()
  t.match(sender.attempts, [{ ok: false, error: String }, { ok: false, attempt: 1 }])
  t.equal(sender.dropped.length, 1)
})

t.test('on its timer, against the service: every alert archived, every answer 200', async (t) => {
  const { app } = await build(t)
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  const sender = startThreatStackSender({ url: `${address}/api/v1/s3/alert?token=${TOKENS.ingest}`, intervalMs: 50 })
  t.teardown(async () => sender.close())
  const ids = ['eeee0001', 'eeee0002', 'eeee0003']
  ids.forEach((id, i) => sender.raise(alert(id, 1 + i)))
  const deadline = Date.now() + 20_000
  while (sender.delivered.length < ids.length && sender.dropped.length === 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  t.same([...sender.delivered].sort(), ids)
  t.ok(sender.attempts.every((a) => a.status === 200))
})
