// Decorates app.s3: the one S3Client of the process, destroyed on close.
import fp from 'fastify-plugin'
import { S3Client } from '@aws-sdk/client-s3'
import { Agent as HttpAgent } from 'node:http'
import { Agent as HttpsAgent } from 'node:https'
import type { Config } from '../config.js'

declare module 'fastify' {
  interface FastifyInstance { s3: S3Client }
}

export function createS3Client (cfg: Config['s3']): S3Client {
  const agentOptions = { keepAlive: true, maxSockets: cfg.maxSockets }
  return new S3Client({
    region: cfg.region,
    maxAttempts: cfg.maxAttempts,
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
      httpAgent: new HttpAgent(agentOptions),
      httpsAgent: new HttpsAgent(agentOptions)
    }
  })
}

export default fp(async function s3Plugin (app) {
  const client = createS3Client(app.config.s3)
  app.decorate('s3', client)
  app.addHook('onClose', async () => client.destroy())
}, { name: 's3', decorators: { fastify: ['config'] }, fastify: '5.x' })
