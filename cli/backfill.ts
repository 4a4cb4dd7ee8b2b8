#!/usr/bin/env node
// threatstack-to-s3-backfill: imports into the archive every alert Threat Stack lists for a
// past range (it keeps them a year) and writes each hour's ledger. Reads the service's
// configuration from the environment; resumable: hours whose ledger says complete are skipped.
import { hostname } from 'node:os'
import { ServiceError, UNEXPECTED_MESSAGE } from '../errors/index.js'
import { createS3Client, storeOf } from '../services/s3-client.js'
import { closeThreatStackClient, createThreatStackClient } from '../services/threatstack.js'
import { commandArgs, commandConfig, intOption, rangeOf, usageExits, type UsageExits } from './archive-env.js'
import { backfillHour } from '../services/backfill.js'
import { HOUR_MS, hourPath, hourStart, readLedger } from '../services/ledger.js'
import { claimLease, releaseLease } from '../services/leases.js'
import { markLateHour } from '../services/digest.js'

const USAGE = `Usage: npm run backfill -- --start <date> --end <date> [--dry-run] [--force] [--concurrency <n>]

Compares each closed UTC hour of [start, end) with Threat Stack's list of alerts (active and
dismissed) and archives every alert the archive lacks: its webhook record from the list,
then its full alert. Writes each hour's ledger. Dates are RFC 3339 date-times with offset, or
plain dates (midnight UTC). Hours whose ledger says complete are skipped (--force checks them
again); an hour another process is checking is skipped too. --dry-run lists what would be
archived and writes nothing. Needs the Threat Stack API v2 (Hawk) credentials.
Exit code: 0 every hour complete, 1 something missing or pending (or, dry run, lacking),
2 bad arguments or configuration.`

const exits: UsageExits = usageExits(USAGE)
const { values: args } = commandArgs(USAGE, {
  start: { type: 'string' },
  end: { type: 'string' },
  concurrency: { type: 'string' },
  'dry-run': { type: 'boolean' },
  force: { type: 'boolean' }
})
const dryRun = args['dry-run'] === true
const force = args.force === true

const { range, concurrency } = exits.usage(() => ({ range: rangeOf(args.start, args.end), concurrency: intOption('concurrency', args.concurrency, 8, 256) }))

const config = exits.usage(() => commandConfig())
if (config.threatstack.auth.kind === 'legacy') {
  exits.fail('backfill needs the Threat Stack API v2: set THREATSTACK_USER_ID and THREATSTACK_ORGANIZATION_ID (the legacy API key cannot list alerts)', false)
}

// Only closed hours: the current one is still filling.
const firstHour = hourStart(range.startMs)
const lastHour = Math.min(hourStart(range.endMs - 1), hourStart(Date.now()) - HOUR_MS)
const hours: number[] = []
for (let h = firstHour; h <= lastHour; h += HOUR_MS) hours.push(h)
const openHours = Math.max(0, (hourStart(range.endMs - 1) - Math.max(lastHour, firstHour - HOUR_MS)) / HOUR_MS)

const s3 = createS3Client(config.s3)
const store = storeOf(config.s3, s3, config.integrity.lock !== undefined ? { lock: config.integrity.lock } : {})
const threatstack = createThreatStackClient(config.threatstack)
const owner = `backfill-${hostname()}-${process.pid}`
const LEASE_TTL_MS = 15 * 60_000
const controller = new AbortController()
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => { controller.abort(new Error('interrupted')) })

const tty = process.stderr.isTTY
const started = Date.now()
const totals = { done: 0, skipped: 0, busy: 0, failedHours: 0, seen: 0, archived: 0, missing: 0, pending: 0, unknown: 0 }
const wouldArchive: Array<{ hour: string, id: string }> = []

function bar (current: { seen: number, archived: number } = { seen: 0, archived: 0 }, final = false): void {
  const done = totals.done + totals.skipped + totals.busy + totals.failedHours
  const seen = totals.seen + current.seen
  const archived = totals.archived + current.archived
  const rate = archived / Math.max(0.001, (Date.now() - started) / 1000)
  const stats = `${done}/${hours.length} hours, ${seen} seen, ${archived} ${dryRun ? 'to archive' : 'archived'}, ${rate.toFixed(1)} alerts/s`
  if (tty) {
    const width = 24
    const filled = hours.length === 0 ? width : Math.round(width * done / hours.length)
    process.stderr.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${stats}\x1b[K${final ? '\n' : ''}`)
  } else if (final) {
    process.stderr.write(`${stats}\n`)
  }
}

let lastDraw = 0
try {
  for (const h of hours) {
    if (controller.signal.aborted) break
    const label = new Date(h).toISOString()
    try {
      const ledger = await readLedger(store, h)
      if (ledger?.complete === true && !force) {
        totals.skipped++
        bar()
        continue
      }
      let lease = dryRun ? undefined : await claimLease(store, hourPath(h), { owner, ttlMs: LEASE_TTL_MS })
      if (!dryRun && lease === undefined) {
        totals.busy++
        if (!tty) process.stderr.write(`${label}: being checked by another process, skipped\n`)
        continue
      }
      // An hour of many alerts may outlast the lease: its owner renews it while it works.
      let renewedAt = Date.now()
      const renew = (): void => {
        if (lease === undefined || Date.now() - renewedAt < LEASE_TTL_MS / 3) return
        renewedAt = Date.now()
        claimLease(store, hourPath(h), { owner, ttlMs: LEASE_TTL_MS }).then((l) => { lease = l ?? lease }, () => {})
      }
      try {
        const report = await backfillHour({ store, threatstack, concurrency }, h, {
          dryRun,
          signal: controller.signal,
          onProgress: (p) => {
            renew()
            if (tty && Date.now() - lastDraw > 100) {
              lastDraw = Date.now()
              bar(p)
            }
          }
        })
        // An hour older than the digest job's lookback is marked, so that its next run digests what came in.
        if (!dryRun && report.backfilled.length + report.enriched.length > 0) await markLateHour(store, h, config.integrity.lookbackHours)
        totals.done++
        totals.seen += report.seen
        totals.archived += report.backfilled.length
        totals.missing += dryRun ? 0 : report.ledger.missing.length
        totals.pending += report.ledger.pending.length
        totals.unknown += report.ledger.unknown.length
        if (dryRun) for (const id of report.backfilled) wouldArchive.push({ hour: label, id })
        if (!tty) {
          process.stderr.write(`${label}: ${report.seen} at Threat Stack, ${report.backfilled.length} ${dryRun ? 'to archive' : 'archived'}, ` +
            `${report.ledger.missing.length} missing, ${report.ledger.pending.length} pending\n`)
        }
      } finally {
        if (lease !== undefined) await releaseLease(store, lease).catch(() => {})
      }
    } catch (err) {
      if (controller.signal.aborted) break
      totals.failedHours++
      const message = err instanceof ServiceError ? err.message : UNEXPECTED_MESSAGE
      process.stderr.write(`${tty ? '\n' : ''}${label}: not checked: ${message}\n`)
      if (!(err instanceof ServiceError)) throw err
    }
    bar()
  }
  bar(undefined, true)
  const lines = [
    `hours: ${hours.length} (checked ${totals.done}, skipped as complete ${totals.skipped}, busy ${totals.busy}, failed ${totals.failedHours})`,
    ...(openHours > 0 ? [`hours not closed yet, left to the sweeper: ${openHours}`] : []),
    `alerts at Threat Stack: ${totals.seen}`,
    dryRun ? `would archive: ${wouldArchive.length}` : `archived now: ${totals.archived}`,
    ...(dryRun ? [] : [`still missing: ${totals.missing}`]),
    `pending enrichment: ${totals.pending}`,
    `unknown to Threat Stack: ${totals.unknown}`,
    ...(controller.signal.aborted ? ['interrupted: run again to resume'] : []),
    ...wouldArchive.map(({ hour, id }) => `  ${hour}  ${id}`)
  ]
  process.stdout.write(`${lines.join('\n')}\n`)
  const clean = totals.failedHours === 0 && totals.busy === 0 && totals.missing === 0 && totals.pending === 0 &&
    wouldArchive.length === 0 && !controller.signal.aborted
  process.exitCode = clean ? 0 : 1
} catch {
  process.stderr.write(`${UNEXPECTED_MESSAGE}\n`)
  process.exitCode = 1
} finally {
  s3.destroy()
  await closeThreatStackClient(threatstack)
}
