// POST /alert (ingest), GET /alert/:alert_id and GET /alert?start&end (read).
// Registered under every archive prefix.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { alertsOf, WebhookBodySchema } from '../schemas/alert.js'
import { AlertIdParamsSchema, IngestQuerySchema, SEARCH_DEFAULT_LIMIT, SearchQuerySchema } from '../schemas/query.js'
import { AlertReplySchema, ArchiveReplySchema, SearchReplySchema, errorResponses } from '../schemas/envelope.js'
import { archiveAlerts, type ArchiveDeps } from '../services/archive.js'
import { decodeCursor, getAlert, parseRange, searchAlerts, type SearchDeps } from '../services/search.js'

const alertRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { store } = app
  const archiveDeps: ArchiveDeps = {
    store,
    threatstack: app.threatstack,
    concurrency: app.config.archive.concurrency,
    onArchived: () => { app.metrics.archived.inc() }
  }
  const searchDeps: SearchDeps = { store, concurrency: app.config.search.concurrency }

  app.post('/alert', {
    config: { inFlightLimited: true },
    onRequest: app.requireToken('ingest'),
    // An AWS SNS message (header x-amz-sns-message-type) is verified, then unwrapped or answered.
    preValidation: app.sns.unwrap,
    errorHandler: app.sns.errorHandler,
    schema: {
      summary: 'Archive alerts posted by a Threat Stack webhook',
      description: 'Stores each alert as received and its full version fetched from Threat Stack. ' +
        'Answers 200 only when every alert is stored; otherwise an error, so that the sender retries. ' +
        'Also accepts AWS SNS deliveries (header `x-amz-sns-message-type`, body sent as text/plain): every message\'s ' +
        'signature is verified; a Notification\'s `Message` is this body as a JSON string; a SubscriptionConfirmation ' +
        'is confirmed and an UnsubscribeConfirmation acknowledged, both with `archived: []`.',
      operationId: 'archiveAlerts',
      consumes: ['application/json', 'text/plain'],
      querystring: IngestQuerySchema,
      body: WebhookBodySchema,
      response: {
        200: ArchiveReplySchema,
        ...errorResponses('WebhookDataError', 'SNSMessageInvalidError', 'RequestValidationError', 'AuthenticationError',
          'AuthorizationError', 'SNSSignatureError', 'PayloadTooLargeError', 'UnsupportedMediaTypeError',
          'ThreatStackRequestError', 'ThreatStackAPIError', 'S3ClientError')
      }
    }
  }, async (request) => ({
    success: true as const,
    archived: await archiveAlerts(archiveDeps, alertsOf(request.body))
  }))

  app.get('/alert/:alert_id', {
    onRequest: app.requireToken('read'),
    schema: {
      summary: 'One archived alert',
      description: 'The full alert as Threat Stack returned it when the webhook was archived.',
      operationId: 'getAlert',
      params: AlertIdParamsSchema,
      response: {
        200: AlertReplySchema,
        ...errorResponses('RequestValidationError', 'AuthenticationError', 'AuthorizationError', 'AlertNotFoundError', 'S3ClientError', 'ArchiveIntegrityError')
      }
    }
  }, async (request) => ({
    success: true as const,
    alert: await getAlert({ store }, request.params.alert_id)
  }))

  app.get('/alert', {
    // The Python service read start and end from a form body.
    config: { formQuery: ['start', 'end'] },
    onRequest: app.requireToken('read'),
    schema: {
      summary: 'Archived alerts created in a time range',
      description: 'Alerts with start ≤ created_at < end, exact to the millisecond, in ascending created_at order, ' +
        'a page at a time. An alert whose webhook record is archived but whose full alert is not is listed in `missing`.',
      operationId: 'searchAlerts',
      querystring: SearchQuerySchema,
      response: {
        200: SearchReplySchema,
        ...errorResponses('DateParseError', 'RequestValidationError', 'AuthenticationError', 'AuthorizationError',
          'PayloadTooLargeError', 'S3ClientError', 'ArchiveIntegrityError')
      }
    }
  }, async (request) => {
    const { start, end, limit = SEARCH_DEFAULT_LIMIT, cursor } = request.query
    const range = parseRange(start, end)
    const page = await searchAlerts(searchDeps, range, {
      limit,
      ...(cursor !== undefined && { after: decodeCursor(range, cursor) })
    })
    return { success: true as const, ...page }
  })
}

export default alertRoutes
