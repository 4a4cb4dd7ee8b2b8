// The application plugin: decorates the config, then registers plugins and routes in boot order.
// Its options require a Config: server.ts, the dev entry (dev/server.ts), the CLIs' and benches'
// servers and the tests pass one. Only `fastify start app.ts`, which registers a plugin with no
// options at all, comes without: the config is then read from the environment as server.ts does.
import fp from 'fastify-plugin'
import sensible from '@fastify/sensible'
import { randomUUID } from 'node:crypto'
import type { Server } from 'node:http'
import type { FastifyHttpOptions, FastifyInstance, FastifyRequest, FastifyServerOptions } from 'fastify'
import type { Dispatcher } from 'undici'
import { loadConfig, readEnv, type Config } from './config.js'
import errorsPlugin, { clientErrorHandler, frameworkErrors } from './plugins/errors.js'
import shutdownPlugin from './plugins/shutdown.js'
import validationPlugin from './plugins/validation.js'
import bodyPlugin from './plugins/body.js'
import formQueryPlugin from './plugins/form-query.js'
import s3Plugin from './plugins/s3.js'
import integrityPlugin from './plugins/integrity.js'
import sweeperPlugin from './plugins/sweeper.js'
import threatstackPlugin from './plugins/threatstack.js'
import enrichmentPlugin from './plugins/enrichment.js'
import snsPlugin from './plugins/sns.js'
import authPlugin from './plugins/auth.js'
import metricsPlugin from './plugins/metrics.js'
import loadPlugin from './plugins/load.js'
import openapiPlugin from './plugins/openapi.js'
import healthRoutes from './routes/health.js'
import metricsRoutes from './routes/metrics.js'
import alertRoutes from './routes/alerts.js'
import statusRoutes from './routes/status.js'
import coverageRoutes from './routes/coverage.js'
import consoleRoutes from './routes/console.js'
import { ARCHIVE_PREFIXES } from './routes/prefixes.js'

declare module 'fastify' {
  interface FastifyInstance { config: Config }
}

export interface AppOptions {
  config: Config
  /** Where SNS certificate fetches and subscription confirmations go; default: the service's own pool. */
  snsDispatcher?: Dispatcher
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/

/** A query parameter's name as a lenient parser might read it: decoded until stable, lower case, letters and digits only. */
function normalisedName (name: string): string {
  let current = name
  for (let round = 0; round < 5; round++) {
    let decoded: string
    try {
      decoded = decodeURIComponent(current.replace(/\+/g, ' '))
    } catch {
      break
    }
    if (decoded === current) break
    current = decoded
  }
  return current.toLowerCase().replace(/[^a-z0-9]/g, '')
}

// Methods that read: only they are logged with their query. Everything else is (or pretends to
// be) an ingest request, whose query may carry a token under any name or encoding.
const READ_METHODS = new Set(['GET', 'HEAD'])

/**
 * The URL as logged. Of a webhook (any method but GET and HEAD) only the path is kept: its query,
 * and anything after a `;` or `#`, becomes `?[redacted]`. Of a read, every parameter whose
 * name reads as `token` however it is encoded, padded or bracketed (`%2574oken`, `token%00`,
 * `token[]`, `TOKEN`) has its value replaced; `;`, `?` and `#` separate parameters too.
 */
export function redactUrl (url: string, method = 'GET'): string {
  const cut = url.search(/[?;#]/)
  if (cut === -1) return url
  const path = url.slice(0, cut)
  if (!READ_METHODS.has(method.toUpperCase())) return `${path}?[redacted]`
  const parts = url.slice(cut).split(/([?;#&])/)
  return path + parts.map((part, i) => {
    if (i % 2 === 1) return part
    const eq = part.indexOf('=')
    const name = eq === -1 ? part : part.slice(0, eq)
    return normalisedName(name).includes('token') ? `${name}=[redacted]` : part
  }).join('')
}

export type LoggerOptions = Exclude<NonNullable<FastifyServerOptions['logger']>, boolean>

export function loggerOptions (level: string): LoggerOptions {
  return {
    level,
    redact: { paths: ['req.headers.authorization', 'headers.authorization', 'config.threatstack.apiKey'], censor: '[redacted]' },
    serializers: {
      req: (req: FastifyRequest) => ({
        method: req.method,
        url: redactUrl(req.url, req.method),
        remoteAddress: req.ip,
        remotePort: req.socket?.remotePort
      })
    }
  }
}

/** Fastify's options, the same for `npm start`, `npm run dev` and the tests. */
export function serverOptions (config: Config): FastifyHttpOptions<Server> {
  return {
    logger: loggerOptions(config.logLevel),
    // The caller's x-request-id is used when it is a sane token, else one is made.
    requestIdHeader: false,
    genReqId: (req) => {
      const incoming = req.headers['x-request-id']
      return typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID()
    },
    bodyLimit: config.server.bodyLimit,
    http: { maxHeaderSize: config.server.maxHeaderBytes },
    // A hop count is supported at run time though Fastify's types omit it.
    trustProxy: config.server.trustProxy as FastifyServerOptions['trustProxy'],
    keepAliveTimeout: config.server.keepAliveTimeoutMs,
    requestTimeout: config.server.requestTimeoutMs,
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    routerOptions: { maxParamLength: 200 },
    // plugins/shutdown.ts answers while closing, with the envelope.
    return503OnClosing: false,
    frameworkErrors,
    clientErrorHandler
  }
}

async function app (fastify: FastifyInstance, opts: AppOptions): Promise<void> {
  // fastify-cli registers the plugin with no options; a bad environment then throws ConfigError.
  const config = (opts as Partial<AppOptions>).config ?? loadConfig(readEnv())
  fastify.decorate('config', config)
  await fastify.register(sensible)
  await fastify.register(errorsPlugin)
  await fastify.register(shutdownPlugin)
  await fastify.register(metricsPlugin)
  await fastify.register(loadPlugin)
  await fastify.register(validationPlugin)
  await fastify.register(bodyPlugin)
  await fastify.register(formQueryPlugin)
  await fastify.register(s3Plugin)
  await fastify.register(integrityPlugin)
  await fastify.register(threatstackPlugin)
  await fastify.register(enrichmentPlugin)
  await fastify.register(sweeperPlugin)
  await fastify.register(snsPlugin, { ...(opts.snsDispatcher !== undefined && { dispatcher: opts.snsDispatcher }) })
  await fastify.register(authPlugin)
  // Before the routes: it documents each route as it is added.
  await fastify.register(openapiPlugin, { legacyPrefix: ARCHIVE_PREFIXES[1] })
  await fastify.register(healthRoutes)
  await fastify.register(metricsRoutes)
  await fastify.register(statusRoutes)
  await fastify.register(coverageRoutes)
  await fastify.register(consoleRoutes)
  for (const prefix of ARCHIVE_PREFIXES) await fastify.register(alertRoutes, { prefix })
}

export default fp(app, { name: 'threatstack-to-s3', fastify: '5.x' })
