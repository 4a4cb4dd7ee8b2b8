// GET <prefix>/status: are S3 and Threat Stack reachable? Booleans only, never why.
// One checker (and one cache) serves every prefix.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { StatusReplySchema, errorResponses } from '../schemas/envelope.js'
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
        operationId: 'getStatus',
        response: { 200: StatusReplySchema, 503: StatusReplySchema, ...errorResponses }
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
