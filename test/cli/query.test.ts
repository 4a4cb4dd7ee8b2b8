// The query command's output forms, as a real process against a local S3 server.
import t from 'tap'
import { RANGE, run, setup } from './run.js'

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
