// SNS hosts and signing certificates: which URLs may be called, HTTPS GETs to them, and the
// signing keys, from SNS_CERTS_DIR or their SNS host, cached.
import { X509Certificate, type KeyObject } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { request, type Dispatcher } from 'undici'
import { SNSSignatureError, ServiceUnavailableError, UnexpectedException } from '../errors/index.js'

/** The hosts SNS signs from and sends confirmation links to (commercial regions and China). */
export const SNS_HOST = /^sns\.[a-zA-Z0-9-]{3,}\.amazonaws\.com(\.cn)?$/
/** How SNS names its signing certificates; the only file names looked up in SNS_CERTS_DIR. */
export const CERT_FILE_NAME = /^SimpleNotificationService-[A-Za-z0-9]+\.pem$/
/** A signing certificate is about 2 KiB. */
export const MAX_CERT_BYTES = 64 * 1024
/** Signing keys kept in memory; SNS uses a handful of certificates per region. */
export const CERT_CACHE_SIZE = 100

/** What calls to SNS hosts and the certificate cache need. */
export interface SNSConnection {
  readonly certsDir: string | undefined
  /** Used for every certificate fetch and confirmation call. */
  readonly dispatcher: Dispatcher
  readonly timeoutMs: number
  /** Signing keys by certificate URL, least recently used first; a pending load is shared. */
  readonly certs: Map<string, Promise<KeyObject>>
  readonly cacheSize: number
}

/** What was refused or answered, for the log: never sent to a client. */
export class SNSDetail extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'SNSDetail'
  }
}

/**
 * The URL when it is an HTTPS address on an SNS host: default port, no user info, no fragment.
 * Parsed with the WHATWG parser, the one the request is then made with, so that what is
 * checked is what is fetched.
 */
export function snsUrl (raw: string): URL | undefined {
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    return undefined
  }
  if (url.protocol !== 'https:' || url.username !== '' || url.password !== '' || url.port !== '' || url.hash !== '') return undefined
  return SNS_HOST.test(url.hostname) ? url : undefined
}

/** The URL when it may name a signing certificate: an SNS address of a .pem file, no query. */
export function signingCertUrl (raw: string): URL | undefined {
  const url = snsUrl(raw)
  return url !== undefined && url.search === '' && url.pathname.endsWith('.pem') ? url : undefined
}

/** What an HTTPS GET answered, the body read up to `maxBytes`. @throws what undici throws, or SNSDetail when too large. */
export async function httpsGet (client: SNSConnection, url: URL, maxBytes: number): Promise<{ statusCode: number, body: string }> {
  const res = await request(url, {
    method: 'GET',
    dispatcher: client.dispatcher,
    signal: AbortSignal.timeout(client.timeoutMs)
  })
  const chunks: Buffer[] = []
  let size = 0
  // Read by hand: the dispatcher may have been given without a response size cap.
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > maxBytes) {
      res.body.destroy()
      throw new SNSDetail(`answer larger than ${maxBytes} bytes`)
    }
    chunks.push(chunk)
  }
  return { statusCode: res.statusCode, body: Buffer.concat(chunks).toString('utf8') }
}

/** The certificate from SNS_CERTS_DIR, undefined when it is not there. */
async function localCertificate (dir: string | undefined, url: URL): Promise<string | undefined> {
  if (dir === undefined) return undefined
  const name = url.pathname.slice(url.pathname.lastIndexOf('/') + 1)
  // Only SNS's own naming: nothing that could step out of the folder.
  if (!CERT_FILE_NAME.test(name)) return undefined
  try {
    return await readFile(join(dir, name), 'utf8')
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT') return undefined
    throw new UnexpectedException({ cause: err })
  }
}

/**
 * The certificate from its SNS host.
 * @throws ServiceUnavailableError when the host could not be reached or failed (SNS retries);
 *   SNSSignatureError when it answered that there is no such certificate.
 */
async function fetchCertificate (client: SNSConnection, url: URL): Promise<string> {
  let answer: { statusCode: number, body: string }
  try {
    answer = await httpsGet(client, url, MAX_CERT_BYTES)
  } catch (err) {
    // Too large to be a certificate, whichever of our cap or the pool's was hit.
    if (err instanceof SNSDetail || (err as { code?: unknown }).code === 'UND_ERR_RES_EXCEEDED_MAX_SIZE') {
      throw new SNSSignatureError('SNS signing certificate is invalid', { cause: err })
    }
    throw new ServiceUnavailableError('SNS signing certificate could not be fetched; retry later', { cause: err })
  }
  if (answer.statusCode === 200) return answer.body
  const cause = new SNSDetail(`GET ${url.href} answered ${answer.statusCode}`)
  if (answer.statusCode >= 500) throw new ServiceUnavailableError('SNS signing certificate could not be fetched; retry later', { cause })
  throw new SNSSignatureError('SNS signing certificate could not be found', { cause })
}

async function loadSigningKey (client: SNSConnection, url: URL): Promise<KeyObject> {
  const pem = await localCertificate(client.certsDir, url) ?? await fetchCertificate(client, url)
  try {
    // Like SNS's own validators, the certificate's dates are not checked: what matters is where it came from.
    return new X509Certificate(pem).publicKey
  } catch (err) {
    throw new SNSSignatureError('SNS signing certificate is invalid', { cause: err })
  }
}

/** The public key of the certificate at `url`, from the cache, SNS_CERTS_DIR, or its host. */
export async function signingKey (client: SNSConnection, url: URL): Promise<KeyObject> {
  const id = url.href
  const cached = client.certs.get(id)
  if (cached !== undefined) {
    client.certs.delete(id)
    client.certs.set(id, cached)
    return await cached
  }
  const loading = loadSigningKey(client, url)
  client.certs.set(id, loading)
  if (client.certs.size > client.cacheSize) {
    const oldest = client.certs.keys().next()
    if (oldest.done !== true) client.certs.delete(oldest.value)
  }
  // A failure is not remembered: the next message tries again.
  loading.catch(() => { if (client.certs.get(id) === loading) client.certs.delete(id) })
  return await loading
}
