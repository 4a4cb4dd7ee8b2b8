// The sweeper in every replica: every SWEEP_INTERVAL_S (0: off, and with it the digests) one
// sweep (services/sweeper.ts) completes, backfills and ledgers the window's hours, writes the
// digests, then compacts the closed days whose ledgers changed into the table tier. The first sweep starts at a random moment of the first interval so replicas started
// together do not claim the same hours at once. On close the sweep under way is aborted and
// awaited; the hour it left half done is due again at the next sweep, in whichever replica.
import fp from 'fastify-plugin'
import { randomUUID } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { performance } from 'node:perf_hooks'
import { KMSClient } from '@aws-sdk/client-kms'
import { ConfigError } from '../config.js'
import type { DigestJobDeps } from '../services/digest.js'
import { ed25519Signer, kmsSigner, type DigestSigner } from '../services/signer.js'
import { sweepOnce, type SweepDeps } from '../services/sweeper.js'

/** The first sweep comes soon after start, not a whole interval later. */
const FIRST_RUN_MAX_DELAY_MS = 5000

export default fp(async function sweeperPlugin (app) {
  const { intervalS, lookbackHours, backfillDelayMin, leaseS, signingKeyFile, kmsKeyId } = app.config.integrity
  if (intervalS === 0) {
    app.log.warn('the sweeper is off (SWEEP_INTERVAL_S=0): no enrichment retries, no backfill, no ledgers, no digests')
    return
  }
  let signer: DigestSigner | undefined
  // A KMS signer is made on the first sweep (it reads the public key): KMS being down delays digests, not the start.
  let kmsPending: (() => Promise<DigestSigner>) | undefined
  if (signingKeyFile !== undefined) {
    try {
      signer = ed25519Signer(await readFile(signingKeyFile))
    } catch (err) {
      // A bad value of a variable, found only now that the file is read: reported as any other.
      throw new ConfigError([{ variable: 'DIGEST_SIGNING_KEY_FILE', rule: 'must name a readable Ed25519 private key (PEM)' }], { cause: err })
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

  const backfill = app.config.threatstack.auth.kind === 'hawk'
  if (!backfill) app.log.warn('backfill is off: the legacy Threat Stack key (API v1) has no list API; webhook records are still completed, but alerts the sender dropped are not recovered (set THREATSTACK_USER_ID and THREATSTACK_ORGANIZATION_ID for API v2)')

  const owner = randomUUID()
  const digest: DigestJobDeps = { store: app.store, owner, lookbackHours, leaseMs: leaseS * 1000, log: app.log, ...(signer !== undefined && { signer }) }
  const { completeness } = app.metrics
  const deps: SweepDeps = {
    store: app.store,
    threatstack: app.threatstack,
    concurrency: app.config.archive.concurrency,
    owner,
    backfill,
    lookbackHours,
    backfillDelayMs: backfillDelayMin * 60_000,
    intervalMs: intervalS * 1000,
    leaseMs: leaseS * 1000,
    digest,
    tables: { concurrency: app.config.archive.concurrency },
    log: app.log,
    enrichedAt: new Map(),
    onBackfilled: () => { completeness.backfilled.inc() }
  }
  const controller = new AbortController()

  const run = async (): Promise<void> => {
    if (kmsPending !== undefined) {
      digest.signer = await kmsPending()
      kmsPending = undefined
      app.log.info({ keyId: digest.signer.keyId }, 'digests are signed with an AWS KMS key')
    }
    const started = performance.now()
    const report = await sweepOnce(deps, Date.now(), { signal: controller.signal })
    if (report.aborted) return
    completeness.sweepDuration.observe((performance.now() - started) / 1000)
    if (backfill) completeness.missing.set(report.missing)
    completeness.daysCompacted.inc(report.compacted)
    const { aborted: _, ...counts } = report
    app.log.info(counts, 'sweep done')
  }

  let timer: NodeJS.Timeout | undefined
  let running: Promise<void> | undefined
  let closing = false
  const schedule = (delayMs: number): void => {
    if (closing) return
    timer = setTimeout(() => {
      running = run().catch((err: unknown) => {
        if (!closing) app.log.error({ err }, 'sweep: the sweep failed; the next one retries')
      }).finally(() => {
        running = undefined
        schedule(intervalS * 1000)
      })
    }, delayMs)
    timer.unref()
  }

  app.addHook('onReady', async () => { schedule(Math.floor(Math.random() * Math.min(intervalS * 1000, FIRST_RUN_MAX_DELAY_MS))) })
  // Aborted as soon as closing starts, so the sweep winds down while requests finish.
  app.addHook('preClose', async () => {
    closing = true
    clearTimeout(timer)
    controller.abort()
  })
  app.addHook('onClose', async () => {
    closing = true
    clearTimeout(timer)
    controller.abort()
    await running
  })
}, { name: 'sweeper', decorators: { fastify: ['config', 'store', 'threatstack', 'metrics'] }, fastify: '5.x' })
