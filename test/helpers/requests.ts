// Small request and assertion helpers shared by the route and plugin tests.
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import type tap from 'tap'
import { LOCAL_S3_CREDENTIALS } from '../../dev/local-s3.js'
import { BEARER, SECRETS } from './build.js'
import { assertNoLeak } from './leaks.js'

/** A tap test, as a subtest callback receives it. */
type Tap = Parameters<Parameters<typeof tap.test>[0]>[0]

export const ALERT_URL = '/api/v1/s3/alert'
export const LEGACY_ALERT_URL = '/threatstack-to-s3/api/v1/s3/alert'

/** created_at 1484521800000 is 2017-01-15T23:10:00Z. */
export const CREATED_AT = 1484521800000
export const WEBHOOK_MINUTE = 'webhooks/2017/01/15/23/10'

export interface PostOptions {
  url?: string
  headers?: Record<string, string>
  /** Sets content-type; with a string payload, nothing is set unless given. */
  contentType?: string
}

/** POSTs a webhook body with the ingest token. */
export async function postAlerts (app: FastifyInstance, payload: unknown, options: PostOptions = {}): Promise<LightMyRequestResponse> {
  return await app.inject({
    method: 'POST',
    url: options.url ?? ALERT_URL,
    headers: {
      ...BEARER.ingest,
      ...(options.contentType !== undefined && { 'content-type': options.contentType }),
      ...options.headers
    },
    payload: payload as string | object
  })
}

/** GETs one archived alert with the read token. */
export async function getAlert (app: FastifyInstance, id: string, options: { url?: string } = {}): Promise<LightMyRequestResponse> {
  return await app.inject({ method: 'GET', url: `${options.url ?? ALERT_URL}/${id}`, headers: BEARER.read })
}

/** Every key in the test bucket, sorted, read straight from the local S3 server. */
export async function listKeys (t: Tap, endpoint: string): Promise<string[]> {
  const client = new S3Client({ region: 'us-east-1', endpoint, forcePathStyle: true, credentials: LOCAL_S3_CREDENTIALS })
  t.teardown(() => client.destroy())
  const keys: string[] = []
  let startAfter: string | undefined
  // s3rver cannot make continuation tokens under OpenSSL 3: page with StartAfter.
  for (let page = 0; page < 100; page++) {
    const res = await client.send(new ListObjectsV2Command({ Bucket: SECRETS.bucket, ...(startAfter !== undefined && { StartAfter: startAfter }) }))
    const found = (res.Contents ?? []).map((o) => o.Key ?? '')
    keys.push(...found)
    if (res.IsTruncated !== true || found.length === 0) break
    startAfter = found[found.length - 1]
  }
  // The search index (index/…) is derived state beside the archive; its own tests look at it.
  return keys.filter((k) => !/(^|\/)index\//.test(k)).sort()
}

export interface ErrorBody { type: string, message: string, requestId: string, details?: string[] }

/**
 * Asserts an error reply: status, JSON content type, the envelope (and nothing else in it),
 * the type, a request id that is also the x-request-id header, and no leak.
 * @returns the parsed envelope's `error`.
 */
export function assertError (t: Tap, res: LightMyRequestResponse, status: number, type: string): ErrorBody {
  t.equal(res.statusCode, status, `status ${status}`)
  t.match(res.headers['content-type'], /^application\/json/, 'JSON content type')
  const body = res.json() as { success: unknown, error: ErrorBody }
  t.same(Object.keys(body).sort(), ['error', 'success'], 'only success and error at the top')
  t.equal(body.success, false)
  const error = body.error
  t.equal(error.type, type, `type ${type}`)
  t.match(error.message, /\S/, 'a message')
  t.ok(typeof error.requestId === 'string' && error.requestId.length > 0, 'a request id')
  for (const key of Object.keys(error)) t.ok(['type', 'message', 'requestId', 'details'].includes(key), `known envelope key ${key}`)
  t.equal(error.requestId, res.headers['x-request-id'], 'requestId is the x-request-id header')
  assertNoLeak(t, res.body)
  return error
}
