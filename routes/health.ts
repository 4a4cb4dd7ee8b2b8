// GET /health: liveness for the load balancer; touches no upstream. GET /: where the API is
// described, for whoever opens the service's address first.
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { HealthReplySchema, errorResponses } from '../schemas/envelope.js'
import { DOCUMENTATION_PREFIX } from '../plugins/openapi.js'

const IndexReplySchema = Type.Object({
  service: Type.Literal('threatstack-to-s3'),
  documentation: Type.Literal(DOCUMENTATION_PREFIX, { description: 'the API reference (Swagger UI)' }),
  openapi: Type.Literal(`${DOCUMENTATION_PREFIX}/json`, { description: 'the OpenAPI document, JSON' })
}, { additionalProperties: false })

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

  app.get('/', {
    schema: {
      summary: 'Where the API is described',
      description: 'Points to the API reference and the OpenAPI document; needs no token.',
      operationId: 'getIndex',
      response: { 200: IndexReplySchema, ...errorResponses() }
    }
  }, async () => ({ service: 'threatstack-to-s3', documentation: DOCUMENTATION_PREFIX, openapi: `${DOCUMENTATION_PREFIX}/json` } as const))
}

export default healthRoutes
