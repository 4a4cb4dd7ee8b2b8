// Request bodies: JSON as application/json or text/plain (AWS SNS posts JSON as text/plain);
// every other content type is refused with 415. Bodies nested deeper than MAX_JSON_DEPTH are
// refused before parsing.
import fp from 'fastify-plugin'
import type { FastifyRequest } from 'fastify'
import { WebhookDataError } from '../errors/index.js'
import { exceedsJsonDepth, MAX_JSON_DEPTH } from '../schemas/json.js'

export default fp(async function bodyPlugin (app) {
  // Fastify's own JSON parser: it refuses __proto__ and constructor.prototype keys, and empty bodies.
  const parseJson = app.getDefaultJsonParser('error', 'error')
  const parser = (request: FastifyRequest, body: string | Buffer, done: (err: Error | null, body?: unknown) => void): void => {
    if (exceedsJsonDepth(String(body))) {
      done(new WebhookDataError('Webhook body is nested too deeply', { details: [`at most ${MAX_JSON_DEPTH} levels of objects and arrays`] }))
      return
    }
    parseJson(request, body as string, done)
  }
  app.removeContentTypeParser(['application/json', 'text/plain'])
  app.addContentTypeParser('application/json', { parseAs: 'string' }, parser)
  app.addContentTypeParser('text/plain', { parseAs: 'string' }, parser)
}, { name: 'body', fastify: '5.x' })
