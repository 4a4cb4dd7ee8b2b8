#!/usr/bin/env node
// threatstack-to-s3-query: SQL over the archived alerts of a time range, run in-process by DuckDB.
import { ServiceError } from '../errors/index.js'
import { QueryError } from '../services/duckdb.js'
import { createS3Client, storeOf } from '../services/s3-client.js'
import { queryAlerts } from '../services/query.js'
import { COLUMNS } from '../services/tables.js'
import { formatCsv, formatJson, formatTable } from './format.js'
import { commandArgs, intOption, rangeOf, s3Config, statusLine, usageExits, type UsageExits } from './archive-env.js'

const USAGE = `Usage: npm run query -- --start <date> --end <date> [--json | --csv] [--from-json] "<SQL>"

Runs the SQL over one table, alerts, holding the alerts of [start, end): the Parquet parts of
compacted days (downloaded to a temp folder), the JSON objects of the others. Columns:
${COLUMNS.map((c) => `  ${c.name.padEnd(17)}${c.duckdb.padEnd(10)}${c.description}`).join('\n')}
  ${'dt'.padEnd(17)}${'VARCHAR'.padEnd(10)}the UTC day, YYYY-MM-DD (the partition, as in Athena)

Dates are RFC 3339 date-times with offset, or plain dates (midnight UTC).
  --json        one JSON array of row objects     --csv   CSV with a header row
  --from-json   ignore the table tier, read every day from its JSON objects
  --concurrency S3 reads at once (default 16)
Configuration: the service's environment variables (S3 only, read access).
Exit code: 0 done, 1 the SQL was rejected (DuckDB's message is printed), 2 bad arguments or
configuration, 3 the archive could not be read (or another failure, printed).`

const exits: UsageExits = usageExits(USAGE)
const { values, positionals } = commandArgs(USAGE, {
  start: { type: 'string' },
  end: { type: 'string' },
  json: { type: 'boolean' },
  csv: { type: 'boolean' },
  'from-json': { type: 'boolean' },
  concurrency: { type: 'string' }
}, { allowPositionals: true })
if (values.json === true && values.csv === true) exits.fail('--json and --csv exclude each other')
const [sql] = positionals
if (positionals.length !== 1 || sql === undefined || sql.trim() === '') exits.fail('one SQL statement is required (quote it)')
const { range, concurrency, cfg } = exits.usage(() => ({
  range: rangeOf(values.start, values.end),
  concurrency: intOption('concurrency', values.concurrency, 16, 256),
  cfg: s3Config()
}))

const s3 = createS3Client(cfg)
const status = statusLine(process.stderr)
try {
  const result = await queryAlerts({ store: storeOf(cfg, s3), concurrency }, range, sql, {
    useTables: values['from-json'] !== true,
    onProgress: (p) => status.show(`days ${p.daysDone}/${p.days}: ${p.parts} part(s) downloaded (${(p.bytes / 1e6).toFixed(1)} MB), ${p.jsonAlerts} alerts read from JSON`)
  })
  status.done()
  process.stdout.write(values.json === true ? formatJson(result) : values.csv === true ? formatCsv(result) : formatTable(result))
} catch (err) {
  status.done()
  if (err instanceof QueryError) {
    process.stderr.write(`${err.message}\n`)
    process.exitCode = 1
  } else {
    process.stderr.write(`${err instanceof ServiceError ? err.message : 'An unexpected error has occurred.'}\n`)
    process.exitCode = 3
  }
} finally {
  s3.destroy()
}
