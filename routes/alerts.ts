// POST /alert (ingest), GET /alert/:alert_id, GET /alert/:alert_id/evidence and GET /alert?start&end (read).
// Registered under every archive prefix.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { createHash } from 'node:crypto'
import { alertsOf, WebhookBodySchema } from '../schemas/alert.js'
import { AlertIdParamsSchema, IngestQuerySchema, SEARCH_DEFAULT_LIMIT, SearchQuerySchema } from '../schemas/query.js'
import { AlertReplySchema, ArchiveReplySchema, EvidenceReplySchema, SearchReplySchema, errorResponses } from '../schemas/envelope.js'
import { getEvidence, RECORD_SEARCH_MINUTES } from '../services/evidence.js'
import { receiveAlerts, type ReceiveDeps } from '../services/archive.js'
import { webhookRecords } from '../services/webhook.js'
import { decodeCursor, getAlert, normalizeFilters, parseRange, searchAlerts, type SearchDeps } from '../services/search.js'

/** An archived alert never changes: a year, in the caller's own cache only (it takes a read token). */
const ARCHIVED_ALERT_MAX_AGE_S = 365 * 24 * 60 * 60

/** A strong validator: the same archived alert is always the same reply, byte for byte. */
function alertEtag (alert: Record<string, unknown>): string {
  return `"${createHash('sha256').update(JSON.stringify(alert)).digest('base64url')}"`
}

/** If-None-Match (RFC 9110 13.1.2): `*`, or a list of tags, compared weakly. */
function noneMatch (header: string | undefined, etag: string): boolean {
  return header !== undefined && header.split(',').some((tag) => {
    const trimmed = tag.trim()
    return trimmed === '*' || trimmed.replace(/^W\//, '') === etag
  })
}

const CACHE_HEADERS = {
  ETag: { type: 'string', description: 'sha256 of the archived alert (strong)' },
  'Cache-Control': { type: 'string', description: `private, max-age=${ARCHIVED_ALERT_MAX_AGE_S}, immutable` },
  Vary: { type: 'string', description: 'Authorization' }
}

/** Why a search stopped when its client hung up: a client-side (4xx) end, logged at info. */
function clientClosed (): Error {
  return Object.assign(new Error('The client closed the connection before its search ended'), { code: 'CLIENT_CLOSED_REQUEST', statusCode: 499 })
}

const alertRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { store } = app
  const archiveDeps: ReceiveDeps = {
    store,
    threatstack: app.threatstack,
    concurrency: app.config.archive.concurrency,
    queue: app.enrichment
  }
  const { waitMs } = app.config.archive.enrich
  // Reads have S3 slots of their own: a burst of searches never delays a webhook's writes.
  const { readStore } = app
  const searchDeps: SearchDeps = { store: readStore, concurrency: app.config.search.concurrency }

  app.post('/alert', {
    config: { inFlightLimited: true },
    onRequest: app.requireToken('ingest'),
    // An AWS SNS message (header x-amz-sns-message-type) is verified, then unwrapped or answered.
    preValidation: app.sns.unwrap,
    errorHandler: app.sns.errorHandler,
    schema: {
      summary: 'Archive alerts posted by a Threat Stack webhook',
      description: 'Stores each alert as received and its full version fetched from Threat Stack. ' +
        'Answers 200 as soon as every alert\'s webhook record is stored: `archived` lists the alerts whose full alert is ' +
        'stored too, `pending` those whose full alert was not stored within `ENRICH_WAIT_MS` (with the fetch\'s error ' +
        'type and fixed message when it has failed so far); the service completes them in the background, then by its ' +
        'sweeper. Only when a webhook record cannot be stored is the answer an error, so that the sender resends. ' +
        'Also accepts AWS SNS deliveries (header `x-amz-sns-message-type`, body sent as text/plain): every message\'s ' +
        'signature is verified; a Notification\'s `Message` is this body as a JSON string; a SubscriptionConfirmation ' +
        'is confirmed and an UnsubscribeConfirmation acknowledged, both with `archived: []` and `pending: []`.',
      operationId: 'archiveAlerts',
      consumes: ['application/json', 'text/plain'],
      querystring: IngestQuerySchema,
      body: WebhookBodySchema,
      response: {
        200: ArchiveReplySchema,
        ...errorResponses('WebhookDataError', 'SNSMessageInvalidError', 'RequestValidationError', 'AuthenticationError',
          'AuthorizationError', 'SNSSignatureError', 'RequestTimeoutError', 'PayloadTooLargeError', 'UnsupportedMediaTypeError',
          'S3ClientError')
      }
    }
  }, async (request) => {
    const alerts = alertsOf(request.body)
    app.metrics.completeness.received.inc(alerts.length)
    const received = await receiveAlerts(archiveDeps, alerts, webhookRecords(alerts, request.bodyText), {
      waitMs,
      deferred: request.enrichmentDeferred,
      // Not an error of this request (it succeeds), but the cause chain belongs in the log.
      onFetchFailed: (alertId, err) => { request.log.warn({ alertId, err }, 'full alert pending: its fetch failed, retried in the background') }
    })
    return { success: true as const, ...received }
  })

  app.get('/alert/:alert_id', {
    onRequest: app.requireToken('read'),
    schema: {
      summary: 'One archived alert',
      description: 'The full alert as Threat Stack returned it when the webhook was archived.',
      operationId: 'getAlert',
      params: AlertIdParamsSchema,
      response: {
        200: { ...AlertReplySchema, headers: CACHE_HEADERS },
        304: Type.Null({
          description: 'Not modified: If-None-Match holds this alert\'s ETag (an archived alert never changes).',
          headers: CACHE_HEADERS
        }),
        ...errorResponses('RequestValidationError', 'AuthenticationError', 'AuthorizationError', 'AlertNotFoundError', 'S3ClientError', 'ArchiveIntegrityError')
      }
    }
  }, async (request, reply) => {
    const alert = await getAlert({ store: readStore }, request.params.alert_id)
    const etag = alertEtag(alert)
    reply.header('etag', etag).cacheControl('private').cacheControl('max-age', ARCHIVED_ALERT_MAX_AGE_S).cacheControl('immutable').vary('Authorization')
    if (noneMatch(request.headers['if-none-match'], etag)) return reply.code(304).send(null)
    return { success: true as const, alert }
  })

  app.get('/alert/:alert_id/evidence', {
    onRequest: app.requireToken('read'),
    schema: {
      summary: 'One alert\'s webhook record and digest status',
      description: 'The webhook record exactly as stored (key, SHA-256, size, its text and its JSON), the full alert\'s key, ' +
        'SHA-256 and size (or `stored: false` while it is pending), and for each of the two what the digests of the record\'s hour ' +
        'say: `covered`, `not-yet` or `mismatch`. A mismatch (a digest lists the key with another SHA-256 or size, or lists an ' +
        'object no longer stored) is answered 200 with that status and what the digest lists: it is the finding this route is ' +
        'for, and both sides are shown. An object or a digest whose bytes fail their own stored checksum, or a digest that is ' +
        'not a digest document, is 502 `ArchiveIntegrityError`, as on every read. The record is found at the minute of the full ' +
        'alert\'s `created_at`; without a full alert, at the time an ObjectId id names, ' +
        `up to ${RECORD_SEARCH_MINUTES} minutes either side (an id that is not an ObjectId is then not found). ` +
        'Digest signatures and the chain are not checked here: `npm run verify` does, with the public key. Not cached: the ' +
        'status changes as the hour is digested and the full alert stored.',
      operationId: 'getAlertEvidence',
      params: AlertIdParamsSchema,
      response: {
        200: EvidenceReplySchema,
        ...errorResponses('RequestValidationError', 'AuthenticationError', 'AuthorizationError', 'AlertNotFoundError', 'S3ClientError', 'ArchiveIntegrityError')
      }
    }
  }, async (request, reply) => {
    const evidence = await getEvidence({ store: readStore }, request.params.alert_id)
    reply.header('cache-control', 'no-store')
    return { success: true as const, ...evidence }
  })

  app.get('/alert', {
    // The Python service read start and end from a form body.
    config: { formQuery: ['start', 'end'] },
    onRequest: app.requireToken('read'),
    schema: {
      summary: 'Archived alerts created in a time range',
      description: 'Alerts with start ≤ created_at < end, exact to the millisecond, in ascending created_at order, ' +
        'a page at a time. An alert whose webhook record is archived but whose full alert is not is listed in `missing`. ' +
        'Filters (`severity`, repeatable; `source`; `server`; `rule`; `q`) all apply at once, on the full alert, or on the webhook ' +
        'record of an alert listed in `missing`. A filtered page reads at most 2 × `limit` objects: when that budget is spent first, ' +
        'it answers what matched so far with `partial: true`, `scannedUntil` (how far it got) and a `nextCursor` that continues the scan. ' +
        'A cursor is valid only with the start, end and filters it came from.',
      operationId: 'searchAlerts',
      querystring: SearchQuerySchema,
      response: {
        200: SearchReplySchema,
        ...errorResponses('DateParseError', 'RequestValidationError', 'AuthenticationError', 'AuthorizationError',
          'RequestTimeoutError', 'PayloadTooLargeError', 'S3ClientError', 'ArchiveIntegrityError')
      }
    }
  }, async (request, reply) => {
    const { start, end, limit = SEARCH_DEFAULT_LIMIT, cursor, severity, source, server, rule, q } = request.query
    const range = parseRange(start, end)
    const filters = normalizeFilters({
      ...(severity !== undefined && { severity }),
      ...(source !== undefined && { source }),
      ...(server !== undefined && { server }),
      ...(rule !== undefined && { rule }),
      ...(q !== undefined && { q })
    })
    // A client that hangs up stops its search: the response closing unfinished means nobody
    // will read the page (the request's own close also fires once a form body is read).
    // It ends as a 4xx for the log (at info): there is nobody left to answer.
    const gone = new AbortController()
    reply.raw.once('close', () => {
      if (!reply.raw.writableFinished) gone.abort(clientClosed())
    })
    const page = await searchAlerts(searchDeps, range, {
      limit,
      signal: gone.signal,
      ...(filters !== undefined && { filters }),
      ...(cursor !== undefined && { after: decodeCursor(range, cursor, filters) })
    })
    return { success: true as const, ...page }
  })
}

export default alertRoutes
