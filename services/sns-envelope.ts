// The SNS envelope: its schema by type, the text SNS signs, and the webhook body in a Notification.
import { TypeCompiler } from '@sinclair/typebox/compiler'
import sjson from 'secure-json-parse'
import { schemaDetails, SNSMessageInvalidError, WebhookDataError } from '../errors/index.js'
import { exceedsJsonDepth } from '../schemas/json.js'
import {
  SNSConfirmationSchema, SNSNotificationSchema, SNS_MESSAGE_TYPES,
  type SNSMessage, type SNSMessageType, type SNSNotification
} from '../schemas/sns.js'
import { nestedTooDeeply } from './webhook.js'

const NOTIFICATION_FIELDS = ['Message', 'MessageId', 'Subject', 'Timestamp', 'TopicArn', 'Type'] as const
const CONFIRMATION_FIELDS = ['Message', 'MessageId', 'SubscribeURL', 'Timestamp', 'Token', 'TopicArn', 'Type'] as const

const checkNotification = TypeCompiler.Compile(SNSNotificationSchema)
const checkConfirmation = TypeCompiler.Compile(SNSConfirmationSchema)

// With the u flag, a surrogate matches only when it is not half of a pair.
const LONE_SURROGATE = /[\uD800-\uDFFF]/u

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
export function parseSNSMessage (client: { readonly enabled: boolean }, body: unknown, headerType: string): SNSMessage {
  if (!client.enabled) throw new SNSMessageInvalidError('SNS deliveries are not accepted by this service')
  if (!(SNS_MESSAGE_TYPES as readonly string[]).includes(headerType)) {
    throw new SNSMessageInvalidError('SNS message type is unknown', {
      details: [`x-amz-sns-message-type must be one of ${SNS_MESSAGE_TYPES.join(', ')}`]
    })
  }
  if (!isObject(body)) throw new SNSMessageInvalidError('SNS message must be a JSON object')
  if (body.Type !== headerType) {
    throw new SNSMessageInvalidError(undefined, { details: ['/Type must be the x-amz-sns-message-type header'] })
  }
  const check = (headerType as SNSMessageType) === 'Notification' ? checkNotification : checkConfirmation
  if (!check.Check(body)) {
    throw new SNSMessageInvalidError(undefined, { details: schemaDetails([...check.Errors(body)]) })
  }
  return body
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
