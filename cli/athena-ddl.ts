#!/usr/bin/env node
// Prints the Glue/Athena DDL for the archive: the table tier and the original JSON layout.
import { athenaDdl } from '../services/athena.js'
import { parseDay } from '../services/tables.js'
import { readEnv } from '../config.js'
import { commandArgs, s3Config, usageExits, type UsageExits } from './archive-env.js'

const USAGE = `Usage: npm run athena-ddl -- [--database <name>] [--first-day YYYY-MM-DD] [--bucket <name>] [--prefix <prefix>]

Prints CREATE statements for Athena: alerts (the Parquet table tier, partition projection on dt),
webhooks (the webhook records, projection on year/month/day/hour/minute) and full_alerts (the
full alerts). Bucket and prefix default to TS_AWS_S3_BUCKET and TS_AWS_S3_PREFIX.
  --database   Glue database (default threatstack)
  --first-day  first day projection enumerates (default 2015-01-01)
Exit code: 0 printed, 2 bad arguments or configuration.`

const exits: UsageExits = usageExits(USAGE)
const { values } = commandArgs(USAGE, {
  database: { type: 'string' },
  'first-day': { type: 'string' },
  bucket: { type: 'string' },
  prefix: { type: 'string' }
})
const database = values.database ?? 'threatstack'
if (!/^[a-z0-9_]{1,255}$/.test(database)) exits.fail('--database must be lower-case letters, digits and _')
const firstDay = values['first-day'] ?? '2015-01-01'
if (parseDay(firstDay) === undefined) exits.fail('--first-day must be a date, YYYY-MM-DD')
// The flags go through the same rules as the variables they stand for.
const cfg = exits.usage(() => s3Config({
  ...readEnv(),
  ...(values.bucket !== undefined && { TS_AWS_S3_BUCKET: values.bucket }),
  ...(values.prefix !== undefined && { TS_AWS_S3_PREFIX: values.prefix })
}))
process.stdout.write(athenaDdl({ bucket: cfg.bucket, prefix: cfg.prefix, database, firstDay }))
