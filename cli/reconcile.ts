#!/usr/bin/env node
// threatstack-to-s3-reconcile: completes the archive of a time range. Reads the service's
// configuration from the environment; exits 0 when every alert of the range is complete.
import { ServiceError, UNEXPECTED_MESSAGE } from '../errors/index.js'
import { createS3Client, storeOf } from '../services/s3-client.js'
import { closeThreatStackClient, createThreatStackClient } from '../services/threatstack.js'
import { commandArgs, commandConfig, intOption, rangeOf, usageExits, type UsageExits } from './archive-env.js'
import { reconcile, type ReconcileProgress } from '../services/reconcile.js'
import { hourStart, markLateHour } from '../services/digest.js'

const USAGE = `Usage: threatstack-to-s3-reconcile --start <date> --end <date> [--concurrency <n>]

Finds the alerts of [start, end) whose webhook record is archived but whose full alert is
not, fetches them from Threat Stack and stores them. Dates are RFC 3339 date-times with
offset, or plain dates (midnight UTC). Configuration: the service's environment variables.
Exit code: 0 all complete, 1 some still missing, 2 bad arguments or configuration.`

const exits: UsageExits = usageExits(USAGE)
const { values: args } = commandArgs(USAGE, { start: { type: 'string' }, end: { type: 'string' }, concurrency: { type: 'string' } })

const { range, concurrency } = exits.usage(() => ({ range: rangeOf(args.start, args.end), concurrency: intOption('concurrency', args.concurrency, 8, 256) }))

const config = exits.usage(() => commandConfig())

const s3 = createS3Client(config.s3)
const threatstack = createThreatStackClient(config.threatstack)
const tty = process.stderr.isTTY
let lastLine = 0
const show = (p: ReconcileProgress, final = false): void => {
  const line = `checked ${p.checked}, repaired ${p.repaired}, failed ${p.failed}`
  if (tty) {
    process.stderr.write(`\r${line}${final ? '\n' : ''}`)
  } else if (final || p.checked - lastLine >= 100) {
    // Not a terminal (a log, a pipe): a plain line every 100 alerts.
    lastLine = p.checked
    process.stderr.write(`${line}\n`)
  }
}

try {
  const store = storeOf(config.s3, s3, config.integrity.lock !== undefined ? { lock: config.integrity.lock } : {})
  // A full alert stored for an hour older than the digest job's lookback: its hour is marked, so
  // that the job's next run covers it with a supplement digest. Once per hour.
  const marked = new Map<number, Promise<void>>()
  const onRepaired = async (_key: string, minuteMs: number): Promise<void> => {
    const hour = hourStart(minuteMs)
    if (!marked.has(hour)) {
      marked.set(hour, markLateHour(store, hour, config.integrity.lookbackHours).then(() => {}, (err: unknown) => {
        marked.delete(hour)
        process.stderr.write(`could not mark ${new Date(hour).toISOString()} for the digest job: ${err instanceof ServiceError ? err.message : UNEXPECTED_MESSAGE}\n`)
      }))
    }
    await marked.get(hour)
  }
  const result = await reconcile({ store, threatstack, concurrency, onRepaired }, range, show)
  show(result, true)
  process.stdout.write(`checked: ${result.checked}\nrepaired: ${result.repaired}\nstill missing: ${result.stillMissing.length}\n`)
  for (const { id, reason } of result.stillMissing) process.stdout.write(`  ${id}  ${reason}\n`)
  process.exitCode = result.stillMissing.length === 0 ? 0 : 1
} catch (err) {
  process.stderr.write(`${err instanceof ServiceError ? err.message : 'An unexpected error has occurred.'}\n`)
  process.exitCode = 1
} finally {
  s3.destroy()
  await closeThreatStackClient(threatstack)
}
