// The signature check: SignatureVersion 1 (SHA1) or 2 (SHA256) over the fields SNS signs, with
// the key of a certificate that came from an SNS host.
import { verify } from 'node:crypto'
import { SNSSignatureError } from '../errors/index.js'
import type { SNSMessage } from '../schemas/sns.js'
import { SNSDetail, signingCertUrl, signingKey, type SNSConnection } from './sns-certificates.js'
import { stringToSign } from './sns-envelope.js'

/**
 * Checks that SNS signed the message.
 * @throws SNSSignatureError when the certificate URL is not an SNS address, or the signature
 *   does not verify; ServiceUnavailableError when the certificate could not be fetched.
 */
export async function verifySNSMessage (client: SNSConnection, message: SNSMessage): Promise<void> {
  const url = signingCertUrl(message.SigningCertURL)
  if (url === undefined) {
    throw new SNSSignatureError('SNS signing certificate must come from an SNS host over HTTPS', {
      cause: new SNSDetail(`SigningCertURL refused: ${message.SigningCertURL.slice(0, 300)}`)
    })
  }
  const key = await signingKey(client, url)
  let valid: boolean
  try {
    valid = verify(message.SignatureVersion === '1' ? 'sha1' : 'sha256', Buffer.from(stringToSign(message), 'utf8'),
      key, Buffer.from(message.Signature, 'base64'))
  } catch (err) {
    throw new SNSSignatureError(undefined, { cause: err })
  }
  if (!valid) throw new SNSSignatureError(undefined)
}
