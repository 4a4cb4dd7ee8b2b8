// Headers on every reply: the request id (so a caller can quote it) and nosniff.
import fp from 'fastify-plugin'

export default fp(async function headersPlugin (app) {
  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id)
    reply.header('x-content-type-options', 'nosniff')
  })
}, { name: 'headers', fastify: '5.x' })
