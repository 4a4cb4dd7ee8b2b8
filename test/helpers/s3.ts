// Local S3 servers for tests that must hold on two implementations (s3rver and fauxqs), with a
// client that counts the S3 requests it makes.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3'
import pLimit from 'p-limit'
import { createS3Client } from '../../services/s3-client.js'
import { LOCAL_S3_CREDENTIALS, startFauxqsS3, startLocalS3, type LocalS3 } from '../../dev/local-s3.js'
import type { Store } from '../../services/storage.js'

type Tap = { teardown: (fn: () => unknown) => void }

export const BACKENDS = ['s3rver', 'fauxqs'] as const
export type Backend = typeof BACKENDS[number]

export interface CountingStore extends Store {
  server: LocalS3
  /** S3 commands sent since the last reset, by command name. */
  requests: Map<string, number>
  total: () => number
  reset: () => void
  /** Writes a raw object (any text), as another writer (the Python service) would have. */
  putRaw: (key: string, body: string) => Promise<void>
  putMany: (entries: Array<[string, string]>) => Promise<void>
}

export async function startBackend (t: Tap, backend: Backend, bucket = 'search-bucket', prefix = ''): Promise<CountingStore> {
  let server: LocalS3
  if (backend === 's3rver') {
    const dir = await mkdtemp(join(tmpdir(), 'ts2s3-search-'))
    server = await startLocalS3({ directory: dir, buckets: [bucket] })
    t.teardown(async () => rm(dir, { recursive: true, force: true }))
  } else {
    server = await startFauxqsS3({ buckets: [bucket] })
  }
  const s3: S3Client = createS3Client({
    region: 'us-east-1',
    endpoint: server.endpoint,
    credentials: LOCAL_S3_CREDENTIALS,
    prefix,
    bucket,
    timeoutMs: 5000,
    connectTimeoutMs: 1000,
    maxSockets: 32,
    maxAttempts: 1
  })
  const requests = new Map<string, number>()
  s3.middlewareStack.add((next, context) => async (args) => {
    const name = context.commandName ?? 'unknown'
    requests.set(name, (requests.get(name) ?? 0) + 1)
    return await next(args)
  }, { step: 'initialize', name: 'countRequests' })
  t.teardown(async () => {
    s3.destroy()
    await server.close()
  })
  // Seeding, not what is measured: a keep-alive socket the local server reset is tried once more.
  const putRaw = async (key: string, body: string): Promise<void> => {
    const put = async (): Promise<unknown> => await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: 'application/json' }))
    try {
      await put()
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'ECONNRESET') throw err
      await put()
    }
  }
  return {
    s3,
    bucket,
    prefix,
    server,
    requests,
    total: () => [...requests.values()].reduce((a, b) => a + b, 0),
    reset: () => requests.clear(),
    putRaw,
    async putMany (entries) {
      const limit = pLimit(32)
      await Promise.all(entries.map(async ([key, body]) => limit(async () => putRaw(key, body))))
    }
  }
}
