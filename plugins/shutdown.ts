// Graceful close. Once closing starts, every response carries `Connection: close`, so keep-alive
// sockets end with the requests in flight and the server can finish; a request that still
// arrives on an open socket gets a 503 envelope with Retry-After, for the balancer to retry
// elsewhere.
import fp from 'fastify-plugin'
import { ServiceUnavailableError } from '../errors/index.js'

export default fp(async function shutdownPlugin (app) {
  let closing = false
  app.addHook('preClose', async () => { closing = true })
  app.addHook('onRequest', async () => {
    if (closing) throw new ServiceUnavailableError('The service is shutting down')
  })
  app.addHook('onSend', async (_request, reply) => {
    if (closing) reply.header('connection', 'close')
  })
}, { name: 'shutdown', fastify: '5.x' })
