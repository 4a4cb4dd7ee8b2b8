// The hourly digest job: every replica runs it every SWEEP_INTERVAL_S (0: off); a lease in the
// bucket lets one of them do each run. Stopped, and its run under way awaited, on close.
import fp from 'fastify-plugin'
import { randomUUID } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { KMSClient } from '@aws-sdk/client-kms'
import { runDigestJob, type DigestJobDeps } from '../services/digest.js'
import { ed25519Signer, kmsSigner, type DigestSigner } from '../services/signer.js'

/** The first run comes soon after start, not a whole interval later. */
const FIRST_RUN_MAX_DELAY_MS = 5000

export default fp(async function digestPlugin (app) {
  const { intervalS, lookbackHours, signingKeyFile, kmsKeyId } = app.config.integrity
  if (intervalS === 0) return
  let signer: DigestSigner | undefined
  // A KMS signer is made on the first run (it reads the public key): KMS being down delays digests, not the start.
  let kmsPending: (() => Promise<DigestSigner>) | undefined
  if (signingKeyFile !== undefined) {
    try {
      signer = ed25519Signer(await readFile(signingKeyFile))
    } catch (err) {
      throw new Error('DIGEST_SIGNING_KEY_FILE must name a readable Ed25519 private key (PEM)', { cause: err })
    }
    app.log.info({ keyId: signer.keyId }, 'digests are signed with an Ed25519 key')
  } else if (kmsKeyId !== undefined) {
    const { region, credentials } = app.config.s3
    const kms = new KMSClient({ region, ...(credentials !== undefined && { credentials }) })
    app.addHook('onClose', async () => kms.destroy())
    kmsPending = async () => await kmsSigner(kms, kmsKeyId)
  } else {
    app.log.warn('digests are chained but unsigned: set DIGEST_SIGNING_KEY_FILE or DIGEST_KMS_KEY_ID so that they prove who wrote them')
  }

  const deps: DigestJobDeps = { store: app.store, owner: randomUUID(), lookbackHours, log: app.log, ...(signer !== undefined && { signer }) }
  const run = async (): Promise<void> => {
    if (kmsPending !== undefined) {
      deps.signer = await kmsPending()
      kmsPending = undefined
      app.log.info({ keyId: deps.signer.keyId }, 'digests are signed with an AWS KMS key')
    }
    const result = await runDigestJob(deps, Date.now(), controller.signal)
    if (result.written.length > 0) app.log.info({ digests: result.written.length }, 'digests written')
  }
  const controller = new AbortController()
  let timer: NodeJS.Timeout | undefined
  let running: Promise<void> | undefined
  let closing = false

  const schedule = (delayMs: number): void => {
    if (closing) return
    timer = setTimeout(() => {
      running = run().catch((err: unknown) => {
        app.log.error({ err }, 'digest: the run failed; the next one retries')
      }).finally(() => {
        running = undefined
        schedule(intervalS * 1000)
      })
    }, delayMs)
    timer.unref()
  }

  app.addHook('onReady', async () => { schedule(Math.min(intervalS * 1000, FIRST_RUN_MAX_DELAY_MS)) })
  app.addHook('onClose', async () => {
    closing = true
    clearTimeout(timer)
    controller.abort()
    await running
  })
}, { name: 'digest', decorators: { fastify: ['config', 'store'] }, fastify: '5.x' })
