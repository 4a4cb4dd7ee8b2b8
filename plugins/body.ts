// Request bodies: JSON as application/json or text/plain (AWS SNS posts JSON as text/plain);
// every other content type is refused with 415. A body must be UTF-8, and is refused before
// parsing when nested deeper than MAX_JSON_DEPTH. Its text is kept on the request, so that
// alerts can be archived exactly as they were sent.
import fp from 'fastify-plugin'
import type { FastifyRequest } from 'fastify'
import { WebhookDataError } from '../errors/index.js'
import { exceedsJsonDepth } from '../schemas/json.js'
import { nestedTooDeeply } from '../services/webhook.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** The JSON text the body was parsed from (for an SNS Notification, its Message); undefined without a body. */
    bodyText: string | undefined
  }
}

// Fatal: a byte that is not UTF-8 would be replaced by U+FFFD, and the record would differ from what was sent.
const utf8 = new TextDecoder('utf-8', { fatal: true })

export default fp(async function bodyPlugin (app) {
  // Fastify's own JSON parser: it refuses __proto__ and constructor.prototype keys, and empty bodies.
  const parseJson = app.getDefaultJsonParser('error', 'error')
  const parser = (request: FastifyRequest, body: string | Buffer, done: (err: Error | null, body?: unknown) => void): void => {
    let text: string
    try {
      text = typeof body === 'string' ? body : utf8.decode(body)
    } catch (err) {
      done(new WebhookDataError('Webhook body is not valid UTF-8', { cause: err }))
      return
    }
    if (exceedsJsonDepth(text)) {
      done(nestedTooDeeply())
      return
    }
    request.bodyText = text
    parseJson(request, text, done)
  }
  app.decorateRequest('bodyText', undefined)
  app.removeContentTypeParser(['application/json', 'text/plain'])
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, parser)
  app.addContentTypeParser('text/plain', { parseAs: 'buffer' }, parser)
}, { name: 'body', fastify: '5.x' })
