// The S3 client of the process and the archive over it: sockets, timeouts, retries, the
// per-call slots of ingest and of the read routes, and the observer that feeds the metrics.
// Made here, as services/threatstack.ts makes its client; plugins/s3.ts only decorates and closes.
import pLimit from 'p-limit'
import { S3Client } from '@aws-sdk/client-s3'
import { Agent as HttpAgent } from 'node:http'
import { Agent as HttpsAgent } from 'node:https'
import { performance } from 'node:perf_hooks'
import type { Config } from '../config.js'
import { isThrottling, type Store } from './storage.js'
import type { UpstreamObserver } from './upstream.js'

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
