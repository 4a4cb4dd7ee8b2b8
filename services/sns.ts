// AWS SNS deliveries: the envelope, its signature (checked with the certificate SNS names, taken
// only from an SNS host over HTTPS), the topic, subscription confirmation, and the Message inside.
import { verify, X509Certificate, type KeyObject } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { Agent, request, type Dispatcher } from 'undici'
import sjson from 'secure-json-parse'
import type { Config } from '../config.js'
import {
  SNSMessageInvalidError, SNSSignatureError, ServiceUnavailableError, UnexpectedException, WebhookDataError
} from '../errors/index.js'
import { exceedsJsonDepth } from '../schemas/json.js'
import { nestedTooDeeply } from './webhook.js'
import {
  SNSConfirmationSchema, SNSNotificationSchema, SNS_MESSAGE_TYPES,
  type SNSConfirmation, type SNSMessage, type SNSMessageType, type SNSNotification
} from '../schemas/sns.js'

/** The hosts SNS signs from and sends confirmation links to (commercial regions and China). */
export const SNS_HOST = /^sns\.[a-zA-Z0-9-]{3,}\.amazonaws\.com(\.cn)?$/
/** How SNS names its signing certificates; the only file names looked up in SNS_CERTS_DIR. */
export const CERT_FILE_NAME = /^SimpleNotificationService-[A-Za-z0-9]+\.pem$/
/** Deadline of one certificate fetch or confirmation call. */
export const SNS_TIMEOUT_MS = 5000
/** A signing certificate is about 2 KiB. */
export const MAX_CERT_BYTES = 64 * 1024
/** A confirmation answer is a short XML document, read only to free the connection. */
export const MAX_CONFIRM_BYTES = 64 * 1024
/** Signing keys kept in memory; SNS uses a handful of certificates per region. */
export const CERT_CACHE_SIZE = 100

const NOTIFICATION_FIELDS = ['Message', 'MessageId', 'Subject', 'Timestamp', 'TopicArn', 'Type'] as const
const CONFIRMATION_FIELDS = ['Message', 'MessageId', 'SubscribeURL', 'Timestamp', 'Token', 'TopicArn', 'Type'] as const

const checkNotification = TypeCompiler.Compile(SNSNotificationSchema)
const checkConfirmation = TypeCompiler.Compile(SNSConfirmationSchema)

const MAX_DETAILS = 10
// With the u flag, a surrogate matches only when it is not half of a pair.
const LONE_SURROGATE = /[\uD800-\uDFFF]/u
const MAX_DETAIL_LENGTH = 200

export interface SNSClient {
  readonly enabled: boolean
  /** undefined: any topic may deliver. */
  readonly topicArns: ReadonlySet<string> | undefined
  readonly certsDir: string | undefined
  /** Used for every certificate fetch and confirmation call. */
  readonly dispatcher: Dispatcher
  /** Whether closing the client closes the dispatcher (it was made here, not given). */
  readonly ownsDispatcher: boolean
  readonly timeoutMs: number
  /** Signing keys by certificate URL, least recently used first; a pending load is shared. */
  readonly certs: Map<string, Promise<KeyObject>>
  readonly cacheSize: number
}

export interface SNSClientOptions {
  /** Where certificate fetches and confirmation calls go; default: a small pool of our own. */
  dispatcher?: Dispatcher
  timeoutMs?: number
  cacheSize?: number
}

export function createSNSClient (cfg: Config['sns'], options: SNSClientOptions = {}): SNSClient {
  const timeoutMs = options.timeoutMs ?? SNS_TIMEOUT_MS
  const dispatcher = options.dispatcher ?? new Agent({
    connections: 8,
    connect: { timeout: timeoutMs },
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
    maxResponseSize: Math.max(MAX_CERT_BYTES, MAX_CONFIRM_BYTES)
  })
  return {
    enabled: cfg.enabled,
    topicArns: cfg.topicArns === undefined ? undefined : new Set(cfg.topicArns),
    certsDir: cfg.certsDir,
    dispatcher,
    ownsDispatcher: options.dispatcher === undefined,
    timeoutMs,
    certs: new Map(),
    cacheSize: options.cacheSize ?? CERT_CACHE_SIZE
  }
}

export async function closeSNSClient (client: SNSClient): Promise<void> {
  if (client.ownsDispatcher) await client.dispatcher.close()
}

/**
 * The URL when it is an HTTPS address on an SNS host: default port, no user info, no fragment.
 * Parsed with the WHATWG parser, the one the request is then made with, so that what is
 * checked is what is fetched.
 */
export function snsUrl (raw: string): URL | undefined {
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    return undefined
  }
  if (url.protocol !== 'https:' || url.username !== '' || url.password !== '' || url.port !== '' || url.hash !== '') return undefined
  return SNS_HOST.test(url.hostname) ? url : undefined
}

/** The URL when it may name a signing certificate: an SNS address of a .pem file, no query. */
export function signingCertUrl (raw: string): URL | undefined {
  const url = snsUrl(raw)
  return url !== undefined && url.search === '' && url.pathname.endsWith('.pem') ? url : undefined
}

/** `Key\nValue\n` for each signed field present, in the order SNS signs them. */
export function stringToSign (message: SNSMessage): string {
  const fields = message.Type === 'Notification' ? NOTIFICATION_FIELDS : CONFIRMATION_FIELDS
  const values = message as Record<string, unknown>
  let text = ''
  for (const field of fields) {
    const value = values[field]
    if (typeof value === 'string') text += `${field}\n${value}\n`
  }
  return text
}

function isObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/**
 * The envelope, checked against its type's schema.
 * @param headerType the x-amz-sns-message-type header, which must name the body's Type.
 * @throws SNSMessageInvalidError when SNS deliveries are off, the type is unknown or the envelope malformed.
 */
export function parseSNSMessage (client: SNSClient, body: unknown, headerType: string): SNSMessage {
  if (!client.enabled) throw new SNSMessageInvalidError('SNS deliveries are not accepted by this service')
  if (!(SNS_MESSAGE_TYPES as readonly string[]).includes(headerType)) {
    throw new SNSMessageInvalidError('SNS message type is unknown', {
      details: [`x-amz-sns-message-type must be one of ${SNS_MESSAGE_TYPES.join(', ')}`]
    })
  }
  if (!isObject(body)) throw new SNSMessageInvalidError('SNS message must be a JSON object')
  if (body.Type !== headerType) {
    throw new SNSMessageInvalidError('SNS message is malformed', { details: ['/Type must be the x-amz-sns-message-type header'] })
  }
  const check = (headerType as SNSMessageType) === 'Notification' ? checkNotification : checkConfirmation
  if (!check.Check(body)) {
    const details = [...check.Errors(body)].slice(0, MAX_DETAILS).map((e) => `${e.path === '' ? '/' : e.path} ${e.message}`.slice(0, MAX_DETAIL_LENGTH))
    throw new SNSMessageInvalidError('SNS message is malformed', { details })
  }
  return body
}

/** What was refused or answered, for the log: never sent to a client. */
class SNSDetail extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'SNSDetail'
  }
}

/** What an HTTPS GET answered, the body read up to `maxBytes`. @throws what undici throws, or SNSDetail when too large. */
async function httpsGet (client: SNSClient, url: URL, maxBytes: number): Promise<{ statusCode: number, body: string }> {
  const res = await request(url, {
    method: 'GET',
    dispatcher: client.dispatcher,
    signal: AbortSignal.timeout(client.timeoutMs)
  })
  const chunks: Buffer[] = []
  let size = 0
  // Read by hand: the dispatcher may have been given without a response size cap.
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > maxBytes) {
      res.body.destroy()
      throw new SNSDetail(`answer larger than ${maxBytes} bytes`)
    }
    chunks.push(chunk)
  }
  return { statusCode: res.statusCode, body: Buffer.concat(chunks).toString('utf8') }
}

/** The certificate from SNS_CERTS_DIR, undefined when it is not there. */
async function localCertificate (dir: string | undefined, url: URL): Promise<string | undefined> {
  if (dir === undefined) return undefined
  const name = url.pathname.slice(url.pathname.lastIndexOf('/') + 1)
  // Only SNS's own naming: nothing that could step out of the folder.
  if (!CERT_FILE_NAME.test(name)) return undefined
  try {
    return await readFile(join(dir, name), 'utf8')
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT') return undefined
    throw new UnexpectedException({ cause: err })
  }
}

/**
 * The certificate from its SNS host.
 * @throws ServiceUnavailableError when the host could not be reached or failed (SNS retries);
 *   SNSSignatureError when it answered that there is no such certificate.
 */
async function fetchCertificate (client: SNSClient, url: URL): Promise<string> {
  let answer: { statusCode: number, body: string }
  try {
    answer = await httpsGet(client, url, MAX_CERT_BYTES)
  } catch (err) {
    // Too large to be a certificate, whichever of our cap or the pool's was hit.
    if (err instanceof SNSDetail || (err as { code?: unknown }).code === 'UND_ERR_RES_EXCEEDED_MAX_SIZE') {
      throw new SNSSignatureError('SNS signing certificate is invalid', { cause: err })
    }
    throw new ServiceUnavailableError('SNS signing certificate could not be fetched; retry later', { cause: err })
  }
  if (answer.statusCode === 200) return answer.body
  const cause = new SNSDetail(`GET ${url.href} answered ${answer.statusCode}`)
  if (answer.statusCode >= 500) throw new ServiceUnavailableError('SNS signing certificate could not be fetched; retry later', { cause })
  throw new SNSSignatureError('SNS signing certificate could not be found', { cause })
}

async function loadSigningKey (client: SNSClient, url: URL): Promise<KeyObject> {
  const pem = await localCertificate(client.certsDir, url) ?? await fetchCertificate(client, url)
  try {
    // Like SNS's own validators, the certificate's dates are not checked: what matters is where it came from.
    return new X509Certificate(pem).publicKey
  } catch (err) {
    throw new SNSSignatureError('SNS signing certificate is invalid', { cause: err })
  }
}

/** The public key of the certificate at `url`, from the cache, SNS_CERTS_DIR, or its host. */
async function signingKey (client: SNSClient, url: URL): Promise<KeyObject> {
  const id = url.href
  const cached = client.certs.get(id)
  if (cached !== undefined) {
    client.certs.delete(id)
    client.certs.set(id, cached)
    return await cached
  }
  const loading = loadSigningKey(client, url)
  client.certs.set(id, loading)
  if (client.certs.size > client.cacheSize) {
    const oldest = client.certs.keys().next()
    if (oldest.done !== true) client.certs.delete(oldest.value)
  }
  // A failure is not remembered: the next message tries again.
  loading.catch(() => { if (client.certs.get(id) === loading) client.certs.delete(id) })
  return await loading
}

/**
 * Checks that SNS signed the message.
 * @throws SNSSignatureError when the certificate URL is not an SNS address, or the signature
 *   does not verify; ServiceUnavailableError when the certificate could not be fetched.
 */
export async function verifySNSMessage (client: SNSClient, message: SNSMessage): Promise<void> {
  const url = signingCertUrl(message.SigningCertURL)
  if (url === undefined) {
    throw new SNSSignatureError('SNS signing certificate must come from an SNS host over HTTPS', {
      cause: new SNSDetail(`SigningCertURL refused: ${message.SigningCertURL.slice(0, 300)}`)
    })
  }
  const key = await signingKey(client, url)
  let valid: boolean
  try {
    valid = verify(message.SignatureVersion === '1' ? 'sha1' : 'sha256', Buffer.from(stringToSign(message), 'utf8'),
      key, Buffer.from(message.Signature, 'base64'))
  } catch (err) {
    throw new SNSSignatureError('SNS message signature is invalid', { cause: err })
  }
  if (!valid) throw new SNSSignatureError('SNS message signature is invalid')
}

/** The SubscribeURL. @throws SNSSignatureError when it is not an SNS address: no other URL is ever called. */
function subscribeUrl (message: SNSConfirmation): URL {
  const url = snsUrl(message.SubscribeURL)
  if (url === undefined) {
    throw new SNSSignatureError('SNS SubscribeURL must be an SNS host over HTTPS', {
      cause: new SNSDetail(`SubscribeURL refused: ${message.SubscribeURL.slice(0, 300)}`)
    })
  }
  return url
}

/**
 * Confirms a subscription with a GET of its SubscribeURL, which must be an SNS address.
 * @throws SNSSignatureError when it is not; ServiceUnavailableError when SNS could not be reached
 *   or refused (the confirmation is delivered again).
 */
export async function confirmSubscription (client: SNSClient, message: SNSConfirmation): Promise<void> {
  const url = subscribeUrl(message)
  let statusCode: number
  try {
    statusCode = (await httpsGet(client, url, MAX_CONFIRM_BYTES)).statusCode
  } catch (err) {
    throw new ServiceUnavailableError('SNS subscription could not be confirmed; retry later', { cause: err })
  }
  if (statusCode < 200 || statusCode >= 300) {
    throw new ServiceUnavailableError('SNS subscription could not be confirmed; retry later', {
      cause: new SNSDetail(`ConfirmSubscription answered ${statusCode}`)
    })
  }
}

/**
 * A Notification's Message, parsed as JSON; `__proto__` and `constructor.prototype` keys are refused.
 * @throws WebhookDataError when it is not JSON, not well-formed Unicode, or nested too deeply.
 */
export function notificationBody (message: SNSNotification): unknown {
  // As for a body posted directly: nesting this deep could not be serialized again to be stored.
  if (exceedsJsonDepth(message.Message)) throw nestedTooDeeply()
  // A lone surrogate (an escape in the envelope) has no UTF-8 bytes: the record could not be what was sent.
  if (LONE_SURROGATE.test(message.Message)) throw new WebhookDataError('SNS Message is not valid Unicode text')
  try {
    return sjson.parse(message.Message, null, { protoAction: 'error', constructorAction: 'error' })
  } catch (err) {
    throw new WebhookDataError('SNS Message is not valid JSON, or holds a forbidden key (__proto__, constructor.prototype)', { cause: err })
  }
}

export type SNSDelivery =
  | { type: 'Notification', topicArn: string, messageId: string, body: unknown, text: string }
  | { type: 'SubscriptionConfirmation' | 'UnsubscribeConfirmation', topicArn: string, messageId: string }

/**
 * Takes one SNS message: checks its envelope, topic, certificate host and signature, in that
 * order, so that nothing is fetched for a message refused on its face. A Notification yields its
 * Message as a webhook body; a SubscriptionConfirmation is confirmed; an UnsubscribeConfirmation
 * needs nothing more.
 * @throws SNSMessageInvalidError (400), SNSSignatureError (403), WebhookDataError (400) for a
 *   Message that is not JSON, ServiceUnavailableError (503) when SNS could not be reached.
 */
export async function receiveSNSMessage (client: SNSClient, body: unknown, headerType: string): Promise<SNSDelivery> {
  const message = parseSNSMessage(client, body, headerType)
  if (client.topicArns !== undefined && !client.topicArns.has(message.TopicArn)) {
    throw new SNSSignatureError('SNS topic is not allowed to deliver here', {
      cause: new SNSDetail(`topic refused: ${message.TopicArn}`)
    })
  }
  if (message.Type === 'SubscriptionConfirmation') subscribeUrl(message)
  await verifySNSMessage(client, message)
  const { TopicArn: topicArn, MessageId: messageId } = message
  if (message.Type === 'Notification') return { type: message.Type, topicArn, messageId, body: notificationBody(message), text: message.Message }
  if (message.Type === 'SubscriptionConfirmation') await confirmSubscription(client, message)
  return { type: message.Type, topicArn, messageId }
}
