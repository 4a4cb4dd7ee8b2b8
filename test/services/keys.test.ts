// The S3 key layout of SPEC "S3 layout", unchanged from the Python service.
import t from 'tap'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { ALERT_ID, alertKey, assertAlertId, indexKey, minutePath, webhookKey } from '../../services/keys.js'
import { AlertIdSchema, MAX_CREATED_AT_MS } from '../../schemas/alert.js'
import { WebhookDataError } from '../../errors/index.js'

const ID = '587c0159a907346eccb84004'
const CREATED_AT = 1484521800000

t.test('the example of the SPEC is 2017-01-15T23:10:00Z', async (t) => {
  t.equal(new Date(CREATED_AT).toISOString(), '2017-01-15T23:10:00.000Z')
  t.equal(Date.UTC(2017, 0, 15, 23, 10), CREATED_AT)
})

t.test('webhookKey: webhooks/YYYY/MM/DD/HH/mm/<id>, UTC minute', async (t) => {
  t.equal(webhookKey('', ID, CREATED_AT), `webhooks/2017/01/15/23/10/${ID}`)
  t.equal(webhookKey('archive', ID, CREATED_AT), `archive/webhooks/2017/01/15/23/10/${ID}`)
  t.equal(webhookKey('a/b', ID, CREATED_AT), `a/b/webhooks/2017/01/15/23/10/${ID}`)
  // Seconds and milliseconds inside the minute do not change the key.
  t.equal(webhookKey('', ID, CREATED_AT + 59_999), `webhooks/2017/01/15/23/10/${ID}`)
  t.equal(webhookKey('', ID, CREATED_AT + 60_000), `webhooks/2017/01/15/23/11/${ID}`)
  t.equal(webhookKey('', ID, CREATED_AT - 1), `webhooks/2017/01/15/23/09/${ID}`)
})

t.test('alertKey: alerts/<id[0:2]>/<id[2:4]>/<id>', async (t) => {
  t.equal(alertKey('', ID), `alerts/58/7c/${ID}`)
  t.equal(alertKey('archive', ID), `archive/alerts/58/7c/${ID}`)
  t.equal(alertKey('', 'abcd'), 'alerts/ab/cd/abcd', 'the shortest id the schema allows')
  t.equal(alertKey('', 'A_-z9'), 'alerts/A_/-z/A_-z9')
})

t.test('minutePath: zero padding and the bounds of the schema', async (t) => {
  t.equal(minutePath(0), '1970/01/01/00/00', 'epoch 0')
  t.equal(webhookKey('', ID, 0), `webhooks/1970/01/01/00/00/${ID}`)
  t.equal(MAX_CREATED_AT_MS, 253402300799999)
  t.equal(minutePath(253402300799999), '9999/12/31/23/59', 'the last millisecond of year 9999')
  t.equal(webhookKey('p', ID, 253402300799999), `p/webhooks/9999/12/31/23/59/${ID}`)
  t.equal(minutePath(Date.UTC(2000, 1, 29, 5, 7)), '2000/02/29/05/07', 'leap day, padded hour and minute')
  t.equal(minutePath(Date.UTC(2024, 11, 31, 23, 59, 59, 999)), '2024/12/31/23/59')
})

t.test('no key is built from an id that breaks the id rule', async (t) => {
  for (const id of ['../x/yy', '..', 'ab/cd', 'ab\\cd', 'abc', 'x'.repeat(129), '', 'abcd ', 'abcd\n', 'é1234', 12345678, null, undefined, ['abcd']]) {
    const label = JSON.stringify(id)?.slice(0, 20) ?? 'undefined'
    t.throws(() => webhookKey('', id as string, CREATED_AT), WebhookDataError, `webhookKey refuses ${label}`)
    t.throws(() => alertKey('p', id as string), WebhookDataError, `alertKey refuses ${label}`)
    t.throws(() => indexKey('', id as string, CREATED_AT), RangeError, `indexKey refuses ${label}`)
    let thrown: unknown
    try { assertAlertId(id) } catch (err) { thrown = err }
    t.match(thrown, { statusCode: 400, details: ['/id must be 4 to 128 characters of A-Z, a-z, 0-9, _ and -'] })
  }
  t.doesNotThrow(() => alertKey('', 'x'.repeat(128)))
})

t.test('the id rule of the keys is the schema\'s', async (t) => {
  const check = TypeCompiler.Compile(AlertIdSchema)
  for (const id of ['abcd', 'abc', 'a-_Z9', 'x'.repeat(128), 'x'.repeat(129), 'ab.c', 'ab/cd', '', 'abcd\n', 'ab cd']) {
    t.equal(ALERT_ID.test(id), check.Check(id), JSON.stringify(id).slice(0, 20))
  }
})
