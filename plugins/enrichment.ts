// Decorates app.enrichment: the queue of full alerts owed after a webhook's answer. On close it
// takes nothing more and gives the fetches under way ENRICH_DRAIN_MS before aborting them; the
// records of what is left are stored, and the sweeper completes them.
import fp from 'fastify-plugin'
import { Counter } from 'prom-client'
import { EnrichmentQueue } from '../services/enrichment.js'

declare module 'fastify' {
  interface FastifyInstance { enrichment: EnrichmentQueue }
}

export default fp(async function enrichmentPlugin (app) {
  const { enrich } = app.config.archive
  const deferred = new Counter({
    name: 'threatstack_to_s3_enrichment_deferred_total',
    help: 'Full alerts left to the sweeper by the background queue (full, out of budget, or stopped)',
    labelNames: ['reason'] as const,
    registers: [app.metrics.registry]
  })
  const queue = new EnrichmentQueue({ store: app.store, threatstack: app.threatstack }, {
    maxSize: enrich.queueMax,
    concurrency: enrich.concurrency,
    budgetMs: enrich.budgetMs,
    baseDelayMs: enrich.baseDelayMs,
    maxDelayMs: enrich.maxDelayMs
  }, {
    archived: () => { app.metrics.archived.inc() },
    size: (size) => { app.metrics.completeness.pending.set(size) },
    deferred: (id, why, err) => {
      deferred.inc({ reason: why })
      app.log.warn({ alertId: id, reason: why, err }, 'full alert left to the sweeper')
    }
  })
  app.decorate('enrichment', queue)
  // Registered after the S3 and Threat Stack plugins, so closed before their clients are.
  app.addHook('onClose', async () => { await queue.close(enrich.drainMs) })
}, { name: 'enrichment', decorators: { fastify: ['config', 'metrics', 'store', 'threatstack'] }, fastify: '5.x' })
