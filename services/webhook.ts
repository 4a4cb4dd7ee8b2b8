// Webhook bodies as received: the refusals every way in shares, and each alert's exact text.
import { WebhookDataError } from '../errors/index.js'
import { alertSources, MAX_JSON_DEPTH } from '../schemas/json.js'
import type { Alert } from '../schemas/alert.js'

/** The one refusal of JSON nested too deeply, for a posted body and for an SNS Message alike. */
export function nestedTooDeeply (): WebhookDataError {
  return new WebhookDataError('Webhook body is nested too deeply', { details: [`at most ${MAX_JSON_DEPTH} levels of objects and arrays`] })
}

/**
 * The exact JSON text of each of `alerts`, cut from the `text` they were parsed from, to be
 * stored as their webhook records. A key given twice in one object is refused: parsers do not
 * agree on which value counts, and a record that reads differently to different readers is not
 * evidence. Without the text (a caller that has only values), each alert is serialized.
 * @throws WebhookDataError for a duplicate key
 */
export function webhookRecords (alerts: Alert[], text: string | undefined): string[] {
  if (text === undefined) return alerts.map((alert) => JSON.stringify(alert))
  const { sources, duplicate } = alertSources(text)
  if (duplicate !== undefined) {
    throw new WebhookDataError('Webhook body holds a key more than once', {
      details: [`${duplicate.path.slice(0, 100)} has the key ${JSON.stringify(duplicate.key.slice(0, 40))} more than once; keys must be unique in every object`]
    })
  }
  // The scan cuts as alertsOf does; a disagreement would store the wrong bytes under an id.
  if (sources.length !== alerts.length) throw new Error(`found ${sources.length} alert texts for ${alerts.length} alerts`)
  return sources
}
