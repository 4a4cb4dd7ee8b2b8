// The physical limit of one webhook: the bare upstream work, with no HTTP server in front —
// the webhook PUT alongside the Threat Stack GET, then the alert PUT — using the same SDK,
// undici and settings as the service. Runs `concurrency` loops for `warmupMs` (JIT, connection
// pools: not counted, as the service gets a warm-up too), then for `durationMs`, and prints
// one JSON line: sequences, errors, latencies, its own CPU time and peak RSS.
// PLAIN_MODE=put: the webhook PUT only, what an answer that waits for the record alone costs at
// the least. PLAIN_RUN names the run (the ids' prefix).
import { performance } from 'node:perf_hooks'
import { loadConfig } from '../config.js'
import { createS3Client, storeOf } from '../services/s3-client.js'
import { alertKey, webhookKey } from '../services/keys.js'
import { putJson } from '../services/storage.js'
import { closeThreatStackClient, createThreatStackClient, fetchAlert } from '../services/threatstack.js'
import { percentile } from './lib.js'

const concurrency = Number(process.env.PLAIN_CONCURRENCY ?? 1)
const durationMs = Number(process.env.PLAIN_DURATION_MS ?? 5000)
const warmupMs = Number(process.env.PLAIN_WARMUP_MS ?? 1000)
const run = process.env.PLAIN_RUN ?? 'plain'
const putOnly = process.env.PLAIN_MODE === 'put'
const config = loadConfig({ ...process.env, AUTH_MODE: 'none' })
const s3 = createS3Client(config.s3)
const store = storeOf(config.s3, s3)
const threatstack = createThreatStackClient(config.threatstack)

let latencies: number[] = []
let errors = 0
let counter = 0
let deadline = performance.now() + warmupMs
const createdAt = Date.UTC(2017, 0, 15, 23, 10)

async function loop (): Promise<void> {
  while (performance.now() < deadline) {
    const id = `${run}-${counter++}`
    const alert = { id, created_at: String(createdAt), severity: '2', title: 'bench' }
    const t0 = performance.now()
    try {
      if (putOnly) {
        await putJson(store, webhookKey(store.prefix, id, createdAt), alert)
      } else {
        await Promise.all([
          putJson(store, webhookKey(store.prefix, id, createdAt), alert),
          fetchAlert(threatstack, id).then(async (full) => putJson(store, alertKey(store.prefix, id), full))
        ])
      }
      latencies.push(performance.now() - t0)
    } catch {
      errors++
    }
  }
}

await Promise.all(Array.from({ length: concurrency }, loop))
latencies = []
errors = 0
deadline = performance.now() + durationMs

let peakRss = process.memoryUsage.rss()
const rssTimer = setInterval(() => { peakRss = Math.max(peakRss, process.memoryUsage.rss()) }, 200)
const cpu0 = process.cpuUsage()
const started = performance.now()
await Promise.all(Array.from({ length: concurrency }, loop))
const seconds = (performance.now() - started) / 1000
const cpu = process.cpuUsage(cpu0)
clearInterval(rssTimer)
latencies.sort((a, b) => a - b)
process.stdout.write(`${JSON.stringify({
  sequences: latencies.length,
  errors,
  seconds,
  perSecond: latencies.length / seconds,
  p50: percentile(latencies, 50),
  p99: percentile(latencies, 99),
  peakRssMb: peakRss / 1024 / 1024,
  cpuSecondsPer1000: (cpu.user + cpu.system) / 1e6 / (latencies.length / 1000)
})}\n`)
s3.destroy()
await closeThreatStackClient(threatstack)
