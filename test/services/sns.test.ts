import t from 'tap'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import selfsigned from 'selfsigned'
import type { Agent } from 'undici'
import { loadConfig, type Config } from '../../config.js'
import {
  SNSMessageInvalidError, SNSSignatureError, ServiceError, ServiceUnavailableError, UnexpectedException, WebhookDataError
} from '../../errors/index.js'
import type { SNSMessage } from '../../schemas/sns.js'
import {
  closeSNSClient, createSNSClient, notificationBody, parseSNSMessage, receiveSNSMessage, signingCertUrl, snsUrl,
  stringToSign, verifySNSMessage, type SNSClient
} from '../../services/sns.js'
import {
  LOCAL_CERT_URL, SNS_HOSTNAME, TOPIC_ARN, certFileName, changeByte, fixtureCertsDir, localSigner,
  readFixture, signMessage, signedFields, signedMessage, snsFields, startSNSStandIn, tempDir, type SNSFields, type SNSStandIn
} from '../helpers/sns.js'

/** A tap test, as a subtest callback receives it. */
type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

const FIXTURES = ['notification-sigv1.json', 'notification-sigv2.json'] as const

function snsConfig (overrides: Partial<Config['sns']> = {}): Config['sns'] {
  return { enabled: true, ...overrides }
}

/** A client whose every outgoing call goes to the stand-in. */
async function client (t: Tap, overrides: Partial<Config['sns']> = {}, cacheSize?: number): Promise<{ sns: SNSClient, standIn: SNSStandIn }> {
  const standIn = await startSNSStandIn(t)
  const sns = createSNSClient(snsConfig(overrides), { dispatcher: standIn.dispatcher, ...(cacheSize !== undefined && { cacheSize }) })
  t.teardown(async () => closeSNSClient(sns))
  return { sns, standIn }
}

/** Asserts that `promise` rejects with exactly `type`, and returns the error. */
async function rejectsWith (t: Tap, promise: Promise<unknown>, type: new (...args: never[]) => ServiceError, what: string): Promise<ServiceError | undefined> {
  try {
    await promise
    t.fail(`${what}: expected ${type.name}, got success`)
    return undefined
  } catch (err) {
    t.equal((err as Error).constructor, type, `${what}: ${type.name}`)
    return err as ServiceError
  }
}

function throwsWith (t: Tap, fn: () => unknown, type: new (...args: never[]) => ServiceError, what: string): ServiceError | undefined {
  try {
    fn()
    t.fail(`${what}: expected ${type.name}, got success`)
    return undefined
  } catch (err) {
    t.equal((err as Error).constructor, type, `${what}: ${type.name}`)
    return err as ServiceError
  }
}

t.test('the string to sign follows SNS order and includes Subject only when present', async (t) => {
  const base = { MessageId: 'id', TopicArn: 'arn', Message: 'm', Timestamp: 'ts', SignatureVersion: '1', Signature: 's', SigningCertURL: 'u' } as const
  t.equal(stringToSign({ ...base, Type: 'Notification' }), 'Message\nm\nMessageId\nid\nTimestamp\nts\nTopicArn\narn\nType\nNotification\n')
  t.equal(stringToSign({ ...base, Type: 'Notification', Subject: 'sub' }),
    'Message\nm\nMessageId\nid\nSubject\nsub\nTimestamp\nts\nTopicArn\narn\nType\nNotification\n')
  t.equal(stringToSign({ ...base, Type: 'SubscriptionConfirmation', SubscribeURL: 'url', Token: 'tok' }),
    'Message\nm\nMessageId\nid\nSubscribeURL\nurl\nTimestamp\nts\nToken\ntok\nTopicArn\narn\nType\nSubscriptionConfirmation\n')
  t.equal(stringToSign({ ...base, Type: 'UnsubscribeConfirmation', SubscribeURL: 'url', Token: 'tok' }),
    'Message\nm\nMessageId\nid\nSubscribeURL\nurl\nTimestamp\nts\nToken\ntok\nTopicArn\narn\nType\nUnsubscribeConfirmation\n')
})

t.test('the notifications signed by AWS verify with the certificate from SNS_CERTS_DIR, and fail as webhook data', async (t) => {
  const { sns, standIn } = await client(t, { certsDir: await fixtureCertsDir(t) })
  for (const name of FIXTURES) {
    const fixture = await readFixture(name)
    const message = parseSNSMessage(sns, fixture, 'Notification')
    await t.resolves(verifySNSMessage(sns, message), `${name} verifies`)
    const err = await rejectsWith(t, receiveSNSMessage(sns, fixture, 'Notification'), WebhookDataError, `${name}: "Hello world" is not JSON`)
    t.type(err?.cause, SyntaxError, 'the parse error is the cause')
  }
  t.same(standIn.connects, [], 'the certificate was not fetched')
})

t.test('changing any byte of any signed field of the AWS fixtures fails verification', async (t) => {
  const { sns } = await client(t, { certsDir: await fixtureCertsDir(t) })
  for (const name of FIXTURES) {
    const fixture = await readFixture(name)
    const fields = signedFields(fixture)
    t.same(fields, name === 'notification-sigv1.json'
      ? ['Message', 'MessageId', 'Timestamp', 'TopicArn', 'Type']
      : ['Message', 'MessageId', 'Subject', 'Timestamp', 'TopicArn', 'Type'], `${name}: the signed fields present`)
    let changed = 0
    let refused = 0
    for (const field of fields) {
      const value = fixture[field] ?? ''
      for (let i = 0; i < Buffer.byteLength(value); i++) {
        const tampered = { ...fixture, [field]: changeByte(value, i) } as unknown as SNSMessage
        changed++
        try {
          await verifySNSMessage(sns, tampered)
        } catch (err) {
          if (err instanceof SNSSignatureError) refused++
        }
      }
    }
    t.ok(changed > 150, `${name}: ${changed} single-byte changes tried`)
    t.equal(refused, changed, `${name}: every one refused with SNSSignatureError`)
  }
})

t.test('a signature that is changed, swapped to the other version, or for other fields fails', async (t) => {
  const { sns } = await client(t, { certsDir: await fixtureCertsDir(t) })
  const v1 = await readFixture('notification-sigv1.json')
  const v2 = await readFixture('notification-sigv2.json')
  const cases: Array<[string, SNSFields]> = [
    ['a byte of the signature changed', { ...v1, Signature: Buffer.from(Buffer.from(v1.Signature ?? '', 'base64').map((b, i) => i === 10 ? b ^ 1 : b)).toString('base64') }],
    ['the signature truncated', { ...v2, Signature: (v2.Signature ?? '').slice(0, 100) }],
    ['SignatureVersion 1 claimed for a SHA256 signature', { ...v2, SignatureVersion: '1' }],
    ['SignatureVersion 2 claimed for a SHA1 signature', { ...v1, SignatureVersion: '2' }],
    ['a Subject added', { ...v1, Subject: 'Hello world' }],
    ['the Subject removed', Object.fromEntries(Object.entries(v2).filter(([k]) => k !== 'Subject'))],
    ['the signature of the other fixture', { ...v1, Signature: v2.Signature ?? '' }]
  ]
  for (const [what, fields] of cases) {
    await rejectsWith(t, receiveSNSMessage(sns, fields, 'Notification'), SNSSignatureError, what)
  }
  // The controls: the same path accepts the untouched fixtures (up to the Message).
  await rejectsWith(t, receiveSNSMessage(sns, v1, 'Notification'), WebhookDataError, 'control v1')
  await rejectsWith(t, receiveSNSMessage(sns, v2, 'Notification'), WebhookDataError, 'control v2')
})

t.test('certificate and subscription URLs: only HTTPS on an SNS host', async (t) => {
  const accepted = [
    'https://sns.us-east-2.amazonaws.com/SimpleNotificationService-7ff5318490ec183fbaddaa2a969abfda.pem',
    'https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc.pem',
    'https://sns.us-gov-west-1.amazonaws.com/SimpleNotificationService-abc.pem',
    'https://sns.us-east-1.amazonaws.com:443/SimpleNotificationService-abc.pem'
  ]
  for (const url of accepted) t.ok(signingCertUrl(url), `accepted: ${url}`)
  const refused = [
    'http://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem',
    'https://sns.evil.com/SimpleNotificationService-abc.pem',
    'https://evil.com/SimpleNotificationService-abc.pem',
    'https://sns.us-east-1.amazonaws.com.evil.com/SimpleNotificationService-abc.pem',
    'https://sns.us-east-1.amazonaws.com@evil.com/x.pem',
    'https://user:pass@sns.us-east-1.amazonaws.com/x.pem',
    'https://sns.us-east-1.amazonaws.com:8443/x.pem',
    'https://sns.us-east-1.amazonaws.com./x.pem',
    'https://sns.us.amazonaws.com/x.pem',
    'https://sns.us_east.amazonaws.com/x.pem',
    'https://sns.a.b.amazonaws.com/x.pem',
    'https://xsns.us-east-1.amazonaws.com/x.pem',
    'https://sns.us-east-1.amazonaws.co/x.pem',
    'https://sns.us-east-1.amazonaws.com.cn.evil.com/x.pem',
    'https://evil.com\\@sns.us-east-1.amazonaws.com/x.pem',
    'https://evil.com#@sns.us-east-1.amazonaws.com/x.pem',
    'https://sns.us-east-1.amazonaws.com/x.pem#fragment',
    'https://sns.us-east-1.amazonaws.com/x.pem?query',
    'https://sns.us-east-1.amazonaws.com/x.txt',
    'https://52.94.1.1/x.pem',
    'file:///etc/ssl/x.pem',
    '//sns.us-east-1.amazonaws.com/x.pem',
    'not a url'
  ]
  for (const url of refused) t.equal(signingCertUrl(url), undefined, `refused: ${url}`)
  t.ok(snsUrl(`https://${SNS_HOSTNAME}/?Action=ConfirmSubscription&TopicArn=${TOPIC_ARN}&Token=abc`), 'a SubscribeURL may carry a query')
  t.equal(snsUrl('https://example.com/?Action=ConfirmSubscription'), undefined, 'not on another host')
  t.equal(snsUrl(`http://${SNS_HOSTNAME}/?Action=ConfirmSubscription`), undefined, 'not over http')
})

t.test('a signing certificate elsewhere than an SNS host over HTTPS is refused without any fetch', async (t) => {
  const { sns, standIn } = await client(t)
  const { key } = await localSigner()
  const urls = [
    'http://sns.us-east-1.amazonaws.com/SimpleNotificationService-0123456789abcdef0123456789abcdef.pem',
    'https://sns.evil.com/SimpleNotificationService-0123456789abcdef0123456789abcdef.pem',
    'https://sns.us-east-1.amazonaws.com.evil.com/SimpleNotificationService-0123456789abcdef0123456789abcdef.pem',
    'https://sns.us-east-1.amazonaws.com@evil.com/x.pem',
    'https://127.0.0.1/SimpleNotificationService-0123456789abcdef0123456789abcdef.pem'
  ]
  for (const url of urls) {
    // Each validly signed by the key of the certificate it names.
    const message = signMessage(snsFields('Notification', { SigningCertURL: url }), key)
    const err = await rejectsWith(t, receiveSNSMessage(sns, message, 'Notification'), SNSSignatureError, url)
    t.notMatch(err?.message ?? '', /evil|127\.0\.0\.1|amazonaws/, 'the message names no host')
  }
  t.same(standIn.connects, [], 'no connection attempted')
  t.same(standIn.requests, [], 'no request made')
  // The control: the same message on the SNS host is fetched and verifies.
  const good = await signedMessage('Notification')
  await t.resolves(receiveSNSMessage(sns, good, 'Notification'))
  t.same(standIn.connects, [SNS_HOSTNAME], 'the SNS host, and only it, was connected to')
})

t.test('a certificate not in SNS_CERTS_DIR is fetched over HTTPS from its host, then cached', async (t) => {
  const { sns, standIn } = await client(t, { certsDir: await tempDir(t) })
  for (const version of ['1', '2']) {
    const message = await signedMessage('Notification', { SignatureVersion: version, Message: `{"version":${version}}` })
    const delivery = await receiveSNSMessage(sns, message, 'Notification')
    t.same(delivery, { type: 'Notification', topicArn: TOPIC_ARN, messageId: message.MessageId, body: { version: Number(version) }, text: `{"version":${version}}` },
      `SignatureVersion ${version}`)
  }
  const certPath = new URL(LOCAL_CERT_URL).pathname
  t.same(standIn.requests, [{ host: SNS_HOSTNAME, method: 'GET', url: certPath }], 'one fetch for both messages')
  t.equal(sns.certs.size, 1)

  // A message signed by another key under the same URL fails: the cached key is the one used.
  const other = await selfsigned.generate([{ name: 'commonName', value: SNS_HOSTNAME }], { keySize: 2048, algorithm: 'sha256' })
  await rejectsWith(t, receiveSNSMessage(sns, signMessage(snsFields('Notification'), other.private), 'Notification'), SNSSignatureError, 'another key')
  t.equal(standIn.requests.length, 1, 'still one fetch')
})

t.test('the certificate cache is bounded and keeps the most recently used', async (t) => {
  const { sns, standIn } = await client(t, {}, 2)
  const { cert } = await localSigner()
  const urls = ['a', 'b', 'c'].map((s) => `https://${SNS_HOSTNAME}/SimpleNotificationService-${s}.pem`)
  for (const url of urls) standIn.certificates.set(new URL(url).pathname, cert)
  const send = async (i: number): Promise<void> => {
    await receiveSNSMessage(sns, await signedMessage('Notification', { SigningCertURL: urls[i] }), 'Notification')
  }
  await send(0)
  await send(1)
  await send(0) // a is now the most recent
  await send(2) // evicts b
  t.equal(sns.certs.size, 2)
  await send(0)
  t.equal(standIn.requests.length, 3, 'a, b and c fetched once each so far')
  await send(1)
  t.equal(standIn.requests.length, 4, 'b was evicted and is fetched again')
})

t.test('SNS_CERTS_DIR is only looked up by SNS certificate file names', async (t) => {
  const { cert } = await localSigner()
  const parent = await tempDir(t, { 'SimpleNotificationService-outside.pem': cert })
  const dir = join(parent, 'certs')
  await mkdir(dir)
  await writeFile(join(dir, 'SimpleNotificationService-inside.pem'), cert)
  const { sns, standIn } = await client(t, { certsDir: dir })

  await t.resolves(receiveSNSMessage(sns, await signedMessage('Notification', {
    SigningCertURL: `https://${SNS_HOSTNAME}/SimpleNotificationService-inside.pem`
  }), 'Notification'), 'a certificate in the folder is used')
  t.same(standIn.requests, [], 'without a fetch')

  for (const path of ['/%2E%2E%2FSimpleNotificationService-outside.pem', '/..%2FSimpleNotificationService-outside.pem', '/certs/..%2f..%2fSimpleNotificationService-outside.pem']) {
    const message = await signedMessage('Notification', { SigningCertURL: `https://${SNS_HOSTNAME}${path}` })
    await rejectsWith(t, receiveSNSMessage(sns, message, 'Notification'), SNSSignatureError, `${path} is not read from outside the folder`)
  }
  t.equal(standIn.requests.length, 3, 'those names were asked of the SNS host instead (which has no such certificate)')
})

t.test('SNS_CERTS_DIR: a file not named as SNS names certificates is not used', async (t) => {
  const { cert } = await localSigner()
  const { sns, standIn } = await client(t, { certsDir: await tempDir(t, { 'signing.pem': cert, 'SimpleNotificationService-ok.pem': cert }) })
  const named = await signedMessage('Notification', { SigningCertURL: `https://${SNS_HOSTNAME}/SimpleNotificationService-ok.pem` })
  await t.resolves(receiveSNSMessage(sns, named, 'Notification'), 'the control: an SNS file name is read')
  const other = await signedMessage('Notification', { SigningCertURL: `https://${SNS_HOSTNAME}/signing.pem` })
  await rejectsWith(t, receiveSNSMessage(sns, other, 'Notification'), SNSSignatureError, 'another name is asked of the host, which has no such certificate')
  t.same(standIn.requests.map((r) => r.url), ['/signing.pem'])
})

t.test('an SNS_CERTS_DIR entry that cannot be read is a server fault, not a refused message', async (t) => {
  const dir = await tempDir(t)
  await mkdir(join(dir, certFileName(LOCAL_CERT_URL)))
  const { sns, standIn } = await client(t, { certsDir: dir })
  const err = await rejectsWith(t, receiveSNSMessage(sns, await signedMessage('Notification'), 'Notification'), UnexpectedException, 'a folder in place of the file')
  t.equal((err?.cause as { code?: string } | undefined)?.code, 'EISDIR')
  t.same(standIn.requests, [], 'not fetched instead')
})

t.test('certificate fetch failures', async (t) => {
  t.test('not found or not a certificate: SNSSignatureError', async (t) => {
    const { sns, standIn } = await client(t)
    standIn.failWith = { status: 404, body: 'Not Found' }
    const err = await rejectsWith(t, receiveSNSMessage(sns, await signedMessage('Notification'), 'Notification'), SNSSignatureError, '404')
    t.match(String((err?.cause as Error | undefined)?.message), /answered 404/, 'the answer is in the cause, for the log')
    standIn.failWith = { status: 200, body: 'not a certificate' }
    await rejectsWith(t, receiveSNSMessage(sns, await signedMessage('Notification'), 'Notification'), SNSSignatureError, 'not a PEM')
    standIn.failWith = { status: 200, body: 'x'.repeat(70 * 1024) }
    await rejectsWith(t, receiveSNSMessage(sns, await signedMessage('Notification'), 'Notification'), SNSSignatureError, 'over the size cap')
    standIn.failWith = { status: 302, body: '' }
    await rejectsWith(t, receiveSNSMessage(sns, await signedMessage('Notification'), 'Notification'), SNSSignatureError, 'a redirect is not followed')
    t.equal(standIn.requests.length, 4, 'each failure fetched once: failures are not cached')
  })

  t.test('host failing or unreachable: ServiceUnavailableError, then a later message fetches again', async (t) => {
    const { sns, standIn } = await client(t)
    standIn.failWith = { status: 503, body: 'Service Unavailable' }
    const err = await rejectsWith(t, receiveSNSMessage(sns, await signedMessage('Notification'), 'Notification'), ServiceUnavailableError, '503')
    t.ok(err?.retryAfterSeconds, 'with a Retry-After')
    standIn.failWith = undefined
    await t.resolves(receiveSNSMessage(sns, await signedMessage('Notification'), 'Notification'), 'the next message fetches it')
    t.equal(standIn.requests.length, 2)
  })

  t.test('a host whose TLS certificate is not trusted: ServiceUnavailableError', async (t) => {
    const { sns } = await client(t)
    // The stand-in's TLS certificate is for sns.us-east-1 only: for another SNS host, TLS fails.
    const message = await signedMessage('Notification', { SigningCertURL: 'https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-a.pem' })
    const err = await rejectsWith(t, receiveSNSMessage(sns, message, 'Notification'), ServiceUnavailableError, 'TLS failure')
    t.match(String((err?.cause as { code?: string } | undefined)?.code), /CERT|ALTNAME/, 'a certificate error is the cause')
  })
})

t.test('topics outside SNS_TOPIC_ARNS are refused before any fetch', async (t) => {
  const { sns, standIn } = await client(t, { topicArns: ['arn:aws:sns:us-east-1:123456789012:other-topic'] })
  await rejectsWith(t, receiveSNSMessage(sns, await signedMessage('Notification'), 'Notification'), SNSSignatureError, 'another topic')
  await rejectsWith(t, receiveSNSMessage(sns, await signedMessage('SubscriptionConfirmation'), 'SubscriptionConfirmation'), SNSSignatureError, 'a confirmation for another topic')
  t.same(standIn.connects, [], 'nothing fetched, nothing confirmed')
  const allowed = await signedMessage('Notification', { TopicArn: 'arn:aws:sns:us-east-1:123456789012:other-topic' })
  await t.resolves(receiveSNSMessage(sns, allowed, 'Notification'), 'the listed topic is accepted')
})

t.test('SubscriptionConfirmation: a GET of SubscribeURL on an SNS host, and no other', async (t) => {
  t.test('confirmed', async (t) => {
    const { sns, standIn } = await client(t)
    const message = await signedMessage('SubscriptionConfirmation')
    t.same(await receiveSNSMessage(sns, message, 'SubscriptionConfirmation'),
      { type: 'SubscriptionConfirmation', topicArn: TOPIC_ARN, messageId: message.MessageId })
    const subscribe = new URL(message.SubscribeURL ?? '')
    t.same(standIn.requests.map((r) => `${r.method} ${r.host ?? ''}${r.url}`), [
      `GET ${SNS_HOSTNAME}${new URL(LOCAL_CERT_URL).pathname}`,
      `GET ${SNS_HOSTNAME}${subscribe.pathname}${subscribe.search}`
    ], 'the certificate, then the SubscribeURL exactly')
  })

  t.test('a SubscribeURL elsewhere is never called', async (t) => {
    const { sns, standIn } = await client(t)
    for (const url of [
      'https://example.com/?Action=ConfirmSubscription&Token=abc',
      `http://${SNS_HOSTNAME}/?Action=ConfirmSubscription&Token=abc`,
      `https://${SNS_HOSTNAME}@evil.com/?Action=ConfirmSubscription`,
      `https://${SNS_HOSTNAME}.evil.com/?Action=ConfirmSubscription`,
      `https://${SNS_HOSTNAME}:8443/?Action=ConfirmSubscription`,
      'https://127.0.0.1/?Action=ConfirmSubscription'
    ]) {
      await rejectsWith(t, receiveSNSMessage(sns, await signedMessage('SubscriptionConfirmation', { SubscribeURL: url }), 'SubscriptionConfirmation'),
        SNSSignatureError, url)
    }
    t.same(standIn.connects, [], 'no connection at all')
  })

  t.test('a confirmation whose signature fails is not confirmed', async (t) => {
    const { sns, standIn } = await client(t)
    const message = await signedMessage('SubscriptionConfirmation')
    await rejectsWith(t, receiveSNSMessage(sns, { ...message, Token: changeByte(message.Token ?? '', 0) }, 'SubscriptionConfirmation'),
      SNSSignatureError, 'Token changed')
    await rejectsWith(t, receiveSNSMessage(sns, { ...message, SubscribeURL: `${message.SubscribeURL ?? ''}&x=1` }, 'SubscriptionConfirmation'),
      SNSSignatureError, 'SubscribeURL changed')
    t.same(standIn.requests.map((r) => r.url), [new URL(LOCAL_CERT_URL).pathname], 'only the certificate was fetched')
  })

  t.test('SNS failing to confirm: ServiceUnavailableError', async (t) => {
    const { sns, standIn } = await client(t, { certsDir: await tempDir(t, { [certFileName(LOCAL_CERT_URL)]: (await localSigner()).cert }) })
    standIn.failWith = { status: 500, body: '<Error/>' }
    await rejectsWith(t, receiveSNSMessage(sns, await signedMessage('SubscriptionConfirmation'), 'SubscriptionConfirmation'), ServiceUnavailableError, '500')
    t.equal(standIn.requests.length, 1, 'one confirmation call')
  })

  t.test('SNS unreachable for the confirmation: ServiceUnavailableError', async (t) => {
    const { sns, standIn } = await client(t, { certsDir: await tempDir(t, { [certFileName(LOCAL_CERT_URL)]: (await localSigner()).cert }) })
    // The stand-in's TLS certificate is for sns.us-east-1 only: the call to another SNS host fails.
    const message = await signedMessage('SubscriptionConfirmation', { SubscribeURL: 'https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=abc' })
    await rejectsWith(t, receiveSNSMessage(sns, message, 'SubscriptionConfirmation'), ServiceUnavailableError, 'TLS failure')
    t.same(standIn.connects, ['sns.eu-west-1.amazonaws.com'], 'the SNS host was tried')
  })

  t.test('UnsubscribeConfirmation is verified and calls nothing', async (t) => {
    const { sns, standIn } = await client(t, { certsDir: await tempDir(t, { [certFileName(LOCAL_CERT_URL)]: (await localSigner()).cert }) })
    const message = await signedMessage('UnsubscribeConfirmation')
    t.same(await receiveSNSMessage(sns, message, 'UnsubscribeConfirmation'),
      { type: 'UnsubscribeConfirmation', topicArn: TOPIC_ARN, messageId: message.MessageId })
    t.same(standIn.connects, [], 'no call')
    await rejectsWith(t, receiveSNSMessage(sns, { ...message, Message: 'changed' }, 'UnsubscribeConfirmation'), SNSSignatureError, 'tampered')
  })
})

t.test('envelopes that are off, of an unknown type or malformed: SNSMessageInvalidError', async (t) => {
  const { sns, standIn } = await client(t)
  const off = createSNSClient(snsConfig({ enabled: false }), { dispatcher: standIn.dispatcher })
  const good = await signedMessage('Notification')
  throwsWith(t, () => parseSNSMessage(off, good, 'Notification'), SNSMessageInvalidError, 'SNS off')
  t.ok(parseSNSMessage(sns, good, 'Notification'), 'the control parses')

  const cases: Array<[string, unknown, string]> = [
    ['unknown header type', { ...good, Type: 'Foo' }, 'Foo'],
    ['a header type of another case', good, 'notification'],
    ['the body type differs from the header', good, 'SubscriptionConfirmation'],
    ['an array', [good], 'Notification'],
    ['a string', JSON.stringify(good), 'Notification'],
    ['null', null, 'Notification'],
    ['SignatureVersion 3', { ...good, SignatureVersion: '3' }, 'Notification'],
    ['SignatureVersion as a number', { ...good, SignatureVersion: 2 }, 'Notification'],
    ['Signature not base64', { ...good, Signature: 'not base64!' }, 'Notification'],
    ['Message as an object', { ...good, Message: { id: 'x' } }, 'Notification'],
    ['TopicArn not an SNS ARN', { ...good, TopicArn: 'arn:aws:s3:::bucket' }, 'Notification'],
    ['Subject as a number', { ...good, Subject: 1 }, 'Notification'],
    ['a confirmation without Token', snsFields('SubscriptionConfirmation', { Token: undefined, Signature: 'AAAA' }), 'SubscriptionConfirmation'],
    ['a confirmation without SubscribeURL', snsFields('UnsubscribeConfirmation', { SubscribeURL: undefined, Signature: 'AAAA' }), 'UnsubscribeConfirmation']
  ]
  for (const field of ['MessageId', 'TopicArn', 'Message', 'Timestamp', 'SignatureVersion', 'Signature', 'SigningCertURL', 'Type']) {
    cases.push([`without ${field}`, Object.fromEntries(Object.entries(good).filter(([k]) => k !== field)), 'Notification'])
  }
  for (const [what, body, header] of cases) {
    const err = throwsWith(t, () => parseSNSMessage(sns, body, header), SNSMessageInvalidError, what)
    t.equal(err?.statusCode, 400)
  }
  const err = throwsWith(t, () => parseSNSMessage(sns, { ...good, Signature: 42 }, 'Notification'), SNSMessageInvalidError, 'details')
  t.match(err?.details, [/^\/Signature /], 'details name the field')
  const mismatch = throwsWith(t, () => parseSNSMessage(sns, good, 'SubscriptionConfirmation'), SNSMessageInvalidError, 'type mismatch')
  t.same(mismatch?.details, ['/Type must be the x-amz-sns-message-type header'])
  const unknown = throwsWith(t, () => parseSNSMessage(sns, good, 'Foo'), SNSMessageInvalidError, 'unknown type')
  t.equal(unknown?.message, 'SNS message type is unknown')
  t.same(standIn.connects, [], 'nothing fetched for any of them')
})

t.test('a Notification Message is parsed as JSON, refusing prototype keys and deep nesting', async (t) => {
  const parse = (message: string): unknown => notificationBody({ ...snsFields('Notification'), Message: message } as unknown as Parameters<typeof notificationBody>[0])
  t.same(parse('{"alerts":[{"id":"abcd1234","created_at":"1484521800000"}]}'), { alerts: [{ id: 'abcd1234', created_at: '1484521800000' }] })
  t.same(parse('{"id":"abcd1234","created_at":1}'), { id: 'abcd1234', created_at: 1 })
  for (const [what, message] of [
    ['not JSON', 'Hello world'],
    ['empty', ''],
    ['__proto__', '{"id":"abcd1234","__proto__":{"polluted":true}}'],
    ['constructor.prototype', '{"constructor":{"prototype":{"polluted":true}}}'],
    ['nested too deeply', '['.repeat(100) + ']'.repeat(100)]
  ]) {
    throwsWith(t, () => parse(message ?? ''), WebhookDataError, what ?? '')
  }
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype was polluted')
})

t.test('the client closes the pool it made, not one it was given', async (t) => {
  const own = createSNSClient(snsConfig())
  t.equal(own.ownsDispatcher, true)
  await closeSNSClient(own)
  t.equal((own.dispatcher as Agent).closed, true)
  const { sns, standIn } = await client(t)
  await closeSNSClient(sns)
  t.equal(standIn.dispatcher.closed, false, 'a given dispatcher stays open for its owner')
})

t.test('config: SNS variables reach the client', async (t) => {
  const config = loadConfig({
    TS_AWS_S3_BUCKET: 'bucket-name',
    THREATSTACK_API_KEY: 'key',
    AUTH_MODE: 'none',
    SNS_TOPIC_ARNS: `${TOPIC_ARN}, arn:aws:sns:us-east-1:123456789012:second`,
    SNS_CERTS_DIR: '/etc/sns-certs'
  })
  const sns = createSNSClient(config.sns)
  t.teardown(async () => closeSNSClient(sns))
  t.equal(sns.enabled, true)
  t.same([...(sns.topicArns ?? [])], [TOPIC_ARN, 'arn:aws:sns:us-east-1:123456789012:second'])
  t.equal(sns.certsDir, '/etc/sns-certs')
  t.equal(createSNSClient({ enabled: true }, { dispatcher: sns.dispatcher }).topicArns, undefined, 'no list: any topic')
})
