// The compact, query and athena-ddl commands as real processes against a local S3 server.
import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { alertKey, webhookKey } from '../../services/keys.js'
import { LOCAL_S3_CREDENTIALS } from '../../dev/local-s3.js'
import { startBackend, type CountingStore } from '../helpers/s3.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const DAY1 = Date.UTC(2017, 0, 15)
const H = 3_600_000

interface Run { code: number | null, stdout: string, stderr: string }

const shellQuote = (arg: string): string => `'${arg.replaceAll("'", "'\\''")}'`

/** Runs a command; with `tty`, on a pseudo-terminal by `script` (everything then comes as stdout). */
async function run (script: string, args: string[], env: Record<string, string>, tty = false): Promise<Run> {
  const command = [process.execPath, '--import', 'tsx', script, ...args]
  const [file, argv] = tty ? ['script', ['-qec', command.map(shellQuote).join(' '), '/dev/null']] : [command[0] as string, command.slice(1)]
  const child = spawn(file, argv, {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (c: Buffer) => { stdout += c.toString() })
  child.stderr.on('data', (c: Buffer) => { stderr += c.toString() })
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
  const [code] = await once(child, 'exit') as [number | null]
  clearTimeout(timer)
  return { code, stdout, stderr }
}

async function setup (t: Test): Promise<{ store: CountingStore, env: Record<string, string> }> {
  const store = await startBackend(t, 's3rver', 'cli-tables-bucket')
  await store.putMany([
    [webhookKey('', 'd0000001', DAY1 + H), JSON.stringify({ id: 'd0000001', created_at: String(DAY1 + H), severity: '1' })],
    [alertKey('', 'd0000001'), JSON.stringify({ id: 'd0000001', created_at: DAY1 + H, severity: 1, title: 'Login, "odd" title', server_or_region: 'web-1' })],
    [webhookKey('', 'd0000002', DAY1 + 2 * H), JSON.stringify({ id: 'd0000002', created_at: String(DAY1 + 2 * H), severity: '2', title: 'no full alert' })],
    [webhookKey('', 'd0000003', DAY1 + 25 * H), JSON.stringify({ id: 'd0000003', created_at: String(DAY1 + 25 * H), severity: '2' })]
  ])
  const env = {
    TS_AWS_S3_BUCKET: store.bucket,
    AWS_ENDPOINT_URL_S3: store.server.endpoint,
    AWS_ACCESS_KEY_ID: LOCAL_S3_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: LOCAL_S3_CREDENTIALS.secretAccessKey,
    S3_TIMEOUT_MS: '5000',
    S3_MAX_ATTEMPTS: '1'
  }
  return { store, env }
}

const CLEAR = '\r\u001b[2K'
const RANGE = ['--start', '2017-01-15', '--end', '2017-01-17']

t.test('compact builds past days once, then reports them unchanged', async (t) => {
  const { env } = await setup(t)
  const first = await run('cli/compact.ts', RANGE, env)
  t.equal(first.code, 0, first.stderr)
  t.match(first.stdout, /2017-01-15 {2}written: 2 rows \(1 without full alert\), 1 part\(s\), \d+ bytes/)
  t.match(first.stdout, /2017-01-16 {2}written: 1 rows/)
  t.match(first.stdout, /2 day\(s\): 2 written, 0 unchanged, 0 skipped; 3 rows, 2 without full alert/)
  t.notMatch(first.stderr, /\r/, 'no progress line when stderr is not a terminal')
  const second = await run('cli/compact.ts', RANGE, env)
  t.equal(second.code, 0)
  t.match(second.stdout, /2 day\(s\): 0 written, 2 unchanged/)

  const today = new Date().toISOString().slice(0, 10)
  const open = await run('cli/compact.ts', ['--start', today, '--end', new Date(Date.now() + 86_400_000).toISOString().slice(0, 10)], env)
  t.equal(open.code, 0)
  t.match(open.stdout, /skipped: the day is not over/)

  const bad = await run('cli/compact.ts', ['--start', '2017-01-15'], env)
  t.equal(bad.code, 2)
  t.match(bad.stderr, /--start and --end are required/)
  const noBucket = await run('cli/compact.ts', RANGE, { ...env, TS_AWS_S3_BUCKET: '' })
  t.equal(noBucket.code, 2)
  t.match(noBucket.stderr, /TS_AWS_S3_BUCKET is required/)
})

t.test('query prints an aligned table, JSON or CSV, over compacted and uncompacted days', async (t) => {
  const { env } = await setup(t)
  t.equal((await run('cli/compact.ts', ['--start', '2017-01-15', '--end', '2017-01-16'], env)).code, 0)
  const sql = 'SELECT severity, count(*) AS n FROM alerts GROUP BY 1 ORDER BY 1'
  const table = await run('cli/query.ts', [...RANGE, sql], env)
  t.equal(table.code, 0, table.stderr)
  t.equal(table.stdout, 'severity  n\n--------  -\n       1  1\n       2  2\n(2 rows)\n')

  const json = await run('cli/query.ts', [...RANGE, '--json', 'SELECT id, created_at, severity, title, raw IS NULL AS no_raw FROM alerts ORDER BY id'], env)
  t.equal(json.code, 0, json.stderr)
  t.same(JSON.parse(json.stdout), [
    { id: 'd0000001', created_at: '2017-01-15 01:00:00', severity: 1, title: 'Login, "odd" title', no_raw: false },
    { id: 'd0000002', created_at: '2017-01-15 02:00:00', severity: 2, title: 'no full alert', no_raw: true },
    { id: 'd0000003', created_at: '2017-01-16 01:00:00', severity: 2, title: null, no_raw: true }
  ])

  const csv = await run('cli/query.ts', [...RANGE, '--csv', 'SELECT id, title FROM alerts ORDER BY id'], env)
  t.equal(csv.code, 0)
  t.equal(csv.stdout, 'id,title\r\nd0000001,"Login, ""odd"" title"\r\nd0000002,no full alert\r\nd0000003,\r\n')
})

t.test('on a terminal, compact and query show one progress line, cleared before the result', async (t) => {
  const { env } = await setup(t)
  const compact = await run('cli/compact.ts', RANGE, env, true)
  t.equal(compact.code, 0)
  t.ok(compact.stdout.includes(`${CLEAR}day 1/2 2017-01-15: `), 'progress of the first day')
  t.match(compact.stdout, /2 day\(s\): 2 written/)
  const query = await run('cli/query.ts', [...RANGE, 'SELECT count(*) AS n FROM alerts'], env, true)
  t.equal(query.code, 0)
  t.ok(query.stdout.includes(`${CLEAR}days 2/2: 2 part(s) downloaded`), 'progress of the downloads')
  t.match(query.stdout.split(CLEAR).at(-1), /^n\r?\n-\r?\n3\r?\n\(1 row\)/, 'the line is cleared, then the table')
})

t.test('query: bad SQL exits 1 with DuckDB\'s message and no stack; bad arguments exit 2', async (t) => {
  const { env } = await setup(t)
  const bad = await run('cli/query.ts', [...RANGE, 'SELECT severity FROM alerts GROUP BY nothing'], env)
  t.equal(bad.code, 1)
  t.match(bad.stderr, /Binder Error: .*nothing/)
  t.notMatch(bad.stderr, /\n\s+at /, 'no stack')
  t.equal(bad.stdout, '')

  const noSql = await run('cli/query.ts', RANGE, env)
  t.equal(noSql.code, 2)
  t.match(noSql.stderr, /one SQL statement is required/)
  const both = await run('cli/query.ts', [...RANGE, '--json', '--csv', 'SELECT 1'], env)
  t.equal(both.code, 2)
  const dates = await run('cli/query.ts', ['--start', '2017-01-17', '--end', '2017-01-15', 'SELECT 1'], env)
  t.equal(dates.code, 2)
  t.match(dates.stderr, /start must be before end/)
})

t.test('query: an unreachable archive exits 3 without naming the bucket or endpoint', async (t) => {
  const { env } = await setup(t)
  const res = await run('cli/query.ts', [...RANGE, 'SELECT 1'], { ...env, AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:9', S3_CONNECT_TIMEOUT_MS: '500' })
  t.equal(res.code, 3)
  t.match(res.stderr, /Failure to communicate with S3/)
  t.notMatch(res.stderr, /cli-tables-bucket|127\.0\.0\.1|ECONNREFUSED/)
})

t.test('athena-ddl prints the three tables for the configured bucket and prefix', async (t) => {
  const res = await run('cli/athena-ddl.ts', ['--database', 'secops', '--first-day', '2017-01-01'], { TS_AWS_S3_BUCKET: 'archive-bucket', TS_AWS_S3_PREFIX: 'ts' })
  t.equal(res.code, 0, res.stderr)
  t.match(res.stdout, 'CREATE EXTERNAL TABLE IF NOT EXISTS `secops`.`alerts`')
  t.match(res.stdout, "LOCATION 's3://archive-bucket/ts/tables/alerts/'")
  t.match(res.stdout, "'projection.dt.range' = '2017-01-01,NOW'")
  // Athena's placeholders, not JavaScript's.
  const $ = (name: string): string => '$' + `{${name}}`
  t.match(res.stdout, `'storage.location.template' = 's3://archive-bucket/ts/tables/alerts/dt=${$('dt')}/'`)
  t.match(res.stdout, `'storage.location.template' = 's3://archive-bucket/ts/webhooks/${['year', 'month', 'day', 'hour', 'minute'].map($).join('/')}/'`)
  t.match(res.stdout, '`secops`.`full_alerts`')
  t.match(res.stdout, "LOCATION 's3://archive-bucket/ts/alerts/'")
  t.notMatch(res.stdout, /MSCK|crawler/i)
  t.match(res.stdout, /`severity` int /)
  t.match(res.stdout, /`created_at` timestamp /)

  const flags = await run('cli/athena-ddl.ts', ['--bucket', 'other-bucket', '--prefix', 'p'], {})
  t.equal(flags.code, 0, flags.stderr)
  t.match(flags.stdout, 's3://other-bucket/p/tables/alerts/')
  const bad = await run('cli/athena-ddl.ts', ['--first-day', '2017-02-30'], { TS_AWS_S3_BUCKET: 'archive-bucket' })
  t.equal(bad.code, 2)
})
