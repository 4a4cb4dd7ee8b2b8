// `npm run bench` and `npm run soak`, briefly, as CI runs them: both end with exit code 0 and
// print their summary. No figure is asserted (shared CI machines are noisy); the correctness
// checks they make (every 200 complete in S3, every error an envelope of the right type, the
// service alive) are.
import t, { type Test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

async function run (t: Test, script: string, env: Record<string, string>): Promise<{ code: number | null, out: string }> {
  const env0 = { ...process.env }
  // Coverage of the scripts is not wanted, and would slow them down.
  delete env0.NODE_V8_COVERAGE
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', script], {
    cwd: ROOT,
    // The service runs from the sources: a fresh clone has no dist/.
    env: { ...env0, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', BENCH_SERVICE_TSX: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM') })
  let out = ''
  child.stdout?.on('data', (chunk: Buffer) => { out += chunk.toString() })
  child.stderr?.on('data', (chunk: Buffer) => { out += chunk.toString() })
  return await new Promise((resolve) => child.once('exit', (code) => resolve({ code, out })))
}

t.test('the benchmark and the soak run briefly, pass their checks and print their summaries', async (t) => {
  const [bench, soak] = await Promise.all([
    run(t, 'bench/ingest.ts', { BENCH_SMOKE: '1' }),
    run(t, 'bench/soak.ts', { SOAK_SECONDS: '8', SOAK_RATE: '50', SOAK_CONNECTIONS: '8', SOAK_CHAOS: '0' })
  ])

  t.equal(bench.code, 0, 'bench exits 0', { output: bench.out })
  t.match(bench.out, /\| concurrency \| service webhooks\/s \|/, 'bench prints its table')
  t.match(bench.out, /^\| 1 \| /m, 'with a row per concurrency')
  t.match(bench.out, /all checks hold/)

  t.equal(soak.code, 0, 'soak exits 0', { output: soak.out })
  t.match(soak.out, /^soak summary: 8 s at 50 webhooks\/s/m, 'soak prints its summary')
  t.match(soak.out, /answered 200: \d+ \(all checked in S3, 0 incomplete\)/)
  t.match(soak.out, /service alive after the run: yes, \/health 200/)
  t.match(soak.out, /soak: all checks hold/)
})
