// GET /metrics: Prometheus text (read token).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { errorResponses } from '../schemas/envelope.js'

// prom-client's text exposition format (its registry.contentType, less the charset).
const PROMETHEUS_TEXT = 'text/plain; version=0.0.4'

const metricsRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/metrics', {
    onRequest: app.requireToken('read'),
    schema: {
      summary: 'Prometheus metrics',
      description: 'Alerts archived, upstream calls by outcome, retries, requests shed, and request durations by route and status.',
      operationId: 'getMetrics',
      produces: [PROMETHEUS_TEXT],
      response: {
        200: {
          description: 'Prometheus text exposition format',
          content: {
            [PROMETHEUS_TEXT]: {
              schema: Type.String(),
              example: '# HELP threatstack_to_s3_alerts_archived_total Alerts whose webhook record and full alert are both stored\n' +
                '# TYPE threatstack_to_s3_alerts_archived_total counter\nthreatstack_to_s3_alerts_archived_total 42\n'
            }
          }
        },
        ...errorResponses('AuthenticationError', 'AuthorizationError')
      }
    }
  }, async (_request, reply) => {
    reply.type(app.metrics.registry.contentType)
    return await app.metrics.registry.metrics()
  })
}

export default metricsRoutes
