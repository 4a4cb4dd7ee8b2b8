// AWS SNS deliveries: the client, subscription confirmation, and receiving one message (its
// envelope, topic, certificate host and signature, then the Message inside). The envelope, the
// certificates and the signature check each have their own file.
import { Agent } from 'undici'
import type { Dispatcher } from 'undici'
import type { Config } from '../config.js'
import { SNSSignatureError, ServiceUnavailableError } from '../errors/index.js'
import type { SNSConfirmation } from '../schemas/sns.js'
import {
  CERT_CACHE_SIZE, MAX_CERT_BYTES, SNSDetail, httpsGet, snsUrl, type SNSConnection
} from './sns-certificates.js'
import { notificationBody, parseSNSMessage } from './sns-envelope.js'
import { verifySNSMessage } from './sns-signature.js'

export { CERT_CACHE_SIZE, CERT_FILE_NAME, MAX_CERT_BYTES, SNS_HOST, signingCertUrl, snsUrl } from './sns-certificates.js'
export { notificationBody, parseSNSMessage, stringToSign } from './sns-envelope.js'
export { verifySNSMessage } from './sns-signature.js'

/** Deadline of one certificate fetch or confirmation call. */
export const SNS_TIMEOUT_MS = 5000
/** A confirmation answer is a short XML document, read only to free the connection. */
export const MAX_CONFIRM_BYTES = 64 * 1024

export interface SNSClient extends SNSConnection {
  readonly enabled: boolean
  /** undefined: any topic may deliver. */
  readonly topicArns: ReadonlySet<string> | undefined
  /** Whether closing the client closes the dispatcher (it was made here, not given). */
  readonly ownsDispatcher: boolean
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
