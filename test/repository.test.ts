// A fresh clone tests green with nothing beside it: no tracked file reaches outside the checkout.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { FIXTURES_DIR } from './helpers/sns.js'

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
  // Built from parts so that this file does not match itself.
  const pattern = ['\\.\\./', 'shared', '|', '/work/', 'shared'].join('')
  let out = ''
  try {
    out = execFileSync('git', ['grep', '-n', '-E', pattern, '--', '.', ':!package-lock.json'], { cwd: ROOT, encoding: 'utf8' })
  } catch (err) {
    // git grep exits 1 when nothing matches.
    if ((err as { status?: number }).status !== 1) throw err
  }
  t.equal(out, '', 'no match')
})
