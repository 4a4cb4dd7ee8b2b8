// TypeBox schemas of route parameters and query strings.
import { Type } from '@sinclair/typebox'
import { AlertIdSchema } from './alert.js'

export const AlertIdParamsSchema = Type.Object({ alert_id: AlertIdSchema })

export const IngestQuerySchema = Type.Object({
  token: Type.Optional(Type.String({
    maxLength: 512,
    description: 'Ingest token, for senders that can only be given a URL (Threat Stack webhooks)'
  }))
})
