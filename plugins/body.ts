// Request bodies: JSON as application/json or text/plain (AWS SNS posts JSON as text/plain);
// every other content type is refused with 415.
import fp from 'fastify-plugin'

export default fp(async function bodyPlugin (app) {
  app.removeContentTypeParser('text/plain')
  // The same parser as application/json, which refuses __proto__ and constructor.prototype keys.
  app.addContentTypeParser('text/plain', { parseAs: 'string' }, app.getDefaultJsonParser('error', 'error'))
}, { name: 'body', fastify: '5.x' })
