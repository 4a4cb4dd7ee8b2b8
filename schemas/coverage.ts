// TypeBox schemas of the coverage route: its query and its reply, one entry per hour.
import { Type, type Static } from '@sinclair/typebox'

export const COVERAGE_DEFAULT_LIMIT = 168
export const COVERAGE_MAX_LIMIT = 744

const instant = (bound: string): ReturnType<typeof Type.String> => Type.String({
  maxLength: 64,
  description: `${bound}: an RFC 3339 date-time with offset, or a plain date (midnight UTC)`,
  examples: [bound === 'start' ? '2017-01-15T00:00:00Z' : '2017-01-16']
})

export const CoverageQuerySchema = Type.Object({
  start: instant('start'),
  end: instant('end'),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: COVERAGE_MAX_LIMIT, default: COVERAGE_DEFAULT_LIMIT, description: 'hours per page' })),
  cursor: Type.Optional(Type.String({ maxLength: 256, pattern: '^[A-Za-z0-9_-]+$', description: 'nextCursor of the previous page' }))
})

const ids = (description: string): ReturnType<typeof Type.Array> => Type.Array(Type.String(), { description })
const count = (description: string): ReturnType<typeof Type.Union> => Type.Union([Type.Integer({ minimum: 0 }), Type.Null()], { description })

export const HourCoverageSchema = Type.Object({
  hour: Type.String({ description: 'the hour\'s start, ISO 8601 UTC' }),
  checked: Type.Boolean({ description: 'whether the hour has been compared with Threat Stack; when false the figures are null and the lists empty' }),
  checkedAt: Type.Union([Type.String(), Type.Null()], { description: 'when it was last compared' }),
  complete: Type.Union([Type.Boolean(), Type.Null()], { description: 'every alert Threat Stack lists has both objects archived' }),
  threatstack: count('alerts Threat Stack lists for the hour (active and dismissed)'),
  archived: count('alerts with a webhook record in the hour'),
  viaWebhook: count('... of which came by webhook'),
  viaBackfill: count('... of which the backfill archived from the list API'),
  missing: ids('listed by Threat Stack, not archived (yet)'),
  pending: ids('webhook record archived, full alert not (yet)'),
  unknown: ids('archived from a webhook, unknown to Threat Stack (absent from its list, 404 on fetch)')
})

export type HourCoverage = Static<typeof HourCoverageSchema>

export const CoverageReplySchema = Type.Object({
  success: Type.Literal(true),
  hours: Type.Array(HourCoverageSchema, { description: 'the hours of the range, oldest first' }),
  nextCursor: Type.Union([Type.String(), Type.Null()], { description: 'pass as `cursor` for the next page; null on the last page' })
}, {
  description: 'The completeness ledger of each hour of the range',
  examples: [{
    success: true,
    hours: [{
      hour: '2017-01-15T23:00:00.000Z',
      checked: true,
      checkedAt: '2017-01-16T00:16:02.118Z',
      complete: true,
      threatstack: 12,
      archived: 12,
      viaWebhook: 11,
      viaBackfill: 1,
      missing: [],
      pending: [],
      unknown: []
    }],
    nextCursor: null
  }]
})
