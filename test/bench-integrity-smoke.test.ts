// npm run bench:integrity, run briefly on moto: it completes, its archive verifies, and its
// webhook rounds measured what they say (the plain variant's requests went out without the
// integrity headers and stored no checksum, the other's did). No figure is asserted (benchmarks
// never become timed tests).
import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { withMoto } from './helpers/moto.js'

// Two node processes (the bench, the service), moto and the simulator, on a busy machine.
t.setTimeout(240_000)

await withMoto(t, 'bench:integrity at small sizes: webhook rounds with and without the integrity headers, PUT rounds, a digest per hour, verify over every hour, all ok', async (t) => {
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/integrity.ts'], {
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', BENCH_SMOKE: '1', BENCH_WEBHOOKS: '40', BENCH_WEBHOOK_CONCURRENCY: '4', BENCH_PUTS: '40', BENCH_DIGEST_ALERTS: '15', BENCH_VERIFY_ALERTS: '30' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let out = ''
  let err = ''
  child.stdout.on('data', (c: Buffer) => { out += c.toString() })
  child.stderr.on('data', (c: Buffer) => { err += c.toString() })
  const timer = setTimeout(() => child.kill('SIGTERM'), 200_000)
  const [code] = await once(child, 'exit')
  clearTimeout(timer)
  t.equal(code, 0, err.slice(-2000))
  const result = JSON.parse(out) as Record<string, any>
  t.match(result, {
    webhooks: {
      perVariant: 40,
      integrity: { webhooksPerSecond: Number, p50Ms: Number, errors: 0 },
      plain: { webhooksPerSecond: Number, p50Ms: Number, errors: 0 },
      throughputRatio: Number,
      p50Ratio: Number,
      strippedRequests: { integrity: 0 },
      storedChecksum: { integrity: true, plain: false },
      missing: 0
    },
    ingest: { puts: 40, plain: { putsPerSecond: Number, p50Ms: Number }, integrity: { putsPerSecond: Number, p50Ms: Number }, cost: Number },
    digest: { alertsPerHour: 15, objectsPerHour: 30, secondsPerHour: Number },
    verify: { ok: true, alerts: 30, objects: 60, objectsPerSecond: Number }
  })
})
