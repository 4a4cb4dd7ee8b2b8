// DuckDB in-process: one in-memory database per job, UTC throughout, local files only (S3 bytes
// travel through our own client; DuckDB's httpfs is neither needed nor loaded).
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api'

/**
 * SQL of the `query` command that DuckDB rejected; the message is DuckDB's, for the person who
 * wrote the SQL. A command-line error only: no route answers with it, so it is not part of the
 * HTTP error catalogue of errors/index.ts.
 */
export class QueryError extends Error {
  constructor (message: string, options: { cause?: unknown } = {}) {
    super(message, options)
    this.name = 'QueryError'
  }
}

export interface Db {
  connection: DuckDBConnection
  close: () => void
}

/** An in-memory database; `threads` bounds the cores one job takes on a shared machine. */
export async function openDb (options: { threads?: number } = {}): Promise<Db> {
  const instance = await DuckDBInstance.create(':memory:', {
    threads: String(options.threads ?? 2),
    // Extensions come built in; nothing is fetched from the network.
    autoinstall_known_extensions: 'false',
    autoload_known_extensions: 'false'
  })
  const connection = await instance.connect()
  // TIMESTAMP columns hold UTC; the session zone only matters for TIMESTAMPTZ casts a query may make.
  await connection.run("SET TimeZone = 'UTC'")
  return {
    connection,
    close: () => {
      connection.closeSync()
      instance.closeSync()
    }
  }
}

/** A string literal for SQL text (paths of our own temp files, dates we formatted). */
export function sqlString (value: string): string {
  return `'${value.replaceAll("'", "''")}'`
}

/**
 * From here on the database reads files under `dir` only, writes none, and cannot be
 * reconfigured: a query typed by a person sees the tables it was given and nothing else.
 */
export async function confineTo (db: Db, dir: string): Promise<void> {
  const root = dir.endsWith('/') ? dir : `${dir}/`
  // A query larger than memory spills inside the same folder, removed with it.
  await db.connection.run(`SET temp_directory = ${sqlString(`${root}spill`)}`)
  await db.connection.run(`SET allowed_directories = [${sqlString(root)}]`)
  await db.connection.run('SET enable_external_access = false')
  await db.connection.run('SET lock_configuration = true')
}

export interface QueryResult {
  columns: string[]
  types: string[]
  /** Values as JSON: numbers, strings (timestamps, big integers, decimals as text), booleans, null, lists, objects. */
  rows: unknown[][]
}

/** Runs SQL a person wrote. @throws QueryError carrying DuckDB's own message (the SQL is theirs to fix) */
export async function runQuery (db: Db, sql: string): Promise<QueryResult> {
  try {
    const reader = await db.connection.runAndReadAll(sql)
    return { columns: reader.columnNames(), types: reader.columnTypes().map(String), rows: reader.getRowsJson() }
  } catch (err) {
    throw new QueryError(err instanceof Error ? err.message : String(err), { cause: err })
  }
}
