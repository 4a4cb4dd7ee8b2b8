#!/usr/bin/env node
// Prints the Glue/Athena DDL for the archive: the table tier and the original JSON layout.
import { parseArgs } from 'node:util'
import { athenaDdl } from '../services/athena.js'
import { parseDay } from '../services/tables.js'
import { readEnv } from '../config.js'
import { s3Config, UsageError } from './archive-env.js'

const USAGE = `Usage: npm run athena-ddl -- [--database <name>] [--first-day YYYY-MM-DD] [--bucket <name>] [--prefix <prefix>]

Prints CREATE statements for Athena: alerts (the Parquet table tier, partition projection on dt),
webhooks (the webhook records, projection on year/month/day/hour/minute) and full_alerts (the
full alerts). Bucket and prefix default to TS_AWS_S3_BUCKET and TS_AWS_S3_PREFIX.
  --database   Glue database (default threatstack)
  --first-day  first day projection enumerates (default 2015-01-01)
Exit code: 0 printed, 2 bad arguments or configuration.`

function fail (message: string): never {
  process.stderr.write(`${message}\n\n${USAGE}\n`)
  process.exit(2)
}

try {
  const { values } = parseArgs({
    options: {
      database: { type: 'string' },
      'first-day': { type: 'string' },
      bucket: { type: 'string' },
      prefix: { type: 'string' },
      help: { type: 'boolean', short: 'h' }
    }
  })
  if (values.help === true) {
    process.stdout.write(`${USAGE}\n`)
    process.exit(0)
  }
  const database = values.database ?? 'threatstack'
  if (!/^[a-z0-9_]{1,255}$/.test(database)) throw new UsageError('--database must be lower-case letters, digits and _')
  const firstDay = values['first-day'] ?? '2015-01-01'
  if (parseDay(firstDay) === undefined) throw new UsageError('--first-day must be a date, YYYY-MM-DD')
  // The flags go through the same rules as the variables they stand for.
  const env = readEnv()
  const cfg = s3Config({
    ...env,
    ...(values.bucket !== undefined && { TS_AWS_S3_BUCKET: values.bucket }),
    ...(values.prefix !== undefined && { TS_AWS_S3_PREFIX: values.prefix })
  })
  process.stdout.write(athenaDdl({ bucket: cfg.bucket, prefix: cfg.prefix, database, firstDay }))
} catch (err) {
  fail(err instanceof Error ? err.message : String(err))
}
