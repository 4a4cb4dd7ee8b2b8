// AWS SNS in tests: the fixtures signed by AWS, a locally made signing certificate, messages
// signed with it, an HTTPS stand-in for SNS on 127.0.0.1, and the app built to reach it.
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { randomUUID, sign } from 'node:crypto'
import { once } from 'node:events'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Agent, buildConnector } from 'undici'
import selfsigned from 'selfsigned'
import { TOKENS, build, type Built } from './build.js'

type Tap = { teardown: (fn: () => unknown) => void }

/** AWS's signed SNS vectors, kept in the repository (test/fixtures/README.md says where they come from). */
export const FIXTURES_DIR = fileURLToPath(new URL('../fixtures/sns/', import.meta.url))

export type SNSFields = Record<string, string>

export async function readFixture (name: 'notification-sigv1.json' | 'notification-sigv2.json'): Promise<SNSFields> {
  return JSON.parse(await readFile(join(FIXTURES_DIR, name), 'utf8')) as SNSFields
}

export async function fixtureCertificate (): Promise<string> {
  return await readFile(join(FIXTURES_DIR, 'signing-cert.pem'), 'utf8')
}

/** The last path segment of a certificate URL: the file name SNS_CERTS_DIR holds it under. */
export function certFileName (certUrl: string): string {
  const path = new URL(certUrl).pathname
  return path.slice(path.lastIndexOf('/') + 1)
}

/** A temporary folder holding `files` (name -> content), removed at teardown. */
export async function tempDir (t: Tap, files: Record<string, string> = {}): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ts2s3-sns-'))
  t.teardown(async () => rm(dir, { recursive: true, force: true }))
  for (const [name, content] of Object.entries(files)) await writeFile(join(dir, name), content)
  return dir
}

/** A folder with the AWS fixture certificate under the name its SigningCertURL gives. */
export async function fixtureCertsDir (t: Tap): Promise<string> {
  const { SigningCertURL } = await readFixture('notification-sigv1.json')
  return await tempDir(t, { [certFileName(SigningCertURL ?? '')]: await fixtureCertificate() })
}

export const SNS_HOSTNAME = 'sns.us-east-1.amazonaws.com'
export const LOCAL_CERT_URL = `https://${SNS_HOSTNAME}/SimpleNotificationService-0123456789abcdef0123456789abcdef.pem`
export const TOPIC_ARN = 'arn:aws:sns:us-east-1:123456789012:threatstack-alerts'

export interface Signer {
  /** PEM private key. */
  key: string
  /** PEM certificate, for the SNS host name: it signs messages and serves the stand-in's TLS. */
  cert: string
}

let signer: Promise<Signer> | undefined

/** A self-signed certificate for sns.us-east-1.amazonaws.com and its key, made once per process. */
export async function localSigner (): Promise<Signer> {
  signer ??= selfsigned.generate([{ name: 'commonName', value: SNS_HOSTNAME }], {
    keySize: 2048,
    algorithm: 'sha256',
    extensions: [
      { name: 'basicConstraints', cA: true },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, keyCertSign: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: [{ type: 2, value: SNS_HOSTNAME }] }
    ]
  }).then((pems) => ({ key: pems.private, cert: pems.cert }))
  return await signer
}

// The fields SNS signs, in its order (AWS documentation, "Verifying the signatures of Amazon SNS messages").
const SIGNED = {
  Notification: ['Message', 'MessageId', 'Subject', 'Timestamp', 'TopicArn', 'Type'],
  SubscriptionConfirmation: ['Message', 'MessageId', 'SubscribeURL', 'Timestamp', 'Token', 'TopicArn', 'Type'],
  UnsubscribeConfirmation: ['Message', 'MessageId', 'SubscribeURL', 'Timestamp', 'Token', 'TopicArn', 'Type']
}

export type SNSType = keyof typeof SIGNED

/** The fields of `type` that are signed and present in `fields`. */
export function signedFields (fields: SNSFields): string[] {
  return (SIGNED[fields.Type as SNSType] ?? []).filter((name) => fields[name] !== undefined)
}

/** `fields` with a Signature made with `key` (SignatureVersion 1: SHA1, 2: SHA256). */
export function signMessage (fields: SNSFields, key: string): SNSFields {
  const text = signedFields(fields).map((name) => `${name}\n${fields[name] ?? ''}\n`).join('')
  const algorithm = fields.SignatureVersion === '1' ? 'sha1' : 'sha256'
  return { ...fields, Signature: sign(algorithm, Buffer.from(text, 'utf8'), key).toString('base64') }
}

/** An unsigned SNS message of `type`, with `overrides` applied (undefined deletes a field). */
export function snsFields (type: SNSType, overrides: Record<string, string | undefined> = {}): SNSFields {
  const token = randomUUID().replace(/-/g, '')
  const fields: Record<string, string | undefined> = {
    Type: type,
    MessageId: randomUUID(),
    TopicArn: TOPIC_ARN,
    Message: type === 'Notification' ? '{}' : `You have chosen to subscribe to the topic ${TOPIC_ARN}.`,
    Timestamp: '2024-05-01T12:00:00.000Z',
    SignatureVersion: '2',
    SigningCertURL: LOCAL_CERT_URL,
    ...(type === 'Notification'
      ? { UnsubscribeURL: `https://${SNS_HOSTNAME}/?Action=Unsubscribe&SubscriptionArn=${TOPIC_ARN}:${token}` }
      : { SubscribeURL: `https://${SNS_HOSTNAME}/?Action=ConfirmSubscription&TopicArn=${TOPIC_ARN}&Token=${token}`, Token: token }),
    ...overrides
  }
  return Object.fromEntries(Object.entries(fields).filter((e): e is [string, string] => e[1] !== undefined))
}

/** A message of `type` signed with the local signer. */
export async function signedMessage (type: SNSType, overrides: Record<string, string | undefined> = {}): Promise<SNSFields> {
  return signMessage(snsFields(type, overrides), (await localSigner()).key)
}

/** `value` with its byte at `index` changed (to another printable character). */
export function changeByte (value: string, index: number): string {
  const bytes = Buffer.from(value, 'utf8')
  bytes[index] = bytes[index] === 0x41 ? 0x42 : 0x41
  return bytes.toString('utf8')
}

export interface StandInRequest { host: string | undefined, method: string, url: string }

export interface SNSStandIn {
  /** Requests that reached the stand-in, in order. */
  requests: StandInRequest[]
  /** Host names the dispatcher was asked to connect to: any connection attempt at all. */
  connects: string[]
  /** Routes every connection to the stand-in and trusts its certificate. */
  dispatcher: Agent
  /** Certificates served by path (e.g. /SimpleNotificationService-….pem). */
  certificates: Map<string, string>
  /** Answers every request with this status and body instead, while set. */
  failWith: { status: number, body: string } | undefined
}

/**
 * An HTTPS server on 127.0.0.1 standing in for SNS: it serves signing certificates and answers
 * confirmation calls. Its dispatcher sends every connection there, whatever the host, so that a
 * request meant for anywhere else would be seen (and counted) rather than leave the machine.
 */
export async function startSNSStandIn (t: Tap): Promise<SNSStandIn> {
  const { key, cert } = await localSigner()
  // The handler reads `standIn` (declared below) only when a request arrives, by then it exists.
  const server = createServer({ key, cert }, (req, res) => {
    standIn.requests.push({ host: req.headers.host, method: req.method ?? '', url: req.url ?? '' })
    if (standIn.failWith !== undefined) {
      res.writeHead(standIn.failWith.status, { 'content-type': 'text/plain' }).end(standIn.failWith.body)
      return
    }
    const url = new URL(req.url ?? '/', `https://${SNS_HOSTNAME}`)
    const pem = standIn.certificates.get(url.pathname)
    if (req.method === 'GET' && pem !== undefined) {
      res.writeHead(200, { 'content-type': 'application/x-x509-ca-cert' }).end(pem)
    } else if (req.method === 'GET' && url.pathname === '/' && url.searchParams.get('Action') === 'ConfirmSubscription') {
      res.writeHead(200, { 'content-type': 'text/xml' })
        .end('<ConfirmSubscriptionResponse><ConfirmSubscriptionResult><SubscriptionArn>' +
          `${url.searchParams.get('TopicArn') ?? ''}:1</SubscriptionArn></ConfirmSubscriptionResult></ConfirmSubscriptionResponse>`)
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('Not Found')
    }
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  const connect = buildConnector({ ca: cert })
  const connects: string[] = []
  const dispatcher = new Agent({
    connect: (options, callback) => {
      connects.push(options.hostname)
      // The TLS server name stays the requested host: the certificate is checked against it.
      connect({ ...options, hostname: '127.0.0.1', port: String(port) }, callback)
    }
  })
  t.teardown(async () => {
    await dispatcher.close()
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  })
  const standIn: SNSStandIn = {
    requests: [],
    connects,
    dispatcher,
    certificates: new Map([[new URL(LOCAL_CERT_URL).pathname, cert]]),
    failWith: undefined
  }
  return standIn
}

export interface BuiltWithSNS extends Built {
  standIn: SNSStandIn
}

/** The app on local S3 and the simulator, its SNS calls going to the stand-in. */
export async function buildWithSNS (t: Tap, options: { env?: Record<string, string | undefined> } = {}): Promise<BuiltWithSNS> {
  const standIn = await startSNSStandIn(t)
  return { ...await build(t, { ...options, snsDispatcher: standIn.dispatcher }), standIn }
}

/** POSTs an SNS message as SNS does: text/plain, the type header, the token in the URL. */
export async function postSNS (app: FastifyInstance, message: SNSFields | string, options: { type?: string, token?: string | null } = {}): Promise<LightMyRequestResponse> {
  const body = typeof message === 'string' ? message : JSON.stringify(message)
  const type = options.type ?? (typeof message === 'string' ? 'Notification' : message.Type ?? 'Notification')
  const token = options.token === undefined ? TOKENS.ingest : options.token
  return await app.inject({
    method: 'POST',
    url: `/api/v1/s3/alert${token === null ? '' : `?token=${encodeURIComponent(token)}`}`,
    headers: {
      'content-type': 'text/plain; charset=UTF-8',
      'x-amz-sns-message-type': type,
      'x-amz-sns-message-id': typeof message === 'string' ? randomUUID() : message.MessageId ?? '',
      'user-agent': 'Amazon Simple Notification Service Agent'
    },
    payload: body
  })
}
