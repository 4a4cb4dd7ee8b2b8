// Without moto the moto tests do not run, and the summary of the run names each and how to get
// moto; with REQUIRE_MOTO=1 that is a failure.
import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { MOTO_INSTALL, MOTO_NOT_RUN, findMotoServer, withMoto } from './helpers/moto.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

function recorder (): { tap: Parameters<typeof withMoto>[0], skipped: Array<{ name: string, reason: unknown }>, failures: string[], ran: string[] } {
  const skipped: Array<{ name: string, reason: unknown }> = []
  const failures: string[] = []
  const ran: string[] = []
  const tap = {
    teardown: () => {},
    fail: (message: string) => { failures.push(message); return false },
    test: async (name: string, ...rest: unknown[]) => {
      const options = rest.length > 1 ? rest[0] as { skip?: unknown } : {}
      if (options.skip !== undefined) skipped.push({ name, reason: options.skip })
      else ran.push(name)
    }
  }
  return { tap, skipped, failures, ran }
}

t.test('no moto_server on PATH: the test is reported as not run, with how to get moto', async (t) => {
  t.equal(findMotoServer(''), undefined)
  const r = recorder()
  await withMoto(r.tap, 'some moto test', async () => { t.fail('must not run') }, { PATH: '' })
  t.same(r.ran, [])
  t.same(r.failures, [])
  t.same(r.skipped, [{ name: 'some moto test', reason: MOTO_NOT_RUN }])
  t.match(MOTO_NOT_RUN, /^NOT RUN \(moto_server not on PATH\)/)
  t.ok(MOTO_NOT_RUN.includes(MOTO_INSTALL))
})

t.test('REQUIRE_MOTO=1 without moto_server: a failure, not a silent pass', async (t) => {
  const r = recorder()
  await withMoto(r.tap, 'some moto test', async () => { t.fail('must not run') }, { PATH: '', REQUIRE_MOTO: '1' })
  t.same(r.ran, [])
  t.same(r.skipped, [])
  t.equal(r.failures.length, 1)
  t.match(r.failures[0], /REQUIRE_MOTO=1.*"some moto test"/)
})

// tap itself, as `npm test` runs it, on a PATH that holds node and nothing else.
async function runTap (t: any, env: Record<string, string>): Promise<{ code: number | null, out: string }> {
  const project = await mkdtemp(join(tmpdir(), 'ts2s3-moto-missing-'))
  t.teardown(async () => rm(project, { recursive: true, force: true }))
  await writeFile(join(project, 'package.json'), '{"type":"module","private":true}\n')
  await symlink(join(ROOT, 'node_modules'), join(project, 'node_modules'))
  const child = spawn(process.execPath, [join(ROOT, 'node_modules/tap/dist/esm/run.mjs'), '--disable-coverage', '-Rbase', join(ROOT, 'test/helpers/moto-missing-suite.ts')], {
    cwd: project,
    env: { PATH: dirname(process.execPath), HOME: project, COLUMNS: '200', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let out = ''
  child.stdout.on('data', (c: Buffer) => { out += c.toString() })
  child.stderr.on('data', (c: Buffer) => { out += c.toString() })
  const timer = setTimeout(() => child.kill('SIGKILL'), 90_000)
  const [code] = await once(child, 'exit')
  clearTimeout(timer)
  return { code: code as number | null, out }
}

t.test('npm test without moto passes, and its summary names the test that did not run and how to get moto', async (t) => {
  t.equal(findMotoServer(dirname(process.execPath)), undefined, 'no moto beside node')
  const { code, out } = await runTap(t, {})
  if (code !== 0) t.comment(out)
  t.equal(code, 0, 'passes')
  const summary = out.slice(out.lastIndexOf('TEST COMPLETE'))
  // The reporter sets the name and the reason side by side in columns, wrapped at its width.
  t.match(summary, /moto-missing-suite\.ts/, 'the file')
  t.match(summary, /~\s*a check that needs an S3/, 'the test, by name, after the run')
  t.match(summary, /NOT RUN \(moto_server not on PATH\)/, 'why')
  t.match(summary, /pipx install\s+'moto\[server\]'/, 'how to get moto')
  t.match(summary, /1 skip/)
})

t.test('with REQUIRE_MOTO=1 the same run fails', async (t) => {
  const { code, out } = await runTap(t, { REQUIRE_MOTO: '1' })
  t.not(code, 0)
  t.match(out, /REQUIRE_MOTO=1/)
})

t.test('.ci/run requires moto: it sets REQUIRE_MOTO=1 before any suite runs, and a missing moto_server is a failed check', async (t) => {
  const { readFile } = await import('node:fs/promises')
  const script = await readFile(join(ROOT, '.ci/run'), 'utf8')
  const required = script.indexOf('export REQUIRE_MOTO=1')
  t.ok(required > 0)
  t.ok(required < script.indexOf('npm test'), 'before the test runs')
  t.match(script, /command -v moto_server[^\n]*moto_missing=1/)
  t.match(script, /\[ "\$moto_missing" -eq 1 \] && \{ status=1; checks_failed=1; \}/)
})
