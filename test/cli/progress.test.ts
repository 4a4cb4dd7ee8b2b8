// compact and query on a terminal: one progress line, rewritten in place, cleared before the result.
import t from 'tap'
import { CLEAR, RANGE, run, setup } from './run.js'

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
