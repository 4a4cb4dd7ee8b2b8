// The query command's failures and exit codes, as a real process against a local S3 server.
import t from 'tap'
import { RANGE, run, setup } from './run.js'

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
