// GET /metrics: Prometheus text (read token).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { errorResponses } from '../schemas/envelope.js'

const metricsRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/metrics', {
    onRequest: app.requireToken('read'),
    schema: {
      summary: 'Prometheus metrics',
      operationId: 'getMetrics',
      response: { 200: Type.String({ description: 'Prometheus text exposition format' }), ...errorResponses }
    }
  }, async (_request, reply) => {
    reply.type(app.metrics.registry.contentType)
    return await app.metrics.registry.metrics()
  })
}

export default metricsRoutes
