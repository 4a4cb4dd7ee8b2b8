#!/usr/bin/env node
// threatstack-to-s3-compact: builds the table tier (Parquet per UTC day) of past days from the
// archive's JSON objects. Days already built from the same objects are left as they are.
import { ServiceError } from '../errors/index.js'
import { createS3Client, storeOf } from '../services/s3-client.js'
import { randomUUID } from 'node:crypto'
import { compactDay, dayLeaseName, daysOf, parseDay, DAY_MS, type CompactResult } from '../services/tables.js'
import { underLease } from '../services/sweeper.js'
import { openDb } from '../services/duckdb.js'
import { commandArgs, intOption, rangeOf, s3Config, statusLine, usageExits } from './archive-env.js'

const USAGE = `Usage: npm run compact -- --start <date> --end <date> [--concurrency <n>]

Writes [prefix/]tables/alerts/dt=YYYY-MM-DD/part-<n>.parquet for each UTC day that [start, end)
touches, from the day's webhook records and full alerts. A day whose objects have not changed
since it was built is not written again. Days not over yet are skipped: their table would be
missing the alerts still to come. Each day is built under the same lease as the sweeper's
compaction of it: a day another writer is building is skipped. Configuration: the service's environment variables (S3 only).
Exit code: 0 done, 1 the archive could not be read or written, 2 bad arguments or configuration.`

const { values: args } = commandArgs(USAGE, { start: { type: 'string' }, end: { type: 'string' }, concurrency: { type: 'string' } })
const { range, concurrency, cfg } = usageExits(USAGE).usage(() => ({
  range: rangeOf(args.start, args.end),
  concurrency: intOption('concurrency', args.concurrency, 16, 256),
  cfg: s3Config()
}))

const s3 = createS3Client(cfg)
const store = storeOf(cfg, s3)
const db = await openDb({ threads: 1 })
const status = statusLine(process.stderr)
const days = daysOf(range)
const now = Date.now()
const owner = `compact-${randomUUID()}`
const totals = { written: 0, unchanged: 0, skipped: 0, rows: 0, withoutFullAlert: 0, bytes: 0 }
const t0 = performance.now()
try {
  for (const [i, day] of days.entries()) {
    if ((parseDay(day) as number) + DAY_MS > now) {
      totals.skipped++
      process.stdout.write(`${day}  skipped: the day is not over\n`)
      continue
    }
    let read = 0
    const show = (): void => status.show(`day ${i + 1}/${days.length} ${day}: ${read} alerts read`)
    show()
    const done = await underLease({ store, owner }, dayLeaseName(day), async (renew): Promise<CompactResult> =>
      await compactDay({ store, concurrency, db, onAlert: () => { renew(); if (++read % 50 === 0) show() } }, day))
    status.done()
    if (!done.held) {
      totals.skipped++
      process.stdout.write(`${day}  skipped: another writer (a sweeper) is compacting it\n`)
      continue
    }
    const result = done.value
    totals[result.status]++
    totals.rows += result.rows
    totals.withoutFullAlert += result.withoutFullAlert
    totals.bytes += result.bytes
    process.stdout.write(`${day}  ${result.status}: ${result.rows} rows` +
      (result.withoutFullAlert > 0 ? ` (${result.withoutFullAlert} without full alert)` : '') +
      (result.status === 'written' ? `, ${result.parts} part(s), ${result.bytes} bytes` : '') + '\n')
  }
  process.stdout.write(`${days.length} day(s): ${totals.written} written, ${totals.unchanged} unchanged, ${totals.skipped} skipped; ` +
    `${totals.rows} rows, ${totals.withoutFullAlert} without full alert, ${totals.bytes} bytes written in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`)
} catch (err) {
  status.done()
  process.stderr.write(`${err instanceof ServiceError ? err.message : 'An unexpected error has occurred.'}\n`)
  process.exitCode = 1
} finally {
  db.close()
  s3.destroy()
}
