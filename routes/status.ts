// GET <prefix>/status: are S3 and Threat Stack reachable? Booleans only, never why.
// One checker (and one cache) serves every prefix.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { ErrorEnvelopeRef, StatusReplySchema, errorResponse, errorResponses } from '../schemas/envelope.js'
import { createStatusChecker } from '../services/status.js'
import { ARCHIVE_PREFIXES } from './prefixes.js'

const statusRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { timeoutMs, cacheMs } = app.config.status
  const check = createStatusChecker({
    store: app.store,
    threatstack: app.threatstack,
    timeoutMs,
    cacheMs,
    onFailure: (dependency, err) => app.log.warn({ err, dependency }, `status check of ${dependency} failed`)
  })

  for (const prefix of ARCHIVE_PREFIXES) {
    app.get(`${prefix}/status`, {
      schema: {
        summary: 'Reachability of S3 and Threat Stack (readiness)',
        description: 'Checks both at once with a short timeout; the answer is cached for a few seconds. ' +
          'Booleans only, never why a dependency failed.',
        operationId: 'getStatus',
        response: {
          200: StatusReplySchema,
          ...errorResponses(),
          503: errorResponse(503, ['ServiceUnavailableError'], {
            schema: Type.Union([StatusReplySchema, ErrorEnvelopeRef]),
            description: 'A dependency is unreachable: the status body, with `success: false` on the failing side(s). ' +
              'Or, before any check:',
            example: { success: false, s3: { success: true }, threatstack: { success: false } }
          })
        }
      }
    }, async (_request, reply) => {
      const status = await check()
      const success = status.s3 && status.threatstack
      return reply.code(success ? 200 : 503).send({
        success,
        s3: { success: status.s3 },
        threatstack: { success: status.threatstack }
      })
    })
  }
}

export default statusRoutes
