// A fresh clone tests green with nothing beside it: no tracked file reaches outside the checkout.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { FIXTURES_DIR } from './helpers/sns.js'
import { resultsDir, UPDATE_FLAG } from '../bench/report.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

t.test('the SNS fixtures live inside the repository', async (t) => {
  const rel = relative(ROOT, FIXTURES_DIR)
  t.notOk(rel.startsWith('..'), `FIXTURES_DIR is ${rel}`)
  for (const name of ['notification-sigv1.json', 'notification-sigv2.json', 'signing-cert.pem']) {
    t.ok(existsSync(`${FIXTURES_DIR}/${name}`), name)
  }
  t.ok(existsSync(`${ROOT}/test/fixtures/README.md`), 'their provenance is kept beside them')
})

t.test('no tracked file points at a folder beside the checkout', async (t) => {
  // Built from parts so that this file does not match itself; .ci/run names the folder to check it is absent.
  const pattern = ['\\.\\./', 'shared', '|', '/work/', 'shared'].join('')
  let out = ''
  try {
    out = execFileSync('git', ['grep', '-n', '-E', pattern, '--', '.', ':!package-lock.json', ':!.ci/run'], { cwd: ROOT, encoding: 'utf8' })
  } catch (err) {
    // git grep exits 1 when nothing matches.
    if ((err as { status?: number }).status !== 1) throw err
  }
  t.equal(out, '', 'no match')
})

t.test('a benchmark run writes to an untracked folder unless asked to update the committed results', async (t) => {
  const dir = resultsDir([])
  t.notOk(relative(ROOT, dir).startsWith('..'), 'inside the checkout')
  t.equal(execFileSync('git', ['check-ignore', '-q', '--no-index', join(dir, 'ingest.json')], { cwd: ROOT, encoding: 'utf8' }), '', 'ignored by git')
  t.equal(resultsDir([UPDATE_FLAG]), join(ROOT, 'bench', 'results'), 'the committed folder only with the flag')
  const tracked = execFileSync('git', ['ls-files', 'bench/results'], { cwd: ROOT, encoding: 'utf8' })
  t.match(tracked, 'bench/results/ingest.json', 'the committed results stay tracked')
})
