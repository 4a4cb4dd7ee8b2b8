#!/usr/bin/env node
// threatstack-to-s3-verify: proves, or disproves, that the archive of a time range is what its
// signed hourly digests say. Needs read access to the bucket and the digests' public key only.
import { readFileSync } from 'node:fs'
import { createPublicKey, type KeyObject } from 'node:crypto'
import { ServiceError } from '../errors/index.js'
import { createS3Client, storeOf } from '../services/s3-client.js'
import { commandArgs, intOption, rangeOf, s3Config, usageExits, type UsageExits } from './archive-env.js'
import { verifyArchive, type HourReport, type VerifyProgress } from '../services/verify.js'

const USAGE = `Usage: threatstack-to-s3-verify --start <date> --end <date> --public-key <file> [--json] [--concurrency <n>]

Re-reads every object archived for the hours of [start, end), recomputes its SHA-256, and checks
it against the hourly digests; walks the digests' chain and checks their signatures with the
public key (PEM). Prints, per hour, "ok" or what differs: modified, deleted, added (covered by
no digest), digest missing or invalid, chain broken, signature bad. Dates are RFC 3339
date-times with offset, or plain dates (midnight UTC). S3 access: the service's variables
(TS_AWS_S3_BUCKET, TS_AWS_S3_PREFIX, AWS_REGION, AWS_ENDPOINT_URL_S3, AWS credentials).
Exit code: 0 everything verifies, 1 something does not, 2 bad arguments or configuration.`

const exits: UsageExits = usageExits(USAGE)
const { values: args } = commandArgs(USAGE, {
  start: { type: 'string' },
  end: { type: 'string' },
  'public-key': { type: 'string' },
  json: { type: 'boolean' },
  concurrency: { type: 'string' }
})
const { range, concurrency } = exits.usage(() => ({ range: rangeOf(args.start, args.end), concurrency: intOption('concurrency', args.concurrency, 16, 256) }))
if (args['public-key'] === undefined) exits.fail('--public-key is required')

let publicKey: KeyObject
try {
  publicKey = createPublicKey(readFileSync(args['public-key']))
} catch {
  exits.fail('--public-key must name a readable public key file (PEM)')
}

// An auditor has read access to the bucket, not the service's secrets: no tokens, no API key.
const s3Settings = exits.usage(() => s3Config())

const s3 = createS3Client(s3Settings)
const tty = process.stderr.isTTY
const progress = (p: VerifyProgress): void => {
  if (tty) process.stderr.write(`\rverified ${p.hoursDone}/${p.hoursTotal} hours, ${p.objectsChecked} objects, ${p.problems} problems`)
}

function describe (hour: HourReport): string {
  if (hour.ok) return `${hour.hour}  ok (${hour.objects} objects, ${hour.digests} digests)`
  const lines = hour.problems.map((p) => `    ${p.kind}: ${p.key === '' ? '' : `${p.key}: `}${p.detail}`)
  return [`${hour.hour}  FAILED (${hour.problems.length} problems)`, ...lines].join('\n')
}

try {
  const report = await verifyArchive({ store: storeOf(s3Settings, s3), publicKey, concurrency }, range, progress)
  if (tty) process.stderr.write('\n')
  if (args.json === true) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`)
  } else {
    for (const hour of report.hours) process.stdout.write(`${describe(hour)}\n`)
    const failed = report.hours.filter((h) => !h.ok).length
    process.stdout.write(`${report.ok ? 'OK' : 'FAILED'}: ${report.hours.length} hours, ${failed} failed, ` +
      `${report.objectsChecked} objects and ${report.digestsChecked} digests checked, ${report.problems} problems\n`)
  }
  process.exitCode = report.ok ? 0 : 1
} catch (err) {
  if (tty) process.stderr.write('\n')
  process.stderr.write(`${err instanceof ServiceError ? err.message : 'An unexpected error has occurred.'}\n`)
  process.exitCode = 1
} finally {
  s3.destroy()
}
