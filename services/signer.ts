// What signs and verifies the hourly digests: an Ed25519 key (node:crypto) or an AWS KMS
// asymmetric key. Verifying needs the public key only.
import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto'
import { GetPublicKeyCommand, SignCommand, type KMSClient } from '@aws-sdk/client-kms'

export interface DigestSigner {
  /** Names the key in each digest, so that a verifier knows which public key to use. */
  readonly keyId: string
  readonly algorithm: string
  sign (bytes: Buffer): Promise<Buffer>
}

/** A key id that anyone holding the public key can recompute: SHA-256 of its SPKI DER. */
export function publicKeyId (key: KeyObject): string {
  const der = (key.type === 'public' ? key : createPublicKey(key)).export({ type: 'spki', format: 'der' })
  return `sha256:${createHash('sha256').update(der).digest('hex')}`
}

/** @throws Error when the PEM is not an Ed25519 private key */
export function ed25519Signer (pem: string | Buffer): DigestSigner {
  const key = createPrivateKey(pem)
  if (key.asymmetricKeyType !== 'ed25519') throw new Error('the digest signing key must be an Ed25519 private key')
  return {
    keyId: publicKeyId(key),
    algorithm: 'Ed25519',
    async sign (bytes) { return sign(null, bytes, key) }
  }
}

/** The largest message KMS signs as RAW; above it, the SHA-256 is sent (MessageType DIGEST). */
export const KMS_RAW_MAX_BYTES = 4096

/**
 * Signs with KMS: the bytes themselves up to 4 KiB, their SHA-256 beyond (KMS's limit for RAW);
 * either way the result is an ECDSA_SHA_256 signature of the bytes. Needs an ECC_NIST_P256 key.
 */
export async function kmsSigner (client: KMSClient, keyId: string, algorithm: 'ECDSA_SHA_256' = 'ECDSA_SHA_256'): Promise<DigestSigner> {
  // The key id in the digests is that of the public key, which is all a verifier holds.
  const res = await client.send(new GetPublicKeyCommand({ KeyId: keyId }))
  if (res.PublicKey === undefined) throw new Error('KMS returned no public key')
  const publicKey = createPublicKey({ key: Buffer.from(res.PublicKey), format: 'der', type: 'spki' })
  if (publicKey.asymmetricKeyType !== 'ec') throw new Error('the digest KMS key must be an ECC_NIST_P256 signing key')
  return {
    keyId: publicKeyId(publicKey),
    algorithm,
    async sign (bytes) {
      const res = await client.send(new SignCommand({
        KeyId: keyId,
        ...(bytes.byteLength <= KMS_RAW_MAX_BYTES
          ? { Message: bytes, MessageType: 'RAW' as const }
          : { Message: createHash('sha256').update(bytes).digest(), MessageType: 'DIGEST' as const }),
        SigningAlgorithm: algorithm
      }))
      if (res.Signature === undefined) throw new Error('KMS returned no signature')
      return Buffer.from(res.Signature)
    }
  }
}

/** Whether `signature` is `algorithm`'s signature of `bytes` by the holder of `publicKey`. */
export function verifySignature (publicKey: KeyObject, algorithm: string, bytes: Buffer, signature: Buffer): boolean {
  try {
    if (algorithm === 'Ed25519') return publicKey.asymmetricKeyType === 'ed25519' && verify(null, bytes, publicKey, signature)
    if (algorithm === 'ECDSA_SHA_256') return publicKey.asymmetricKeyType === 'ec' && verify('sha256', bytes, publicKey, signature)
    return false
  } catch {
    return false
  }
}
