// TypeBox schemas of what Threat Stack posts: an alert, a batch of alerts, either one.
import { Type, type Static } from '@sinclair/typebox'

/** 23:59:59.999 UTC on 9999-12-31, the last millisecond a four-digit year can name. */
export const MAX_CREATED_AT_MS = 253_402_300_799_999

// An id becomes part of a URL path and of an S3 key: nothing but these characters may pass.
export const AlertIdSchema = Type.String({
  minLength: 4,
  maxLength: 128,
  pattern: '^[A-Za-z0-9_-]+$',
  description: 'Threat Stack alert id',
  examples: ['587c0159a907346eccb84004']
})

/**
 * A regular expression source matching the strings of up to `max`'s digit count that are at
 * most `max`: any shorter string of digits, or a full-length one that is not above it digit by digit.
 */
export function digitsAtMost (max: number): string {
  const m = String(max)
  const n = m.length
  const alternatives = [`\\d{1,${n - 1}}`, m]
  for (let i = 0; i < n; i++) {
    const d = Number(m[i])
    if (d > 0) alternatives.push(`${m.slice(0, i)}[0-${d - 1}]${i < n - 1 ? `\\d{${n - 1 - i}}` : ''}`)
  }
  return `^(?:${alternatives.join('|')})$`
}

const alertProperties = {
  id: AlertIdSchema,
  // Threat Stack sends created_at as a string of digits; the Python service's archives hold numbers.
  created_at: Type.Union([
    Type.Integer({ minimum: 0, maximum: MAX_CREATED_AT_MS }),
    Type.String({ pattern: digitsAtMost(MAX_CREATED_AT_MS) })
  ], { description: 'milliseconds since the epoch, as an integer or a string of digits', examples: ['1484521800000'] }),
  severity: Type.Optional(Type.Union([
    Type.Integer({ minimum: 1, maximum: 3 }),
    Type.String({ pattern: '^[1-3]$' })
  ], { description: '1 (high) to 3 (low)' })),
  title: Type.Optional(Type.String()),
  organization_id: Type.Optional(Type.String()),
  organization_name: Type.Optional(Type.String()),
  server_or_region: Type.Optional(Type.String()),
  source: Type.Optional(Type.String())
}

const ALERT_DESCRIPTION = 'A Threat Stack alert as its webhook sends it; unknown fields are archived as received'

export const AlertSchema = Type.Object(alertProperties, { additionalProperties: true, description: ALERT_DESCRIPTION })

export type Alert = Static<typeof AlertSchema>

/**
 * An alert posted on its own. An object with `alerts` is always the batch form, so a bare alert
 * can never carry an `alerts` field: otherwise an unvalidated array could ride along inside it.
 */
export const BareAlertSchema = Type.Object({
  ...alertProperties,
  alerts: Type.Optional(Type.Never({ description: 'absent: a body with alerts is the batch form' }))
}, { additionalProperties: true, description: `${ALERT_DESCRIPTION}; never with an alerts field` })

export const AlertBatchSchema = Type.Object({
  alerts: Type.Array(AlertSchema, { minItems: 1, maxItems: 100 })
}, { additionalProperties: true })

export type AlertBatch = Static<typeof AlertBatchSchema>

/** A webhook body: exactly one of the original service's `{"alerts": [...]}` or one bare alert. */
export const WebhookBodySchema = Type.Union([AlertBatchSchema, BareAlertSchema])

export type WebhookBody = Static<typeof WebhookBodySchema>

export function alertsOf (body: WebhookBody): Alert[] {
  return Object.hasOwn(body, 'alerts') ? (body as AlertBatch).alerts : [body as Alert]
}

/** created_at in milliseconds; NaN when outside 1970-9999 (a digit string may exceed the bound). */
export function createdAtMs (alert: Alert): number {
  const ms = Number(alert.created_at)
  return Number.isSafeInteger(ms) && ms >= 0 && ms <= MAX_CREATED_AT_MS ? ms : Number.NaN
}
