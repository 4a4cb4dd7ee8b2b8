// Decorates app.s3: the one S3Client of the process, destroyed on close.
import fp from 'fastify-plugin'
import pLimit from 'p-limit'
import { S3Client } from '@aws-sdk/client-s3'
import { Agent as HttpAgent } from 'node:http'
import { Agent as HttpsAgent } from 'node:https'
import { performance } from 'node:perf_hooks'
import type { Config } from '../config.js'
import { isThrottling, type Store } from '../services/storage.js'
import { markLateObject } from '../services/digest.js'
import type { UpstreamObserver } from '../services/threatstack.js'

declare module 'fastify' {
  interface FastifyInstance {
    s3: S3Client
    /** The archive: the client, the bucket, the key prefix and the write options. */
    store: Store
    /** The same archive for the read routes, with S3 slots of its own. */
    readStore: Store
  }
}

/**
 * The archive over `s3`: at most `slots` S3 calls under way (`maxSockets` by default). Ingest,
 * the sweeper and the CLIs use it; the read routes use readStoreOf's, whose slots come on top,
 * so that however many searches run, a webhook never waits behind them for a socket.
 */
export function storeOf (cfg: Config['s3'], s3: S3Client, extra: Pick<Store, 'lock' | 'onExisting' | 'onCreated'> = {}, slots = cfg.maxSockets): Store {
  const limit = pLimit(slots)
  return {
    s3,
    bucket: cfg.bucket,
    prefix: cfg.prefix,
    ...(cfg.write !== undefined && { write: cfg.write }),
    ...(cfg.budgetMs !== undefined && { budgetMs: cfg.budgetMs }),
    limit: async (call) => await limit(call),
    ...extra
  }
}

/** The archive for the read routes: `readMaxSockets` S3 calls under way, apart from storeOf's. */
export function readStoreOf (cfg: Config['s3'], s3: S3Client): Store {
  return storeOf(cfg, s3, {}, cfg.readMaxSockets ?? cfg.maxSockets)
}

/** What kind of archived object a key names, and the id in it: for metrics and logs, never the key itself. */
export function describeKey (prefix: string, key: string): { object: string, id: string } {
  const relative = prefix === '' ? key : key.slice(prefix.length + 1)
  const object = relative.startsWith('webhooks/') ? 'webhook' : relative.startsWith('alerts/') ? 'alert' : relative.startsWith('digests/') ? 'digest' : 'other'
  return { object, id: relative.split('/').at(-1) ?? '' }
}

/** Reports each S3 command (its retries included) to the observer: outcome, duration, retries. */
function observe (client: S3Client, observer: UpstreamObserver): void {
  const attemptsOf = (value: unknown): number => (value as { $metadata?: { attempts?: number } } | undefined)?.$metadata?.attempts ?? 1
  client.middlewareStack.add((next) => async (args) => {
    const t0 = performance.now()
    try {
      const result = await next(args)
      observer.request('success', (performance.now() - t0) / 1000)
      for (let i = 1; i < attemptsOf(result.output); i++) observer.retry()
      return result
    } catch (err) {
      // A missing key is an answer, not a failure.
      const outcome = (err as { name?: unknown }).name === 'NoSuchKey' || (err as { name?: unknown }).name === 'NotFound'
        ? 'not_found'
        : isThrottling(err) ? 'throttled' : 'error'
      observer.request(outcome, (performance.now() - t0) / 1000)
      for (let i = 1; i < attemptsOf(err); i++) observer.retry()
      throw err
    }
  }, { step: 'initialize', name: 'observeUpstream' })
}

export function createS3Client (cfg: Config['s3'], observer?: UpstreamObserver): S3Client {
  // Room for both budgets at once (storeOf and readStoreOf), so neither waits for the other's sockets.
  const agentOptions = { keepAlive: true, maxSockets: cfg.maxSockets + (cfg.readMaxSockets ?? 0) }
  const client = new S3Client({
    region: cfg.region,
    maxAttempts: cfg.maxAttempts,
    ...(cfg.retryMode !== undefined && { retryMode: cfg.retryMode }),
    ...(cfg.credentials !== undefined && { credentials: cfg.credentials }),
    ...(cfg.endpoint !== undefined && {
      endpoint: cfg.endpoint,
      forcePathStyle: true,
      // S3-compatible servers (s3rver, some MinIO/Ceph versions) store aws-chunked checksum
      // framing as data; against AWS itself the SDK's defaults stay.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED'
    }),
    requestHandler: {
      connectionTimeout: cfg.connectTimeoutMs,
      requestTimeout: cfg.timeoutMs,
      // Without it the SDK only logs a warning when a request outlives requestTimeout.
      throwOnRequestTimeout: true,
      httpAgent: new HttpAgent(agentOptions),
      httpsAgent: new HttpsAgent(agentOptions)
    }
  })
  if (observer !== undefined) observe(client, observer)
  return client
}

export default fp(async function s3Plugin (app) {
  const client = createS3Client(app.config.s3, app.metrics.observer('s3'))
  app.decorate('s3', client)
  const { prefix } = app.config.s3
  const store: Store = storeOf(app.config.s3, client, {
    ...(app.config.integrity.lock !== undefined && { lock: app.config.integrity.lock }),
    onExisting (key, conflict) {
      const { object, id } = describeKey(prefix, key)
      app.metrics.duplicates.inc({ object })
      if (!conflict) return
      app.metrics.conflicts.inc({ object })
      app.log.warn({ object, id }, 'an archived object was offered again with a different body; the archived one is kept')
    },
    ...(app.config.integrity.intervalS > 0 && {
      onCreated (key: string) {
        // An object of an hour the digest job no longer looks at: mark the hour for a supplement digest.
        markLateObject(store, key, app.config.integrity.lookbackHours).catch((err: unknown) => {
          app.log.warn({ err, ...describeKey(prefix, key) }, 'digest: could not mark a late object\'s hour; verify will show it as added')
        })
      }
    })
  })
  app.decorate('store', store)
  app.decorate('readStore', readStoreOf(app.config.s3, client))
  app.addHook('onClose', async () => client.destroy())
}, { name: 's3', decorators: { fastify: ['config', 'metrics'] }, fastify: '5.x' })
