// Glue / Athena DDL for the archive: the table tier as a Parquet table partitioned by day, and
// the original JSON layout, all with partition projection (no crawler, no MSCK REPAIR TABLE).
import { COLUMNS } from './tables.js'

export interface AthenaOptions {
  bucket: string
  /** Normalised key prefix, '' when none. */
  prefix: string
  database: string
  /** First day partition projection enumerates (YYYY-MM-DD). */
  firstDay: string
}

function location (o: AthenaOptions, folder: string): string {
  return `s3://${o.bucket}/${o.prefix === '' ? '' : `${o.prefix}/`}${folder}`
}

/** Identifier for Athena DDL (backquoted). */
function ident (name: string): string {
  return `\`${name.replaceAll('`', '``')}\``
}

function literal (text: string): string {
  return `'${text.replaceAll("'", "\\'")}'`
}

const props = (entries: Array<[string, string]>): string =>
  entries.map(([k, v]) => `  ${literal(k)} = ${literal(v)}`).join(',\n')

/** The three statements, each ending with `;`. */
export function athenaDdl (o: AthenaOptions): string {
  const db = ident(o.database)
  const year = o.firstDay.slice(0, 4)
  const alerts = `CREATE EXTERNAL TABLE IF NOT EXISTS ${db}.${ident('alerts')} (
${COLUMNS.map((c) => `  ${ident(c.name)} ${c.athena} COMMENT ${literal(c.description.replaceAll('`', ''))}`).join(',\n')}
)
PARTITIONED BY (${ident('dt')} string COMMENT 'UTC day, YYYY-MM-DD')
STORED AS PARQUET
LOCATION ${literal(location(o, 'tables/alerts/'))}
TBLPROPERTIES (
${props([
  ['projection.enabled', 'true'],
  ['projection.dt.type', 'date'],
  ['projection.dt.format', 'yyyy-MM-dd'],
  ['projection.dt.range', `${o.firstDay},NOW`],
  ['projection.dt.interval', '1'],
  ['projection.dt.interval.unit', 'DAYS'],
  ['storage.location.template', `${location(o, 'tables/alerts/')}dt=\${dt}/`],
  ['parquet.compression', 'ZSTD']
])}
);`

  // Records as Threat Stack posted them: created_at and severity are numbers in some, digit strings
  // in others, so both are read as strings (cast them in the query).
  const webhooks = `CREATE EXTERNAL TABLE IF NOT EXISTS ${db}.${ident('webhooks')} (
  ${ident('id')} string,
  ${ident('created_at')} string COMMENT 'milliseconds since the epoch, as text',
  ${ident('severity')} string,
  ${ident('title')} string,
  ${ident('organization_id')} string,
  ${ident('server_or_region')} string,
  ${ident('source')} string
)
PARTITIONED BY (${['year', 'month', 'day', 'hour', 'minute'].map((p) => `${ident(p)} string`).join(', ')})
ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'
WITH SERDEPROPERTIES ('ignore.malformed.json' = 'true', 'case.insensitive' = 'false')
LOCATION ${literal(location(o, 'webhooks/'))}
TBLPROPERTIES (
${props([
  ['projection.enabled', 'true'],
  ['projection.year.type', 'integer'],
  ['projection.year.range', `${year},2099`],
  ['projection.month.type', 'integer'],
  ['projection.month.range', '1,12'],
  ['projection.month.digits', '2'],
  ['projection.day.type', 'integer'],
  ['projection.day.range', '1,31'],
  ['projection.day.digits', '2'],
  ['projection.hour.type', 'integer'],
  ['projection.hour.range', '0,23'],
  ['projection.hour.digits', '2'],
  ['projection.minute.type', 'integer'],
  ['projection.minute.range', '0,59'],
  ['projection.minute.digits', '2'],
  ['storage.location.template', `${location(o, 'webhooks/')}\${year}/\${month}/\${day}/\${hour}/\${minute}/`]
])}
);`

  // Full alerts are filed by id, not by time: no partition to prune on, every query reads them all.
  const full = `CREATE EXTERNAL TABLE IF NOT EXISTS ${db}.${ident('full_alerts')} (
  ${ident('id')} string,
  ${ident('created_at')} string COMMENT 'milliseconds since the epoch, as text',
  ${ident('severity')} string,
  ${ident('title')} string,
  ${ident('source')} string,
  ${ident('organization_id')} string,
  ${ident('server_or_region')} string,
  ${ident('agent_id')} string,
  ${ident('rule')} struct<id: string, name: string, type: string>
)
ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'
WITH SERDEPROPERTIES ('ignore.malformed.json' = 'true', 'case.insensitive' = 'false')
LOCATION ${literal(location(o, 'alerts/'))};`

  return [
    `-- threatstack-to-s3 archive in ${location(o, '')}`,
    `CREATE DATABASE IF NOT EXISTS ${db};`,
    '',
    '-- The table tier: one partition per UTC day, found by projection.',
    alerts,
    '',
    '-- The webhook records as archived, one partition per minute. Always bound year/month/day in the WHERE clause.',
    webhooks,
    '',
    '-- The full alerts as archived (not partitioned: a query reads every object).',
    full,
    ''
  ].join('\n')
}
