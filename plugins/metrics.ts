// Decorates app.metrics: the Prometheus registry of this app and its instruments, and times
// every request by route and status. Served by routes/metrics.ts.
import fp from 'fastify-plugin'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { UpstreamObserver } from '../services/upstream.js'

export type Upstream = 's3' | 'threatstack'

export interface Metrics {
  registry: Registry
  archived: Counter
  shed: Counter
  /** Write-once PUTs that found the object archived already, by object kind. */
  duplicates: Counter<'object'>
  /** Those whose offered body differed from the stored one (the stored one is kept). */
  conflicts: Counter<'object'>
  /** What the upstream clients report to. */
  observer: (upstream: Upstream) => UpstreamObserver
  /** The archive's completeness: webhooks in, enrichment owed, backfill, what is still missing. */
  completeness: CompletenessMetrics
}

export interface CompletenessMetrics {
  /** Alerts received by webhook (each alert of a body, before anything is stored). */
  received: Counter
  /** Alerts whose webhook record is stored and whose full alert is not (yet). */
  pending: Gauge
  /** Alerts archived by the backfill from Threat Stack's list. */
  backfilled: Counter
  /** Alerts Threat Stack lists that the archive lacks, as of the last ledgers written. */
  missing: Gauge
  /** Duration of one sweep. */
  sweepDuration: Histogram
  /** Days the sweeper wrote into the table tier. */
  daysCompacted: Counter
}

declare module 'fastify' {
  interface FastifyInstance { metrics: Metrics }
}

const PREFIX = 'threatstack_to_s3_'

export function createMetrics (): Metrics {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry, prefix: PREFIX })
  const archived = new Counter({ name: `${PREFIX}alerts_archived_total`, help: 'Alerts whose webhook record and full alert are both stored', registers: [registry] })
  const shed = new Counter({ name: `${PREFIX}requests_shed_total`, help: 'Requests answered 503 to shed load', registers: [registry] })
  const duplicates = new Counter({ name: `${PREFIX}duplicates_total`, help: 'Objects offered again once archived (a re-delivery, a retry, a backfill); nothing is overwritten', labelNames: ['object'] as const, registers: [registry] })
  const conflicts = new Counter({ name: `${PREFIX}conflicts_total`, help: 'Duplicates whose body differed from the archived one; the archived one is kept', labelNames: ['object'] as const, registers: [registry] })
  const upstreamRequests = new Counter({
    name: `${PREFIX}upstream_requests_total`,
    help: 'Calls to S3 and Threat Stack, by outcome',
    labelNames: ['upstream', 'outcome'] as const,
    registers: [registry]
  })
  const upstreamRetries = new Counter({ name: `${PREFIX}upstream_retries_total`, help: 'Retries of upstream calls', labelNames: ['upstream'] as const, registers: [registry] })
  const upstreamDuration = new Histogram({
    name: `${PREFIX}upstream_request_duration_seconds`,
    help: 'Duration of upstream calls',
    labelNames: ['upstream', 'outcome'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry]
  })
  const completeness: CompletenessMetrics = {
    received: new Counter({ name: `${PREFIX}alerts_received_total`, help: 'Alerts received by webhook', registers: [registry] }),
    pending: new Gauge({ name: `${PREFIX}alerts_pending`, help: 'Alerts whose webhook record is stored and whose full alert is not yet', registers: [registry] }),
    backfilled: new Counter({ name: `${PREFIX}alerts_backfilled_total`, help: 'Alerts archived by the backfill from the Threat Stack list API', registers: [registry] }),
    missing: new Gauge({ name: `${PREFIX}alerts_missing`, help: 'Alerts Threat Stack lists that the archive lacks, per the last ledgers written', registers: [registry] }),
    sweepDuration: new Histogram({
      name: `${PREFIX}sweep_duration_seconds`,
      help: 'Duration of one sweep (enrichment, backfill, ledgers)',
      buckets: [0.1, 0.5, 1, 5, 10, 30, 60, 300, 900],
      registers: [registry]
    }),
    daysCompacted: new Counter({ name: `${PREFIX}table_days_compacted_total`, help: 'UTC days the sweeper wrote into the table tier (Parquet), first builds and rebuilds', registers: [registry] })
  }
  return {
    registry,
    archived,
    shed,
    completeness,
    duplicates,
    conflicts,
    observer: (upstream) => ({
      request (outcome, seconds) {
        upstreamRequests.inc({ upstream, outcome })
        upstreamDuration.observe({ upstream, outcome }, seconds)
      },
      retry () { upstreamRetries.inc({ upstream }) }
    })
  }
}

export default fp(async function metricsPlugin (app) {
  const metrics = createMetrics()
  app.decorate('metrics', metrics)
  const duration = new Histogram({
    name: `${PREFIX}http_request_duration_seconds`,
    help: 'Duration of HTTP requests, by route and status',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [metrics.registry]
  })
  app.addHook('onResponse', async (request, reply) => {
    // The route pattern, never the raw URL: ids and unknown paths would explode the label set.
    const route = request.routeOptions.url ?? 'unmatched'
    duration.observe({ method: request.method, route, status_code: String(reply.statusCode) }, reply.elapsedTime / 1000)
  })
}, { name: 'metrics', fastify: '5.x' })
