// TypeBox schemas of route parameters and query strings.
import { Type, type Static } from '@sinclair/typebox'
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

/** A filter's text: bounded, no control characters (nothing an alert field would hold). */
function filterText (description: string, example: string, maxLength: number) {
  return Type.Optional(Type.String({ minLength: 1, maxLength, pattern: '^[^\\u0000-\\u001f\\u007f]+$', description, examples: [example] }))
}

export const SearchQuerySchema = Type.Object({
  start: instant('start'),
  end: instant('end'),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: SEARCH_DEFAULT_LIMIT, description: 'alerts per page' })),
  cursor: Type.Optional(Type.String({ maxLength: 1024, pattern: '^[A-Za-z0-9_-]+$', description: 'nextCursor of the previous page (of the same start, end and filters)' })),
  severity: Type.Optional(Type.Array(Type.Integer({ minimum: 1, maximum: 3 }), {
    minItems: 1,
    maxItems: 3,
    description: 'only alerts of these severities (1 high to 3 low); repeat for several: `severity=1&severity=2`',
    examples: [[1, 2]]
  })),
  source: filterText('only alerts of this source (`source`, or `dataSource` of API v2 alerts), ignoring case', 'host', 64),
  server: filterText('only alerts of this host or region (`server_or_region`, or `hostname` of API v2 alerts), ignoring case', 'ip-10-0-0-1', 255),
  rule: filterText('only alerts of this rule id (`rule.id`, `ruleId` or `rule_id`), exactly', '5579c7d7acd7a4e91c000002', 128),
  q: filterText('only alerts whose `title` contains this, ignoring case', 'login', 200)
})

export type SearchQuery = Static<typeof SearchQuerySchema>
