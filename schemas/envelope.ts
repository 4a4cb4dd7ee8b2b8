// TypeBox schemas of every reply: the success bodies and the one error envelope.
import { Type } from '@sinclair/typebox'

export const ErrorEnvelopeSchema = Type.Object({
  success: Type.Literal(false),
  error: Type.Object({
    type: Type.String({ description: 'Error class, e.g. WebhookDataError', examples: ['AlertNotFoundError'] }),
    message: Type.String(),
    requestId: Type.String(),
    details: Type.Optional(Type.Array(Type.String(), { description: 'Which input broke which rule' }))
  })
}, { $id: 'ErrorEnvelope', description: 'Every error, from any layer' })

export const ArchiveReplySchema = Type.Object({
  success: Type.Literal(true),
  archived: Type.Array(Type.String(), { description: 'ids of the alerts now archived' })
})

export const AlertReplySchema = Type.Object({
  success: Type.Literal(true),
  alert: Type.Object({}, { additionalProperties: true, description: 'the full alert as Threat Stack returned it' })
})

const DependencySchema = Type.Object({ success: Type.Boolean() })

export const StatusReplySchema = Type.Object({
  success: Type.Boolean(),
  s3: DependencySchema,
  threatstack: DependencySchema
})

export const HealthReplySchema = Type.Object({ status: Type.Literal('ok') })

/** Responses every route declares for its errors. */
export const errorResponses = {
  '4xx': ErrorEnvelopeSchema,
  '5xx': ErrorEnvelopeSchema
}

export const SearchReplySchema = Type.Object({
  success: Type.Literal(true),
  alerts: Type.Array(Type.Object({}, { additionalProperties: true }), { description: 'full alerts, ascending created_at' }),
  nextCursor: Type.Union([Type.String(), Type.Null()], { description: 'pass as `cursor` for the next page; null on the last page' }),
  missing: Type.Array(Type.String(), { description: 'ids whose webhook record is archived but whose full alert is not (yet)' })
})
