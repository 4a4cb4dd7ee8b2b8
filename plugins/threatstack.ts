// Decorates app.threatstack: the Threat Stack API client and its connection pool, closed on close.
import fp from 'fastify-plugin'
import { closeThreatStackClient, createThreatStackClient, type ThreatStackClient } from '../services/threatstack.js'

declare module 'fastify' {
  interface FastifyInstance { threatstack: ThreatStackClient }
}

export default fp(async function threatstackPlugin (app) {
  const client = createThreatStackClient(app.config.threatstack, app.metrics.observer('threatstack'))
  app.decorate('threatstack', client)
  app.addHook('onClose', async () => closeThreatStackClient(client))
}, { name: 'threatstack', decorators: { fastify: ['config', 'metrics'] }, fastify: '5.x' })
