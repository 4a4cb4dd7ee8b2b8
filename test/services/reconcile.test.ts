import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { alertKey, webhookKey } from '../../services/keys.js'
import { reconcile, type ReconcileDeps, type ReconcileProgress } from '../../services/reconcile.js'
import { closeThreatStackClient, createThreatStackClient } from '../../services/threatstack.js'
import { startThreatStackSimulator } from '../../dev/threatstack-simulator.js'
import { LOCAL_S3_CREDENTIALS } from '../../dev/local-s3.js'
import { listKeys } from '../../services/storage.js'
import { NO_RETRY } from '../helpers/build.js'
import { startBackend, type CountingStore } from '../helpers/s3.js'

const T0 = Date.UTC(2017, 0, 15, 23, 10)
const RANGE = { startMs: T0, endMs: T0 + 3_600_000 }
const API_KEY = 'reconcile-test-api-key'

async function setup (t: Test): Promise<{ store: CountingStore, deps: ReconcileDeps, sim: Awaited<ReturnType<typeof startThreatStackSimulator>> }> {
  const store = await startBackend(t, 's3rver')
  const sim = await startThreatStackSimulator({ apiKey: API_KEY })
  const client = createThreatStackClient({
    baseUrl: sim.url, apiKey: API_KEY, auth: { kind: 'legacy' }, timeoutMs: 1000, connectTimeoutMs: 500, maxConnections: 8, maxResponseBytes: 65536, retry: NO_RETRY
  })
  t.teardown(async () => {
    await closeThreatStackClient(client)
    await sim.close()
  })
  return { store, sim, deps: { store, threatstack: client, concurrency: 3 } }
}

async function record (store: CountingStore, id: string, at: number, full: boolean): Promise<void> {
  await store.putRaw(webhookKey('', id, at), JSON.stringify({ id, created_at: String(at) }))
  if (full) await store.putRaw(alertKey('', id), JSON.stringify({ id, created_at: at, stored: 'before' }))
}

t.test('completes half-archived alerts of the range, exactly, and a second run repairs nothing', async (t) => {
  const { store, deps, sim } = await setup(t)
  await record(store, 'complete-1', T0 + 5, true)
  await record(store, 'half-0001', T0, false)
  await record(store, 'half-0002', T0 + 1_800_000, false)
  await record(store, 'half-0003', T0 + 3_599_999, false)
  for (let i = 0; i < 10; i++) await record(store, `half-many-${i}`, T0 + 600_000 + i, false)
  await record(store, 'outside-before', T0 - 1, false) // same minute as the start, but before it
  await record(store, 'outside-after', T0 + 3_600_000, false)
  const updates: ReconcileProgress[] = []
  const result = await reconcile(deps, RANGE, (p) => updates.push(p))
  t.same({ checked: result.checked, repaired: result.repaired, failed: result.failed, stillMissing: result.stillMissing },
    { checked: 14, repaired: 13, failed: 0, stillMissing: [] })
  t.equal(updates.length, 14, 'progress after every alert')
  t.same(updates.at(-1), { checked: 14, repaired: 13, failed: 0 })
  t.same(sim.requests.map((r) => r.path).sort(), [
    '/v2/alerts/half-0001', '/v2/alerts/half-0002', '/v2/alerts/half-0003',
    ...Array.from({ length: 10 }, (_, i) => `/v2/alerts/half-many-${i}`)
  ].sort(), 'only the missing alerts of the range were fetched')

  const again = await reconcile(deps, RANGE)
  t.same({ checked: again.checked, repaired: again.repaired, failed: again.failed }, { checked: 14, repaired: 0, failed: 0 }, 'idempotent')
  t.equal(sim.requests.length, 13, 'nothing fetched the second time')
})

t.test('an alert Threat Stack cannot give is reported, the others are repaired', async (t) => {
  const { store, deps, sim } = await setup(t)
  await record(store, 'half-0001', T0 + 1, false)
  await sim.failWith('json-404', 1)
  const result = await reconcile({ ...deps, concurrency: 1 }, RANGE)
  t.equal(result.failed, 1)
  t.same(result.stillMissing, [{ id: 'half-0001', reason: 'ThreatStackAPIError: Failure to communicate with Threat Stack (status 404)' }])
  const second = await reconcile(deps, RANGE)
  t.equal(second.repaired, 1, 'repaired once Threat Stack answers')
})

t.test('S3 down is thrown, not reported as a summary', async (t) => {
  const { store, deps } = await setup(t)
  await store.server.close()
  await t.rejects(reconcile(deps, RANGE), { name: 'S3ClientError' })
})

t.test('the command: plain progress lines off a terminal, summary, exit code', async (t) => {
  const { store, sim } = await setup(t)
  for (let i = 0; i < 150; i++) await record(store, `cli-half-${String(i).padStart(3, '0')}`, T0 + i * 1000, i % 3 !== 0)
  const run = async (args: string[], env: Record<string, string> = {}, tty = false): Promise<{ code: number | null, out: string, err: string }> => {
    const command = [process.execPath, '--import', 'tsx', 'cli/reconcile.ts', ...args]
    // On a terminal: `script` runs the command on a pseudo-terminal (its output then comes as stdout).
    const [file, argv] = tty ? ['script', ['-qec', command.join(' '), '/dev/null']] : [command[0] as string, command.slice(1)]
    const child = spawn(file, argv, {
      cwd: fileURLToPath(new URL('../..', import.meta.url)),
      env: {
        PATH: process.env.PATH ?? '',
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
        TS_AWS_S3_BUCKET: store.bucket,
        AWS_ENDPOINT_URL_S3: store.server.endpoint,
        AWS_ACCESS_KEY_ID: LOCAL_S3_CREDENTIALS.accessKeyId,
        AWS_SECRET_ACCESS_KEY: LOCAL_S3_CREDENTIALS.secretAccessKey,
        THREATSTACK_BASE_URL: sim.url,
        THREATSTACK_API_KEY: API_KEY,
        THREATSTACK_RETRIES: '0',
        ...env
      },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    let out = ''
    let err = ''
    child.stdout.on('data', (c: Buffer) => { out += c.toString() })
    child.stderr.on('data', (c: Buffer) => { err += c.toString() })
    const [code] = await once(child, 'exit')
    return { code: code as number | null, out, err }
  }

  const usage = await run(['--start', '2017-01-15'])
  t.equal(usage.code, 2, 'missing --end')
  t.match(usage.err, /--start and --end are required[\s\S]*Usage:/)
  const badDate = await run(['--start', '2017-02-30', '--end', '2017-03-01'])
  t.equal(badDate.code, 2)
  t.match(badDate.err, /start is not an RFC 3339/)
  const badConfig = await run(['--start', '2017-01-15', '--end', '2017-01-16'], { TS_AWS_S3_BUCKET: '' })
  t.equal(badConfig.code, 2)
  t.match(badConfig.err, /Invalid configuration: TS_AWS_S3_BUCKET is required/)

  await sim.failWith('json-500', 1)
  const first = await run(['--start', '2017-01-15T23:00:00Z', '--end', '2017-01-16', '--concurrency', '1'])
  t.equal(first.code, 1, 'one alert still missing')
  t.match(first.err, /^checked 100, repaired \d+, failed [01]$/m, 'a plain progress line at 100 alerts')
  t.match(first.err, /^checked 150, repaired 49, failed 1$/m, 'the final line')
  t.notMatch(first.err, /\r/, 'no carriage returns off a terminal')
  t.match(first.out, /^checked: 150\nrepaired: 49\nstill missing: 1\n {2}cli-half-000 {2}ThreatStackAPIError/)

  const marks: string[] = []
  for await (const key of listKeys(store, { Prefix: 'ledger/digest-pending/' })) marks.push(key)
  t.same(marks, ['ledger/digest-pending/2017/01/15/23'], 'the hour it completed, older than the digest job\'s lookback, is marked for its next run')

  const second = await run(['--start', '2017-01-15T23:00:00Z', '--end', '2017-01-16'])
  t.equal(second.code, 0)
  t.match(second.out, /^checked: 150\nrepaired: 1\nstill missing: 0\n$/)
  const third = await run(['--start', '2017-01-15T23:00:00Z', '--end', '2017-01-16'])
  t.match(third.out, /repaired: 0\n/, 'a complete archive is left as it is')

  const terminal = await run(['--start', '2017-01-15T23:00:00Z', '--end', '2017-01-16'], {}, true)
  t.equal(terminal.code, 0)
  t.match(terminal.out, /\rchecked \d+, repaired 0, failed 0/, 'on a terminal, progress rewrites one line')
  t.match(terminal.out, /\rchecked 150, repaired 0, failed 0\r?\n/, 'ending with the final count')
  t.notMatch(terminal.out, /(^|\n)checked 100, /, 'no plain progress lines on a terminal')
})
