// npm run bench:integrity, run briefly on moto: it completes and its archive verifies. No figure
// is asserted (benchmarks never become timed tests).
import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { withMoto } from './helpers/moto.js'

await withMoto(t, 'bench:integrity at small sizes: ingest rounds, a digest per hour, verify over every hour, all ok', async (t) => {
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/integrity.ts'], {
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', BENCH_PUTS: '40', BENCH_DIGEST_ALERTS: '15', BENCH_VERIFY_ALERTS: '30' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let out = ''
  let err = ''
  child.stdout.on('data', (c: Buffer) => { out += c.toString() })
  child.stderr.on('data', (c: Buffer) => { err += c.toString() })
  const timer = setTimeout(() => child.kill('SIGKILL'), 100_000)
  const [code] = await once(child, 'exit')
  clearTimeout(timer)
  t.equal(code, 0, err.slice(-2000))
  const result = JSON.parse(out) as Record<string, any>
  t.match(result, {
    ingest: { puts: 40, plain: { putsPerSecond: Number, p50Ms: Number }, integrity: { putsPerSecond: Number, p50Ms: Number }, cost: Number },
    digest: { alertsPerHour: 15, objectsPerHour: 30, secondsPerHour: Number },
    verify: { ok: true, alerts: 30, objects: 60, objectsPerSecond: Number }
  })
})
