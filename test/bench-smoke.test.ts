// `npm run bench` (and its acknowledgement mode), `npm run bench:completeness`, `npm run bench:search` and `npm run soak`,
// briefly, as CI runs them: each ends with exit code 0 and prints its summary. No figure is asserted (shared CI machines are noisy); the correctness
// checks they make (every 200 complete in S3, every error an envelope of the right type, the
// service alive) are.
import t, { type Test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
// Four benchmark processes with their upstreams, on a busy machine.
t.setTimeout(480_000)

async function run (t: Test, script: string, env: Record<string, string>, args: string[] = []): Promise<{ code: number | null, out: string }> {
  const env0 = { ...process.env }
  // Coverage of the scripts is not wanted, and would slow them down.
  delete env0.NODE_V8_COVERAGE
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
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

// One after the other: each starts its own upstreams, and the machine is shared.
t.test('the acknowledgement bench and the completeness bench run briefly and pass their checks', async (t) => {
  const ack = await run(t, 'bench/ingest.ts', { BENCH_SMOKE: '1', BENCH_LOG_LEVEL: 'warn' }, ['--ack'])
  t.equal(ack.code, 0, 'bench --ack exits 0', { output: ack.out })
  t.match(ack.out, /200 ms added per Threat Stack call and 5 ms per S3 call; ENRICH_WAIT_MS=0; the plain client does one S3 PUT/, 'it says what it compares')
  t.match(ack.out, /alerts answered 200 checked in S3, 0 incomplete/, 'every 200 complete once the enrichment drained')
  t.match(ack.out, /all checks hold/)

  const completeness = await run(t, 'bench/completeness.ts', { BENCH_SMOKE: '1' })
  t.equal(completeness.code, 0, 'bench:completeness exits 0', { output: completeness.out })
  t.match(completeness.out, /^\| no rate limit \| 240 \| .* \| 24\/24 \|$/m, 'the unlimited backfill, every hour complete')
  t.match(completeness.out, /^\| API limited to \d+ requests per 1000 ms \| 120 \| .* \| 24\/24 \|$/m, 'the limited one too')
  t.match(completeness.out, /^\| sweep, every ledger fresh .* \| 25 \| \d+ \|/m, 'the idle sweep\'s cost')
  t.match(completeness.out, /all checks hold/)
})

t.test('the search bench runs briefly: the range against the scan, then the dense minute with and without index entries', async (t) => {
  const search = await run(t, 'bench/search.ts', { SEARCH_BENCH_RECORDS: '40', SEARCH_BENCH_DENSE: '150', SEARCH_BENCH_PAGES: '2' })
  t.equal(search.code, 0, 'bench:search exits 0 (its answers agree, with and without the index)', { output: search.out })
  t.match(search.out, /^\| 80 \| 1 day \| \d+ \| /m, 'the range-vs-scan table')
  t.match(search.out, /A minute holding 150 alerts, pages of 100/, 'the dense minute')
  t.match(search.out, /^\| 10 ms range, first page \| \d+ \| /m, 'its 10 ms range')
  t.match(search.out, /^\| whole minute, 2 pages \| 150 \| /m, 'and its pages, every alert of the minute read')
})
