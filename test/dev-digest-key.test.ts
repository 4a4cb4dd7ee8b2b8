// npm run dev signs digests with a key pair it makes once in .dev/.
import t from 'tap'
import { createPrivateKey, createPublicKey } from 'node:crypto'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ensureDevDigestKey } from '../dev/digest-key.js'
import { ed25519Signer, publicKeyId } from '../services/signer.js'

t.test('makes an Ed25519 pair once, private key readable by its owner only, and keeps it', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ts2s3-devkey-'))
  t.teardown(async () => rm(dir, { recursive: true, force: true }))
  const first = await ensureDevDigestKey(join(dir, '.dev'))
  const signer = ed25519Signer(await readFile(first.privateKeyFile))
  t.equal(signer.keyId, publicKeyId(createPublicKey(await readFile(first.publicKeyFile))), 'the public key is the private key\'s')
  t.equal((await stat(first.privateKeyFile)).mode & 0o777, 0o600)
  const pem = await readFile(first.privateKeyFile, 'utf-8')
  const second = await ensureDevDigestKey(join(dir, '.dev'))
  t.same(second, first)
  t.equal(await readFile(second.privateKeyFile, 'utf-8'), pem, 'not replaced')
  t.equal(createPrivateKey(pem).asymmetricKeyType, 'ed25519')
})
