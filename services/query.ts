// SQL over the archive: the view `alerts` over the days of a range (their Parquet parts, or their
// JSON objects for days not compacted), queried by DuckDB in-process, then everything removed.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { confineTo, openDb, runQuery, type QueryResult } from './duckdb.js'
import { loadAlerts, type LoadOptions, type LoadProgress, type LoadTimings, type TablesDeps } from './tables.js'
import type { TimeRange } from './search.js'

export interface AlertsQueryResult extends QueryResult {
  load: LoadProgress
  /** Where the time went, in ms: DuckDB started, the alerts loaded (with its phases), the SQL run. */
  timings: LoadTimings & { openMs: number, loadMs: number, queryMs: number }
}

/**
 * Runs `sql` over the alerts of `range`. The downloaded parts live in a temp folder for the
 * duration of the query; the SQL can read nothing else and write nothing.
 * @throws QueryError (the SQL) | S3ClientError (the archive) | UnexpectedException
 */
export async function queryAlerts (deps: TablesDeps & { threads?: number }, range: TimeRange, sql: string, options: LoadOptions = {}): Promise<AlertsQueryResult> {
  let t0 = performance.now()
  const dir = await mkdtemp(join(tmpdir(), 'ts2s3-query-'))
  const db = await openDb({ threads: deps.threads ?? 2 })
  const openMs = performance.now() - t0
  try {
    t0 = performance.now()
    const { timings, ...load } = await loadAlerts(deps, db, range, join(dir, 'alerts'), options)
    await confineTo(db, dir)
    const loadMs = performance.now() - t0
    t0 = performance.now()
    const result = await runQuery(db, sql)
    return { ...result, load, timings: { ...timings, openMs, loadMs, queryMs: performance.now() - t0 } }
  } finally {
    db.close()
    await rm(dir, { recursive: true, force: true })
  }
}
