// Load shedding. Under event-loop or memory pressure (@fastify/under-pressure), and when more
// webhooks are in flight than the process takes on, requests get a 503 ServiceUnavailableError
// with Retry-After at once, so the balancer retries elsewhere instead of this process queueing
// without limit. /health is never shed: the process is alive, only busy.
import fp from 'fastify-plugin'
import underPressure from '@fastify/under-pressure'
import type { FastifyRequest } from 'fastify'
import { ServiceUnavailableError } from '../errors/index.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Counted against LOAD_MAX_IN_FLIGHT_WEBHOOKS (routes that do upstream work). */
    inFlightLimited?: boolean
    /** Never shed (liveness). */
    neverShed?: boolean
  }
}

export default fp(async function loadPlugin (app) {
  const { maxEventLoopDelayMs, maxEventLoopUtilization, maxHeapUsedBytes, maxRssBytes, maxInFlightWebhooks, retryAfterSeconds } = app.config.load
  const shed = (why: string): ServiceUnavailableError => {
    app.metrics.shed.inc()
    return new ServiceUnavailableError('The service is overloaded; retry later', { retryAfterSeconds, cause: new Error(why) })
  }

  await app.register(underPressure, {
    maxEventLoopDelay: maxEventLoopDelayMs,
    maxEventLoopUtilization,
    maxHeapUsedBytes,
    maxRssBytes,
    retryAfter: retryAfterSeconds,
    pressureHandler: async (request: FastifyRequest, _reply, type, value) => {
      if (request.routeOptions.config.neverShed === true) return
      throw shed(`under pressure: ${type} = ${String(value)}`)
    }
  })

  let inFlight = 0
  const counted = new WeakSet<FastifyRequest>()
  const release = async (request: FastifyRequest): Promise<void> => {
    if (counted.delete(request)) inFlight--
  }
  app.addHook('onRequest', async (request) => {
    if (request.routeOptions.config.inFlightLimited !== true) return
    if (inFlight >= maxInFlightWebhooks) throw shed(`${inFlight} webhooks in flight`)
    inFlight++
    counted.add(request)
  })
  // Released as the reply is sent (the work is done): a client that sends its next request as
  // soon as it has the answer must find the slot free. onResponse and abort cover what skips onSend.
  app.addHook('onSend', async (request) => { await release(request) })
  app.addHook('onResponse', release)
  app.addHook('onRequestAbort', release)
}, { name: 'load', decorators: { fastify: ['config', 'metrics'] }, fastify: '5.x' })
