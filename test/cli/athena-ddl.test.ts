// The athena-ddl command as a real process.
import t from 'tap'
import { run } from './run.js'

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
