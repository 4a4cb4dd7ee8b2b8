// The dev default for digest signing: an Ed25519 key pair in .dev/, made once.
import { generateKeyPairSync } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'

export interface DevDigestKey { privateKeyFile: string, publicKeyFile: string }

/** Makes `.dev/digest-signing-key.pem` and `.dev/digest-public-key.pem` unless they exist. */
export async function ensureDevDigestKey (dir = resolve('.dev')): Promise<DevDigestKey> {
  const privateKeyFile = join(dir, 'digest-signing-key.pem')
  const publicKeyFile = join(dir, 'digest-public-key.pem')
  if (!existsSync(privateKeyFile) || !existsSync(publicKeyFile)) {
    await mkdir(dir, { recursive: true })
    const { privateKey, publicKey } = generateKeyPairSync('ed25519')
    await writeFile(privateKeyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 })
    await writeFile(publicKeyFile, publicKey.export({ type: 'spki', format: 'pem' }))
  }
  return { privateKeyFile, publicKeyFile }
}
