import t from 'tap'
import type tap from 'tap'
import { assertError, listKeys, postAlerts } from '../helpers/requests.js'
import { BEARER, TOKENS } from '../helpers/build.js'
import {
  LOCAL_CERT_URL, SNS_HOSTNAME, TOPIC_ARN, buildWithSNS, certFileName, changeByte, fixtureCertsDir, localSigner, postSNS,
  readFixture, signedMessage, tempDir
} from '../helpers/sns.js'

const BATCH = [
  { id: '587c0159a907346eccb84004', created_at: '1484521800000', severity: '1', title: 'Root login' },
  { id: 'bbbb0002', created_at: 1484521860000, severity: 3 }
]
const BARE = { id: 'cccc0003', created_at: '1484521800000', title: 'Bare alert, one per call' }

/** SNS_CERTS_DIR holding the local signing certificate. */
async function localCertsDir (t: Parameters<Parameters<typeof tap.test>[0]>[0]): Promise<string> {
  return await tempDir(t, { [certFileName(LOCAL_CERT_URL)]: (await localSigner()).cert })
}

t.test('the notifications signed by AWS pass the signature check and fail as webhook data', async (t) => {
  const built = await buildWithSNS(t, { env: { SNS_CERTS_DIR: await fixtureCertsDir(t) } })
  for (const name of ['notification-sigv1.json', 'notification-sigv2.json'] as const) {
    const res = await postSNS(built.app, await readFixture(name))
    const error = assertError(t, res, 400, 'WebhookDataError')
    t.match(error.message, /SNS Message is not valid JSON/, `${name}: "Hello world" is not a webhook body`)
  }
  t.same(built.standIn.connects, [], 'the certificate came from SNS_CERTS_DIR')
  t.same(await listKeys(t, built.s3.endpoint), [], 'nothing archived')
})

t.test('an AWS-signed notification with a signed field changed is a 403 SNSSignatureError', async (t) => {
  const built = await buildWithSNS(t, { env: { SNS_CERTS_DIR: await fixtureCertsDir(t) } })
  for (const name of ['notification-sigv1.json', 'notification-sigv2.json'] as const) {
    const fixture = await readFixture(name)
    for (const field of ['Message', 'MessageId', 'Timestamp', 'TopicArn', ...(fixture.Subject === undefined ? [] : ['Subject'])]) {
      const value = fixture[field] ?? ''
      // First, middle and last byte; in the ARN, of the topic name (another change makes it no ARN: a malformed envelope).
      const first = field === 'TopicArn' ? value.lastIndexOf(':') + 1 : 0
      for (const i of new Set([first, Math.floor((first + value.length) / 2), value.length - 1])) {
        const res = await postSNS(built.app, { ...fixture, [field]: changeByte(value, i) })
        const error = assertError(t, res, 403, 'SNSSignatureError')
        t.equal(error.message, 'SNS message signature is invalid', `${name} ${field}[${i}]`)
      }
    }
    const signature = Buffer.from(fixture.Signature ?? '', 'base64')
    signature[0] = (signature[0] ?? 0) ^ 0x80
    assertError(t, await postSNS(built.app, { ...fixture, Signature: signature.toString('base64') }), 403, 'SNSSignatureError')
  }
})

t.test('notifications signed by a local certificate archive their alerts, in both forms and both versions', async (t) => {
  const built = await buildWithSNS(t)
  for (const alert of [...BATCH, BARE]) built.threatstack.setAlert(alert.id, { id: alert.id, full: true })

  const batch = await signedMessage('Notification', { SignatureVersion: '1', Subject: 'Threat Stack alert', Message: JSON.stringify({ alerts: BATCH }) })
  const res = await postSNS(built.app, batch)
  t.equal(res.statusCode, 200, 'SignatureVersion 1, batch form')
  t.match(res.headers['content-type'], /^application\/json/)
  t.same(res.json(), { success: true, archived: BATCH.map((a) => a.id), pending: [] })

  const bare = await signedMessage('Notification', { SignatureVersion: '2', Message: JSON.stringify(BARE) })
  const res2 = await postSNS(built.app, bare)
  t.equal(res2.statusCode, 200, 'SignatureVersion 2, bare form')
  t.same(res2.json(), { success: true, archived: [BARE.id], pending: [] })

  t.same(await listKeys(t, built.s3.endpoint), [
    'alerts/58/7c/587c0159a907346eccb84004',
    'alerts/bb/bb/bbbb0002',
    'alerts/cc/cc/cccc0003',
    'webhooks/2017/01/15/23/10/587c0159a907346eccb84004',
    'webhooks/2017/01/15/23/10/cccc0003',
    'webhooks/2017/01/15/23/11/bbbb0002'
  ])
  t.same(JSON.parse((await built.readObject('webhooks/2017/01/15/23/10/587c0159a907346eccb84004'))?.body ?? 'null'), BATCH[0],
    'the webhook record is the alert inside the Message, as sent')
  t.same(JSON.parse((await built.readObject('webhooks/2017/01/15/23/11/bbbb0002'))?.body ?? 'null'), BATCH[1])
  t.same(JSON.parse((await built.readObject('webhooks/2017/01/15/23/10/cccc0003'))?.body ?? 'null'), BARE)
  t.same(JSON.parse((await built.readObject('alerts/cc/cc/cccc0003'))?.body ?? 'null'), { id: BARE.id, full: true })

  t.same(built.standIn.requests, [{ host: SNS_HOSTNAME, method: 'GET', url: new URL(LOCAL_CERT_URL).pathname }],
    'the certificate was fetched once over HTTPS from its SNS host, then cached')
})

t.test('a verified Notification whose Message is not an alert is a 400 WebhookDataError', async (t) => {
  const built = await buildWithSNS(t, { env: { SNS_CERTS_DIR: await localCertsDir(t) } })
  const cases: Array<[string, string, RegExp]> = [
    ['an alert without created_at', JSON.stringify({ id: 'abcd1234' }), /Webhook body is invalid/],
    ['an id that could climb out of a key', JSON.stringify({ id: '../../etc', created_at: '1' }), /Webhook body is invalid/],
    ['an empty batch', JSON.stringify({ alerts: [] }), /Webhook body is invalid/],
    ['JSON null', 'null', /Webhook body is invalid/],
    ['a prototype key', '{"id":"abcd1234","created_at":"1","__proto__":{"x":1}}', /forbidden key/],
    ['deep nesting', '{"id":"abcd1234","created_at":"1","x":' + '['.repeat(64) + ']'.repeat(64) + '}', /nested too deeply/]
  ]
  for (const [what, message, expected] of cases) {
    const res = await postSNS(built.app, await signedMessage('Notification', { Message: message }))
    const error = assertError(t, res, 400, 'WebhookDataError')
    t.match(error.message, expected, what)
  }
  t.same(await listKeys(t, built.s3.endpoint), [], 'nothing archived')
})

t.test('SubscriptionConfirmation', async (t) => {
  t.test('is confirmed by a GET of its SubscribeURL on the SNS host, and answered 200', async (t) => {
    const built = await buildWithSNS(t, { env: { SNS_CERTS_DIR: await localCertsDir(t) } })
    const message = await signedMessage('SubscriptionConfirmation')
    const res = await postSNS(built.app, message)
    t.equal(res.statusCode, 200)
    t.match(res.headers['content-type'], /^application\/json/)
    t.same(res.json(), { success: true, archived: [], pending: [] })
    const subscribe = new URL(message.SubscribeURL ?? '')
    t.same(built.standIn.requests, [{ host: SNS_HOSTNAME, method: 'GET', url: `${subscribe.pathname}${subscribe.search}` }], 'one confirmation call')
    t.ok(built.logs.some((l) => l.msg === 'SNS subscription confirmed' && (l.sns as { topicArn?: string } | undefined)?.topicArn === TOPIC_ARN),
      'logged with its topic')
    t.same(await listKeys(t, built.s3.endpoint), [], 'nothing archived')
  })

  t.test('with a SubscribeURL on another host is a 403 and calls nothing', async (t) => {
    const built = await buildWithSNS(t, { env: { SNS_CERTS_DIR: await localCertsDir(t) } })
    for (const url of ['https://evil.example/?Action=ConfirmSubscription&Token=1', `http://${SNS_HOSTNAME}/?Action=ConfirmSubscription&Token=1`,
      `https://${SNS_HOSTNAME}@evil.example/?Action=ConfirmSubscription&Token=1`]) {
      const res = await postSNS(built.app, await signedMessage('SubscriptionConfirmation', { SubscribeURL: url }))
      assertError(t, res, 403, 'SNSSignatureError')
      t.notMatch(res.body, /evil/, 'the URL is not echoed')
    }
    t.same(built.standIn.connects, [], 'no connection attempted')
  })

  t.test('that SNS fails to confirm is a 503 with Retry-After, so that SNS delivers it again', async (t) => {
    const built = await buildWithSNS(t, { env: { SNS_CERTS_DIR: await localCertsDir(t) } })
    built.standIn.failWith = { status: 500, body: '<ErrorResponse><Error><Message>internal at sns.us-east-1.amazonaws.com</Message></Error></ErrorResponse>' }
    const res = await postSNS(built.app, await signedMessage('SubscriptionConfirmation'))
    assertError(t, res, 503, 'ServiceUnavailableError')
    t.ok(res.headers['retry-after'], 'Retry-After')
    t.notMatch(res.body, /amazonaws|ErrorResponse/, 'nothing of the SNS answer')
  })
})

t.test('UnsubscribeConfirmation is logged and answered 200; nothing is archived or called', async (t) => {
  const built = await buildWithSNS(t, { env: { SNS_CERTS_DIR: await localCertsDir(t) } })
  const res = await postSNS(built.app, await signedMessage('UnsubscribeConfirmation'))
  t.equal(res.statusCode, 200)
  t.same(res.json(), { success: true, archived: [], pending: [] })
  t.ok(built.logs.some((l) => l.msg === 'SNS subscription ended' && l.level === 30), 'logged at info')
  t.same(built.standIn.connects, [], 'no call')
  t.same(await listKeys(t, built.s3.endpoint), [])
  const tampered = await signedMessage('UnsubscribeConfirmation')
  assertError(t, await postSNS(built.app, { ...tampered, Token: changeByte(tampered.Token ?? '', 3) }), 403, 'SNSSignatureError')
})

t.test('a certificate URL off the SNS hosts is a 403 without any fetch', async (t) => {
  const built = await buildWithSNS(t)
  for (const url of [
    'https://sns.evil.com/SimpleNotificationService-0123456789abcdef0123456789abcdef.pem',
    'https://sns.us-east-1.amazonaws.com.evil.com/SimpleNotificationService-0123456789abcdef0123456789abcdef.pem',
    'https://sns.us-east-1.amazonaws.com@evil.com/x.pem',
    'http://sns.us-east-1.amazonaws.com/SimpleNotificationService-0123456789abcdef0123456789abcdef.pem',
    'https://sns.us-east-1.amazonaws.com:8443/SimpleNotificationService-0123456789abcdef0123456789abcdef.pem'
  ]) {
    const res = await postSNS(built.app, await signedMessage('Notification', { SigningCertURL: url, Message: JSON.stringify(BARE) }))
    assertError(t, res, 403, 'SNSSignatureError')
    t.notMatch(res.body, /evil|amazonaws|8443/, 'the URL is not echoed')
  }
  t.same(built.standIn.connects, [], 'no connection attempted')
  t.same(await listKeys(t, built.s3.endpoint), [], 'nothing archived')
})

t.test('SNS_TOPIC_ARNS: another topic is a 403, a listed one is archived', async (t) => {
  const listed = 'arn:aws:sns:us-east-1:123456789012:listed-topic'
  const built = await buildWithSNS(t, { env: { SNS_TOPIC_ARNS: listed, SNS_CERTS_DIR: await localCertsDir(t) } })
  built.threatstack.setAlert(BARE.id, { id: BARE.id })
  const res = await postSNS(built.app, await signedMessage('Notification', { Message: JSON.stringify(BARE) }))
  const error = assertError(t, res, 403, 'SNSSignatureError')
  t.equal(error.message, 'SNS topic is not allowed to deliver here')
  t.notMatch(res.body, /123456789012|threatstack-alerts/, 'the topic is not echoed')
  const confirm = await postSNS(built.app, await signedMessage('SubscriptionConfirmation'))
  assertError(t, confirm, 403, 'SNSSignatureError')
  t.same(built.standIn.connects, [], 'a foreign topic is not confirmed')
  const ok = await postSNS(built.app, await signedMessage('Notification', { TopicArn: listed, Message: JSON.stringify(BARE) }))
  t.equal(ok.statusCode, 200, 'the listed topic')
  t.same(ok.json(), { success: true, archived: [BARE.id], pending: [] })
})

t.test('SNS_ENABLED=false: every SNS message is a 400 SNSMessageInvalidError', async (t) => {
  const built = await buildWithSNS(t, { env: { SNS_ENABLED: 'false', SNS_CERTS_DIR: await localCertsDir(t) } })
  built.threatstack.setAlert(BARE.id, { id: BARE.id })
  for (const type of ['Notification', 'SubscriptionConfirmation', 'UnsubscribeConfirmation'] as const) {
    const res = await postSNS(built.app, await signedMessage(type, { Message: JSON.stringify(BARE) }))
    const error = assertError(t, res, 400, 'SNSMessageInvalidError')
    t.equal(error.message, 'SNS deliveries are not accepted by this service', type)
  }
  t.same(built.standIn.connects, [], 'nothing confirmed')
  t.same(await listKeys(t, built.s3.endpoint), [], 'nothing archived')
  const direct = await postAlerts(built.app, BARE)
  t.equal(direct.statusCode, 200, 'webhooks without the SNS header still work')
})

t.test('unknown types and malformed envelopes are a 400 SNSMessageInvalidError', async (t) => {
  const built = await buildWithSNS(t, { env: { SNS_CERTS_DIR: await localCertsDir(t) } })
  const good = await signedMessage('Notification', { Message: JSON.stringify(BARE) })
  const withoutSignature = Object.fromEntries(Object.entries(good).filter(([k]) => k !== 'Signature'))
  const cases: Array<[string, Record<string, string> | string, string | undefined]> = [
    ['an unknown type', { ...good, Type: 'Subscribe' }, 'Subscribe'],
    ['a header type other than the body type', good, 'UnsubscribeConfirmation'],
    ['no Signature', withoutSignature, undefined],
    ['SignatureVersion 3', { ...good, SignatureVersion: '3' }, undefined],
    ['a body that is not JSON', 'Type=Notification&Message=x', undefined],
    ['an empty body', '', undefined],
    ['a JSON array', '[]', undefined],
    ['a poisoned envelope', '{"Type":"Notification","__proto__":{"x":1}}', undefined]
  ]
  for (const [what, message, type] of cases) {
    const res = await postSNS(built.app, message, type === undefined ? {} : { type })
    const error = assertError(t, res, 400, 'SNSMessageInvalidError')
    t.match(error.message, /^SNS message/, what)
  }
  const res = await postSNS(built.app, withoutSignature)
  t.match(res.json(), { error: { details: ['/Signature Expected required property'] } }, 'details say which field')
  t.same(built.standIn.connects, [], 'nothing fetched')

  const plain = await postAlerts(built.app, 'not json', { contentType: 'text/plain' })
  assertError(t, plain, 400, 'WebhookDataError')
})

t.test('the ingest token applies to SNS deliveries too', async (t) => {
  const built = await buildWithSNS(t, { env: { SNS_CERTS_DIR: await localCertsDir(t) } })
  const message = await signedMessage('SubscriptionConfirmation')
  assertError(t, await postSNS(built.app, message, { token: null }), 401, 'AuthenticationError')
  assertError(t, await postSNS(built.app, message, { token: 'wrong-token-000000000000' }), 401, 'AuthenticationError')
  assertError(t, await postSNS(built.app, message, { token: TOKENS.read }), 403, 'AuthorizationError')
  t.same(built.standIn.connects, [], 'nothing confirmed before authentication')
  const res = await built.app.inject({
    method: 'POST',
    url: '/threatstack-to-s3/api/v1/s3/alert',
    headers: { ...BEARER.ingest, 'content-type': 'text/plain; charset=UTF-8', 'x-amz-sns-message-type': 'SubscriptionConfirmation' },
    payload: JSON.stringify(message)
  })
  t.equal(res.statusCode, 200, 'a bearer token, on the legacy prefix')
  t.equal(built.standIn.requests.length, 1, 'confirmed once')
})

t.test('a signed Notification cannot smuggle an alerts array inside a bare alert', async (t) => {
  const built = await buildWithSNS(t, { env: { SNS_CERTS_DIR: await localCertsDir(t) } })
  const bare = { id: 'carrier1', created_at: '1484521800000' }
  const cases: Array<[string, unknown, RegExp]> = [
    ['ids with ../ segments', [{ id: '../../../../escaped/xx', created_at: '1484521800000' }], /^\/alerts\/0\/id /],
    ['a non-string id', [{ id: 12345678, created_at: '1484521800000' }], /^\/alerts\/0\/id /],
    ['an empty array', [], /^\/alerts /],
    ['500 alerts', Array.from({ length: 500 }, (_, i) => ({ id: `many${String(i).padStart(4, '0')}`, created_at: '1484521800000' })), /^\/alerts /],
    ['created_at true', [{ id: 'boolean1', created_at: true }], /^\/alerts\/0\/created_at /]
  ]
  for (const [name, alerts, detail] of cases) {
    const res = await postSNS(built.app, await signedMessage('Notification', { Message: JSON.stringify({ ...bare, alerts }) }))
    const error = assertError(t, res, 400, 'WebhookDataError')
    t.ok(error.details?.some((d) => detail.test(d)), `${name}: a detail matches ${String(detail)}: ${JSON.stringify(error.details)}`)
  }
  t.same(await listKeys(t, built.s3.endpoint), [], 'nothing written')
  t.equal(built.threatstack.requests.length, 0, 'nothing fetched')
})

t.test('the records of a Notification are the bytes of its Message, exactly', async (t) => {
  const built = await buildWithSNS(t, { env: { SNS_CERTS_DIR: await localCertsDir(t) } })
  const bare = '{ "id" : "snsexact1",\n "created_at": "1484521800000", "big": 12345678901234567890, "t": "caf\\u00e9 é" }'
  const res = await postSNS(built.app, await signedMessage('Notification', { Message: `\n${bare}\n` }))
  t.equal(res.statusCode, 200)
  t.equal((await built.readObject('webhooks/2017/01/15/23/10/snsexact1'))?.body, bare)

  const first = '{"id":"snsexact2","created_at":1484521800000,"n":1e400}'
  const second = '{"created_at":"1484521800000",  "id":"snsexact3"}'
  const batch = await postSNS(built.app, await signedMessage('Notification', { Message: `{"alerts":[${first},\n${second}]}` }))
  t.equal(batch.statusCode, 200)
  t.same(batch.json(), { success: true, archived: ['snsexact2', 'snsexact3'], pending: [] })
  t.equal((await built.readObject('webhooks/2017/01/15/23/10/snsexact2'))?.body, first, '1e400 stays 1e400')
  t.equal((await built.readObject('webhooks/2017/01/15/23/10/snsexact3'))?.body, second)

  const dup = await postSNS(built.app, await signedMessage('Notification', { Message: '{"id":"snsdup01","created_at":"1","id":"snsdup02"}' }))
  const error = assertError(t, dup, 400, 'WebhookDataError')
  t.same(error.details, ['/ has the key "id" more than once; keys must be unique in every object'])

  const lone = await postSNS(built.app, await signedMessage('Notification', { Message: '{"id":"snslone1","created_at":"1","t":"\ud800"}' }))
  t.equal(assertError(t, lone, 400, 'WebhookDataError').message, 'SNS Message is not valid Unicode text')
  t.same((await listKeys(t, built.s3.endpoint)).filter((k) => k.startsWith('webhooks/')), [
    'webhooks/2017/01/15/23/10/snsexact1', 'webhooks/2017/01/15/23/10/snsexact2', 'webhooks/2017/01/15/23/10/snsexact3'
  ], 'nothing of the refused ones')
})
