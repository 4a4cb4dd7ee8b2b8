// GET <prefix>/coverage?start&end (read): per hour, what Threat Stack has and what the archive
// holds, from the hourly ledgers. Registered under every archive prefix.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { COVERAGE_DEFAULT_LIMIT, CoverageQuerySchema, CoverageReplySchema } from '../schemas/coverage.js'
import { errorResponses } from '../schemas/envelope.js'
import { decodeCoverageCursor, readCoverage } from '../services/coverage.js'
import { parseRange } from '../services/search.js'
import { ARCHIVE_PREFIXES } from './prefixes.js'

const coverageRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const deps = { store: app.store, concurrency: app.config.search.concurrency }
  for (const prefix of ARCHIVE_PREFIXES) {
    app.get(`${prefix}/coverage`, {
      onRequest: app.requireToken('read'),
      schema: {
        summary: 'Completeness of the archive, hour by hour',
        description: 'For each hour that overlaps [start, end): the alerts Threat Stack lists, those archived (by webhook, ' +
          'by backfill), the ids still missing or pending enrichment, and when the hour was last compared. ' +
          'An hour not compared yet has `checked: false`.',
        operationId: 'getCoverage',
        querystring: CoverageQuerySchema,
        response: {
          200: CoverageReplySchema,
          ...errorResponses('DateParseError', 'RequestValidationError', 'AuthenticationError', 'AuthorizationError', 'S3ClientError')
        }
      }
    }, async (request) => {
      const { start, end, limit = COVERAGE_DEFAULT_LIMIT, cursor } = request.query
      const range = parseRange(start, end)
      const page = await readCoverage(deps, range, {
        limit,
        ...(cursor !== undefined && { fromHourMs: decodeCoverageCursor(range, cursor) })
      })
      return { success: true as const, ...page }
    })
  }
}

export default coverageRoutes
