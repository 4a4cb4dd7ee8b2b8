// Load shedding. Under event-loop or memory pressure (@fastify/under-pressure), requests get a
// 503 ServiceUnavailableError with Retry-After at once, so the balancer retries elsewhere
// instead of this process queueing without limit. A webhook is not shed (its sender drops a
// batch after three failures): it is taken with its enrichment deferred, answered once its
// records are stored; so is one beyond LOAD_MAX_IN_FLIGHT_WEBHOOKS, up to four times that many.
// /health is never shed: the process is alive, only busy. Slow senders hold
// no webhook slot while their body arrives, and a body has BODY_TIMEOUT_MS to arrive (408).
import fp from 'fastify-plugin'
import underPressure from '@fastify/under-pressure'
import { PassThrough, type Readable } from 'node:stream'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { Counter } from 'prom-client'
import { RequestTimeoutError, ServiceUnavailableError } from '../errors/index.js'

/** How many times LOAD_MAX_IN_FLIGHT_WEBHOOKS are taken, with their enrichment deferred, before one is shed. */
const HARD_LIMIT_FACTOR = 4

declare module 'fastify' {
  interface FastifyRequest {
    /** Under pressure: the webhook's records are stored and its full alerts owed, without waiting for them. */
    enrichmentDeferred: boolean
  }
  interface FastifyContextConfig {
    /** Counted against LOAD_MAX_IN_FLIGHT_WEBHOOKS (routes that do upstream work). */
    inFlightLimited?: boolean
    /** Never shed (liveness). */
    neverShed?: boolean
  }
}

export default fp(async function loadPlugin (app) {
  const { maxEventLoopDelayMs, maxEventLoopUtilization, maxHeapUsedBytes, maxRssBytes, maxInFlightWebhooks, retryAfterSeconds } = app.config.load
  const { bodyTimeoutMs } = app.config.server
  const shed = (why: string): ServiceUnavailableError => {
    app.metrics.shed.inc()
    return new ServiceUnavailableError(undefined, { retryAfterSeconds, cause: new Error(why) })
  }

  await app.register(underPressure, {
    maxEventLoopDelay: maxEventLoopDelayMs,
    maxEventLoopUtilization,
    maxHeapUsedBytes,
    maxRssBytes,
    retryAfter: retryAfterSeconds,
    pressureHandler: async (request: FastifyRequest, _reply, type, value) => {
      if (request.routeOptions.config.neverShed === true) return
      // A 503 to a webhook whose record can still be stored is an alert the sender may drop:
      // it is taken, and only its enrichment waits.
      if (request.routeOptions.config.inFlightLimited === true) {
        deferEnrichment(request, `under pressure: ${type} = ${String(value)}`)
        return
      }
      throw shed(`under pressure: ${type} = ${String(value)}`)
    }
  })
  app.decorateRequest('enrichmentDeferred', false)
  const deferEnrichment = (request: FastifyRequest, why: string): void => {
    if (!request.enrichmentDeferred) {
      deferred.inc()
      request.log.warn({ why }, 'webhook taken with its enrichment deferred')
    }
    request.enrichmentDeferred = true
  }
  const deferred = new Counter({
    name: 'threatstack_to_s3_webhooks_deferred_total',
    help: 'Webhooks taken under pressure with their enrichment deferred instead of being shed',
    registers: [app.metrics.registry]
  })

  let inFlight = 0
  const counted = new WeakSet<FastifyRequest>()
  const release = async (request: FastifyRequest): Promise<void> => {
    if (counted.delete(request)) inFlight--
  }
  /**
   * The body as the parser reads it, cut off with a RequestTimeoutError if it has not all come
   * within BODY_TIMEOUT_MS. The socket itself is left alone so that the 408 can be sent; what
   * the sender still trickles in is read and dropped, and the connection closes after the answer.
   */
  function bodyWithDeadline (reply: FastifyReply, payload: Readable): Readable {
    const guarded = new PassThrough()
    const timer = setTimeout(() => {
      payload.unpipe(guarded)
      payload.resume()
      reply.header('connection', 'close')
      guarded.destroy(new RequestTimeoutError({ cause: new Error(`request body not received within ${bodyTimeoutMs} ms`) }))
    }, bodyTimeoutMs)
    const settled = (): void => { clearTimeout(timer) }
    payload.once('end', settled)
    payload.once('error', (err) => {
      settled()
      guarded.destroy(err)
    })
    // An answer sent without reading the body (a refused token) ends the watch too.
    reply.raw.once('close', settled)
    // Only the body parser listens for errors, and only once it reads: none may go unhandled.
    guarded.on('error', () => {})
    payload.pipe(guarded)
    return guarded
  }

  app.addHook('preParsing', async (request, reply, payload) => {
    const { 'content-length': length, 'transfer-encoding': encoding } = request.headers
    const hasBody = encoding !== undefined || (length !== undefined && length !== '0')
    return hasBody ? bodyWithDeadline(reply, payload) : payload
  })

  // Counted once the body is in: a sender trickling its body holds a socket, not a webhook slot.
  app.addHook('preValidation', async (request) => {
    if (request.routeOptions.config.inFlightLimited !== true) return
    // Beyond the limit the records alone are stored (their PUTs are bounded by S3_BUDGET_MS);
    // only far beyond it, where holding more bodies would cost the process itself, is one shed.
    if (inFlight >= maxInFlightWebhooks * HARD_LIMIT_FACTOR) throw shed(`${inFlight} webhooks in flight`)
    if (inFlight >= maxInFlightWebhooks) deferEnrichment(request, `${inFlight} webhooks in flight`)
    inFlight++
    counted.add(request)
  })
  // Released as the reply is sent (the work is done): a client that sends its next request as
  // soon as it has the answer must find the slot free. onResponse and abort cover what skips onSend.
  app.addHook('onSend', async (request) => { await release(request) })
  app.addHook('onResponse', release)
  app.addHook('onRequestAbort', release)
}, { name: 'load', decorators: { fastify: ['config', 'metrics'] }, fastify: '5.x' })
