// TypeBox schemas of the messages AWS SNS posts to an HTTP(S) subscriber.
import { Type, type Static } from '@sinclair/typebox'

export const SNS_MESSAGE_TYPES = ['Notification', 'SubscriptionConfirmation', 'UnsubscribeConfirmation'] as const

export type SNSMessageType = typeof SNS_MESSAGE_TYPES[number]

// Fields every type carries. Lengths are bounds, not SNS's own limits (a Message is bounded by the body limit).
const common = {
  MessageId: Type.String({ minLength: 1, maxLength: 256 }),
  TopicArn: Type.String({ maxLength: 1024, pattern: '^arn:[a-z-]+:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_.-]{1,256}$' }),
  Message: Type.String(),
  Timestamp: Type.String({ minLength: 1, maxLength: 64 }),
  // 1: SHA1withRSA, 2: SHA256withRSA.
  SignatureVersion: Type.Union([Type.Literal('1'), Type.Literal('2')]),
  Signature: Type.String({ minLength: 1, maxLength: 2048, pattern: '^[A-Za-z0-9+/]+={0,2}$' }),
  SigningCertURL: Type.String({ minLength: 1, maxLength: 2048 })
}

export const SNSNotificationSchema = Type.Object({
  Type: Type.Literal('Notification'),
  ...common,
  Subject: Type.Optional(Type.String({ maxLength: 1024 })),
  UnsubscribeURL: Type.Optional(Type.String({ maxLength: 4096 }))
}, { additionalProperties: true, description: 'An SNS Notification; its Message is a webhook body as a JSON string' })

export const SNSConfirmationSchema = Type.Object({
  Type: Type.Union([Type.Literal('SubscriptionConfirmation'), Type.Literal('UnsubscribeConfirmation')]),
  ...common,
  SubscribeURL: Type.String({ minLength: 1, maxLength: 4096 }),
  Token: Type.String({ minLength: 1, maxLength: 2048 })
}, { additionalProperties: true, description: 'An SNS SubscriptionConfirmation or UnsubscribeConfirmation' })

export const SNSMessageSchema = Type.Union([SNSNotificationSchema, SNSConfirmationSchema])

export type SNSNotification = Static<typeof SNSNotificationSchema>
export type SNSConfirmation = Static<typeof SNSConfirmationSchema>
export type SNSMessage = Static<typeof SNSMessageSchema>
