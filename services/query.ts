// SQL over the archive: the view `alerts` over the days of a range (their Parquet parts, or their
// JSON objects for days not compacted), queried by DuckDB in-process, then everything removed.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { confineTo, openDb, runQuery, type QueryResult } from './duckdb.js'
import { loadAlerts, type LoadOptions, type LoadProgress, type TablesDeps } from './tables.js'
import type { TimeRange } from './search.js'

export interface AlertsQueryResult extends QueryResult {
  load: LoadProgress
}

/**
 * Runs `sql` over the alerts of `range`. The downloaded parts live in a temp folder for the
 * duration of the query; the SQL can read nothing else and write nothing.
 * @throws QueryError (the SQL) | S3ClientError (the archive) | UnexpectedException
 */
export async function queryAlerts (deps: TablesDeps & { threads?: number }, range: TimeRange, sql: string, options: LoadOptions = {}): Promise<AlertsQueryResult> {
  const dir = await mkdtemp(join(tmpdir(), 'ts2s3-query-'))
  const db = await openDb({ threads: deps.threads ?? 2 })
  try {
    const load = await loadAlerts(deps, db, range, join(dir, 'alerts'), options)
    await confineTo(db, dir)
    return { ...await runQuery(db, sql), load }
  } finally {
    db.close()
    await rm(dir, { recursive: true, force: true })
  }
}
