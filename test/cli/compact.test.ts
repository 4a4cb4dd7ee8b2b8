// The compact command as a real process against a local S3 server.
import t from 'tap'
import { RANGE, run, setup } from './run.js'

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
