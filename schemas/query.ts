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

export const SEARCH_DEFAULT_LIMIT = 100

const instant = (bound: string): ReturnType<typeof Type.String> => Type.String({
  maxLength: 64,
  description: `${bound}: an RFC 3339 date-time with offset, or a plain date (midnight UTC)`,
  examples: [bound === 'start' ? '2017-01-15T23:00:00Z' : '2017-01-16']
})

export const SearchQuerySchema = Type.Object({
  start: instant('start'),
  end: instant('end'),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: SEARCH_DEFAULT_LIMIT, description: 'alerts per page' })),
  cursor: Type.Optional(Type.String({ maxLength: 1024, pattern: '^[A-Za-z0-9_-]+$', description: 'nextCursor of the previous page' }))
})
