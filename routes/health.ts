// GET /health: liveness for the load balancer; touches no upstream.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { HealthReplySchema, errorResponses } from '../schemas/envelope.js'

const healthRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/health', {
    config: { neverShed: true },
    schema: {
      summary: 'Liveness: the process serves',
      description: 'For the load balancer: touches no upstream, and is never shed under load.',
      operationId: 'getHealth',
      response: { 200: HealthReplySchema, ...errorResponses() }
    }
  }, async () => ({ status: 'ok' as const }))
}

export default healthRoutes
