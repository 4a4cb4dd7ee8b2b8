// The table tier: each UTC day of the archive as Parquet (ZSTD), one row per alert, typed columns
// beside the full alert as stored. A derived, rebuildable index; the JSON objects stay the evidence.
//   [prefix/]tables/alerts/dt=YYYY-MM-DD/part-<n>.parquet   rows of the day, by created_at then id
//   [prefix/]tables/alerts/dt=YYYY-MM-DD/_manifest.json     what the parts were built from
// Athena and Hive skip files whose name starts with "_", so the manifest never shows as data.
import { createHash } from 'node:crypto'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import pLimit from 'p-limit'
import { S3ClientError, UnexpectedException } from '../errors/index.js'
import { alertKey, parseWebhookKey, webhooksRoot, withPrefix } from './keys.js'
import { getJson, listKeys, putJsonState, type Store } from './storage.js'
import { deleteKeys, getBytes, listObjects, putBytes } from './blobs.js'
import { openDb, sqlString, type Db } from './duckdb.js'
import type { TimeRange } from './search.js'

/** Bumped whenever the columns or how they are derived change: every day is then rebuilt. */
export const TABLE_SCHEMA_VERSION = 1
/** Rows per Parquet part; a day of 10k alerts is one part. */
export const ROWS_PER_PART = 250_000

export interface Column {
  name: string
  /** DuckDB type (as written to Parquet). */
  duckdb: string
  /** Athena / Glue type of the same Parquet column. */
  athena: string
  description: string
}

export const COLUMNS: Column[] = [
  { name: 'id', duckdb: 'VARCHAR', athena: 'string', description: 'alert id' },
  { name: 'created_at', duckdb: 'TIMESTAMP', athena: 'timestamp', description: 'UTC; created_at of the webhook record (the time its key is filed under)' },
  { name: 'severity', duckdb: 'INTEGER', athena: 'int', description: '1 (high) to 3 (low); NULL when absent or not a number' },
  { name: 'title', duckdb: 'VARCHAR', athena: 'string', description: 'alert title' },
  { name: 'source', duckdb: 'VARCHAR', athena: 'string', description: 'source (`source`, or `dataSource` of API v2 alerts): host, cloudtrail, …' },
  { name: 'organization_id', duckdb: 'VARCHAR', athena: 'string', description: 'Threat Stack organization' },
  { name: 'server_or_region', duckdb: 'VARCHAR', athena: 'string', description: 'host name, or AWS region for CloudTrail alerts' },
  { name: 'rule_id', duckdb: 'VARCHAR', athena: 'string', description: '`rule_id`, `ruleId` or `rule.id`' },
  { name: 'rule_name', duckdb: 'VARCHAR', athena: 'string', description: '`rule_name` or `rule.name`' },
  { name: 'ruleset_id', duckdb: 'VARCHAR', athena: 'string', description: '`ruleset_id`, `rulesetId`, `rule.ruleset_id` or `ruleset.id`' },
  { name: 'agent_id', duckdb: 'VARCHAR', athena: 'string', description: '`agent_id`, `agentId` or `agent.id`' },
  { name: 'full_alert', duckdb: 'BOOLEAN', athena: 'boolean', description: 'false: the full alert is missing (or not JSON); the row comes from the webhook record alone' },
  { name: 'raw', duckdb: 'VARCHAR', athena: 'string', description: 'the full alert exactly as stored (JSON text); NULL when full_alert is false' }
]

/** A row as it travels to DuckDB: created_at in epoch milliseconds. */
export interface TableRow {
  id: string
  created_at_ms: number
  severity: number | null
  title: string | null
  source: string | null
  organization_id: string | null
  server_or_region: string | null
  rule_id: string | null
  rule_name: string | null
  ruleset_id: string | null
  agent_id: string | null
  full_alert: boolean
  raw: string | null
}

const DAY_MS = 86_400_000
const DAY = /^(\d{4})-(\d{2})-(\d{2})$/

export function tablesRoot (prefix: string): string {
  return withPrefix(prefix, 'tables/alerts/')
}

export function dayFolder (prefix: string, day: string): string {
  return `${tablesRoot(prefix)}dt=${day}/`
}

export function partKey (prefix: string, day: string, n: number): string {
  return `${dayFolder(prefix, day)}part-${n}.parquet`
}

export function manifestKey (prefix: string, day: string): string {
  return `${dayFolder(prefix, day)}_manifest.json`
}

/** `YYYY-MM-DD` of a time, UTC. */
export function dayOf (ms: number): string {
  return new Date(ms).toISOString().slice(0, 10)
}

/** Midnight UTC of a `YYYY-MM-DD`; undefined unless it is a real day of 1970-9999. */
export function parseDay (day: string): number | undefined {
  const m = DAY.exec(day)
  if (m === null) return undefined
  const ms = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]))
  return Number(m[1]) >= 1970 && dayOf(ms) === day ? ms : undefined
}

/** The UTC days a range touches, in order. */
export function daysOf (range: TimeRange): string[] {
  const days: string[] = []
  for (let ms = Math.floor(range.startMs / DAY_MS) * DAY_MS; ms < range.endMs; ms += DAY_MS) days.push(dayOf(ms))
  return days
}

type Json = Record<string, unknown>

function asObject (value: unknown): Json | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? value as Json : undefined
}

function parseObject (text: string | undefined): Json | undefined {
  if (text === undefined) return undefined
  try {
    return asObject(JSON.parse(text))
  } catch {
    return undefined
  }
}

function scalarText (value: unknown): string | null {
  if (typeof value === 'string') return value
  if (typeof value === 'number' && Number.isFinite(value)) return String(value)
  return null
}

/** The first path that names a string or number, in the first object that has it. */
function pick (objects: Array<Json | undefined>, paths: string[]): string | null {
  for (const object of objects) {
    if (object === undefined) continue
    for (const path of paths) {
      let value: unknown = object
      for (const part of path.split('.')) value = asObject(value)?.[part]
      const text = scalarText(value)
      if (text !== null) return text
    }
  }
  return null
}

/** Milliseconds of a created_at given as epoch ms (number or digits) or as an ISO date-time. */
function timeOf (value: unknown): number | undefined {
  if (typeof value === 'number' || (typeof value === 'string' && /^\d{1,16}$/.test(value))) {
    const ms = Number(value)
    return Number.isSafeInteger(ms) && ms >= 0 && ms < 253_402_300_800_000 ? ms : undefined
  }
  if (typeof value === 'string') {
    const ms = Date.parse(value)
    return Number.isNaN(ms) ? undefined : ms
  }
  return undefined
}

function severityOf (value: string | null): number | null {
  return value !== null && /^\s*-?\d{1,9}\s*$/.test(value) ? Number(value) : null
}

/**
 * One row from an alert's webhook record and full alert, as stored (either may be missing or
 * not JSON). Fields come from the full alert first, then the record; created_at from the record
 * (what its key is filed under), then the full alert, then the key's minute. Without a record
 * (readDayFromJson skips reading it when the full alert's created_at is in the key's minute)
 * created_at is the full alert's.
 */
export function rowOf (id: string, keyMinuteMs: number, recordText: string | undefined, fullText: string | undefined): TableRow {
  const record = parseObject(recordText)
  const full = parseObject(fullText)
  const both = [full, record]
  return {
    id,
    created_at_ms: timeOf(record?.created_at) ?? timeOf(full?.created_at) ?? timeOf(full?.createdAt) ?? keyMinuteMs,
    severity: severityOf(pick(both, ['severity'])),
    title: pick(both, ['title']),
    source: pick(both, ['source', 'dataSource']),
    organization_id: pick(both, ['organization_id', 'organizationId']),
    server_or_region: pick(both, ['server_or_region', 'serverOrRegion']),
    rule_id: pick(both, ['rule_id', 'ruleId', 'rule.id']),
    rule_name: pick(both, ['rule_name', 'rule.name']),
    ruleset_id: pick(both, ['ruleset_id', 'rulesetId', 'rule.ruleset_id', 'ruleset.id']),
    agent_id: pick(both, ['agent_id', 'agentId', 'agent.id']),
    full_alert: full !== undefined,
    raw: full !== undefined ? fullText as string : null
  }
}

export interface TablesDeps {
  store: Store
  /** How many S3 GETs run at once while a day is read. */
  concurrency: number
  /** Keys per LIST page: S3's most, 1000, unless told (tests make busy days of a few keys). */
  listPageSize?: number
  /** Stops reading a day between alerts; the work then throws the signal's reason. */
  signal?: AbortSignal
}

export interface DayRows {
  rows: TableRow[]
  /** sha256 of the day's webhook record keys: a listing tells whether the day has changed since. */
  keysHash: string
}

function hashKeys (keys: string[]): string {
  return createHash('sha256').update(keys.join('\n')).digest('hex')
}

/**
 * The keys of the day's webhook records, in order. A day that fits one page is one LIST; a
 * busier one lists the rest of its hours at once (one LIST each) rather than page after page,
 * so that the check of a compacted day costs two round trips whatever its size.
 * @throws S3ClientError
 */
async function dayKeys (deps: TablesDeps, day: string): Promise<string[]> {
  const { store } = deps
  const page = deps.listPageSize ?? 1000
  const root = `${webhooksRoot(store.prefix)}${day.replaceAll('-', '/')}/`
  const list = async (prefix: string, startAfter?: string): Promise<string[]> => {
    const keys: string[] = []
    for await (const key of listKeys(store, { Prefix: prefix, ...(startAfter !== undefined && { StartAfter: startAfter }) }, page)) {
      if (parseWebhookKey(store.prefix, key) !== undefined) keys.push(key)
    }
    return keys
  }
  const first: string[] = []
  let last: string | undefined
  // Stopping after the first page's last key: the generator asks for the next page only when pulled.
  for await (const key of listKeys(store, { Prefix: root }, page)) {
    last = key
    if (parseWebhookKey(store.prefix, key) !== undefined) first.push(key)
    if (first.length === page) break
  }
  if (first.length < page || last === undefined) return first
  const hour = Number(last.slice(root.length, root.length + 2))
  const rest = await Promise.all(Array.from({ length: 24 - hour }, async (_, i) => {
    const hh = String(hour + i).padStart(2, '0')
    return await list(`${root}${hh}/`, i === 0 ? last : undefined)
  }))
  return [...first, ...rest.flat()]
}

/** The day's rows from its JSON objects: every webhook record of the day and its full alert. @throws S3ClientError */
export async function readDayFromJson (deps: TablesDeps, day: string, onAlert?: () => void, listed?: string[]): Promise<DayRows> {
  const { store } = deps
  const dayMs = parseDay(day)
  if (dayMs === undefined) throw new RangeError(`not a day: ${day}`)
  const keys = listed ?? await dayKeys(deps, day)
  const seen = new Set<string>()
  const entries: Array<{ key: string, id: string, minuteMs: number }> = []
  for (const key of keys) {
    const parsed = parseWebhookKey(store.prefix, key)
    // One row per alert: a record filed twice (re-delivered with another created_at) counts once, at its first minute.
    if (parsed === undefined || seen.has(parsed.id)) continue
    seen.add(parsed.id)
    entries.push({ key, ...parsed })
  }
  const limit = pLimit(deps.concurrency)
  const decoder = new TextDecoder('utf-8')
  const text = async (key: string): Promise<string | undefined> => {
    const bytes = await getBytes(store, key)
    return bytes === undefined ? undefined : decoder.decode(bytes)
  }
  const rows = await Promise.all(entries.map(async ({ key, id, minuteMs }) => limit(async () => {
    deps.signal?.throwIfAborted()
    // One GET per alert when its full alert is there and agrees with the key's minute (the
    // record then adds nothing: the full alert has every field first); two otherwise.
    const full = await text(alertKey(store.prefix, id))
    const fromFull = full === undefined ? undefined : rowOf(id, minuteMs, undefined, full)
    onAlert?.()
    if (fromFull?.full_alert === true && fromFull.created_at_ms >= minuteMs && fromFull.created_at_ms < minuteMs + 60_000) return fromFull
    return rowOf(id, minuteMs, await text(key), full)
  })))
  rows.sort((a, b) => a.created_at_ms - b.created_at_ms || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  return { rows, keysHash: hashKeys(keys) }
}

function ndjson (rows: TableRow[]): string {
  return rows.map((r) => JSON.stringify(r)).join('\n') + (rows.length > 0 ? '\n' : '')
}

const JSON_COLUMNS = `{${[
  'id: \'VARCHAR\'', 'created_at_ms: \'BIGINT\'',
  ...COLUMNS.filter((c) => c.name !== 'id' && c.name !== 'created_at').map((c) => `${c.name}: '${c.duckdb}'`)
].join(', ')}}`

const SELECT_COLUMNS = COLUMNS.map((c) => c.name === 'created_at' ? 'epoch_ms(created_at_ms) AS created_at' : c.name).join(', ')

/**
 * Writes rows (already in order) as Parquet parts `part-<n>.parquet` in `dir`, through an NDJSON
 * file DuckDB reads with the columns declared (nothing is guessed from the data).
 * @returns the file names, in order
 */
export async function writeParts (db: Db, rows: TableRow[], dir: string): Promise<string[]> {
  await mkdir(dir, { recursive: true })
  const names: string[] = []
  for (let n = 0; n * ROWS_PER_PART < rows.length; n++) {
    const source = join(dir, `part-${n}.ndjson`)
    const name = `part-${n}.parquet`
    await writeFile(source, ndjson(rows.slice(n * ROWS_PER_PART, (n + 1) * ROWS_PER_PART)))
    try {
      await db.connection.run(`COPY (SELECT ${SELECT_COLUMNS} FROM read_json(${sqlString(source)}, format = 'newline_delimited', ` +
        `columns = ${JSON_COLUMNS}, maximum_object_size = 268435456)) TO ${sqlString(join(dir, name))} (FORMAT parquet, COMPRESSION zstd)`)
    } catch (err) {
      throw new UnexpectedException({ cause: err })
    } finally {
      await rm(source, { force: true })
    }
    names.push(name)
  }
  return names
}

export interface Manifest {
  v: number
  schema: number
  day: string
  rows: number
  /** Rows made from the webhook record alone. */
  withoutFullAlert: number
  parts: string[]
  /** sha256 of the rows (in order), which hold every stored byte they were made from. */
  sourceHash: string
  /** sha256 of the webhook record keys the rows were made from. */
  keysHash: string
  /**
   * The hourly ledgers the day was compacted after, when the sweeper did it: a fingerprint of
   * what they say of the archive (their check times left out) and whether all 24 hours were
   * complete. The sweeper compacts the day again only when this fingerprint changes.
   */
  ledgers?: ManifestLedgers
}

export interface ManifestLedgers {
  hash: string
  /** Every hour of the day complete: nothing missing, nothing pending. */
  complete: boolean
  missing: number
  pending: number
}

function isManifest (value: unknown, day: string): value is Manifest {
  const m = asObject(value)
  return m !== undefined && m.v === 1 && m.schema === TABLE_SCHEMA_VERSION && m.day === day &&
    Array.isArray(m.parts) && m.parts.every((p) => typeof p === 'string' && /^part-\d+\.parquet$/.test(p)) &&
    typeof m.sourceHash === 'string' && typeof m.keysHash === 'string' && Number.isSafeInteger(m.rows)
}

/** The day's manifest when the day is compacted with the current columns; undefined otherwise. @throws S3ClientError */
export async function readManifest (store: Store, day: string): Promise<Manifest | undefined> {
  let value: unknown
  try {
    value = await getJson(store, manifestKey(store.prefix, day))
  } catch (err) {
    // A manifest that is not JSON is as good as none: the day is read from its JSON objects, and rebuilt by the next compaction.
    if (err instanceof S3ClientError && err.cause instanceof Error && /is not JSON/.test(err.cause.message)) return undefined
    throw err
  }
  return isManifest(value, day) ? value : undefined
}

export interface CompactResult {
  day: string
  /** `written`: parts and manifest stored; `unchanged`: the stored parts already hold these rows. */
  status: 'written' | 'unchanged'
  rows: number
  withoutFullAlert: number
  parts: number
  bytes: number
}

export interface CompactDeps extends TablesDeps {
  /** An open database to reuse across days; one is opened (and closed) per call otherwise. */
  db?: Db
  /** Told after each alert read. */
  onAlert?: () => void
  /** The ledgers this compaction follows (the sweeper's), recorded in the manifest. */
  ledgers?: ManifestLedgers
}

/** The lease that one day's compaction runs under, shared by the sweeper and the compact command. */
export function dayLeaseName (day: string): string {
  return `tables/dt=${day}`
}

/**
 * Builds the table tier of one UTC day from its JSON objects. Idempotent: the rows are hashed
 * and nothing is written when the stored manifest has that hash. When the day changed, the new
 * parts go first, the manifest after them, and parts of the former build beyond the new count
 * are deleted last, so a reader never finds a manifest naming parts that do not exist.
 * Python-era days are read the same way: the layout is the same.
 * @throws S3ClientError | UnexpectedException (DuckDB could not write the parts)
 */
export async function compactDay (deps: CompactDeps, day: string): Promise<CompactResult> {
  const { store } = deps
  if (parseDay(day) === undefined) throw new RangeError(`not a day: ${day}`)
  const { rows, keysHash } = await readDayFromJson(deps, day, deps.onAlert)
  const withoutFullAlert = rows.filter((r) => !r.full_alert).length
  const sourceHash = createHash('sha256').update(`schema ${TABLE_SCHEMA_VERSION}\n`).update(ndjson(rows)).digest('hex')
  const current = await readManifest(store, day)
  if (current !== undefined && current.sourceHash === sourceHash) {
    // The ledgers moved on without changing the rows (a re-check found nothing new): only the
    // manifest learns it, so the sweeper does not read the whole day again for the same ledgers.
    // Likewise a record filed twice (same rows, one more key), so that queries trust the parts.
    if ((deps.ledgers !== undefined && current.ledgers?.hash !== deps.ledgers.hash) || current.keysHash !== keysHash) {
      await putJsonState(store, manifestKey(store.prefix, day), { ...current, keysHash, ...(deps.ledgers !== undefined && { ledgers: deps.ledgers }) } satisfies Manifest)
    }
    return { day, status: 'unchanged', rows: current.rows, withoutFullAlert, parts: current.parts.length, bytes: 0 }
  }
  deps.signal?.throwIfAborted()

  const dir = await mkdtemp(join(tmpdir(), 'ts2s3-compact-'))
  const db = deps.db ?? await openDb({ threads: 1 })
  let bytes = 0
  let parts: string[]
  try {
    parts = await writeParts(db, rows, dir)
    for (const [n, name] of parts.entries()) {
      const body = await readFile(join(dir, name))
      bytes += body.length
      await putBytes(store, partKey(store.prefix, day, n), body, 'application/vnd.apache.parquet')
    }
  } finally {
    if (deps.db === undefined) db.close()
    await rm(dir, { recursive: true, force: true })
  }
  const manifest: Manifest = { v: 1, schema: TABLE_SCHEMA_VERSION, day, rows: rows.length, withoutFullAlert, parts, sourceHash, keysHash, ...(deps.ledgers !== undefined && { ledgers: deps.ledgers }) }
  await putJsonState(store, manifestKey(store.prefix, day), manifest)
  const keep = new Set([...parts.map((_, n) => partKey(store.prefix, day, n)), manifestKey(store.prefix, day)])
  const stale = (await listObjects(store, dayFolder(store.prefix, day))).map((o) => o.key).filter((k) => !keep.has(k))
  await deleteKeys(store, stale)
  return { day, status: 'written', rows: rows.length, withoutFullAlert, parts: parts.length, bytes }
}

export interface LoadProgress {
  days: number
  daysDone: number
  /** Days served by their Parquet parts, and how many parts and bytes were downloaded. */
  compactedDays: number
  parts: number
  bytes: number
  /** Alerts read from JSON objects, for the days not compacted. */
  jsonAlerts: number
  /** Compacted days read from JSON all the same: records were added or removed since. */
  staleDays: number
}

/** Where a load's time went, in ms of wall time: the phases follow each other. */
export interface LoadTimings {
  /** Every day's manifest and the listing of its webhook records, all days at once. */
  checkMs: number
  /** Parts downloaded and, for the other days, their JSON objects read and written as local parts. */
  fetchMs: number
  /** The view over the local parts made and checked by DuckDB. */
  viewMs: number
}

export interface LoadOptions {
  /** false: ignore the table tier and read every day from its JSON objects. */
  useTables?: boolean
  /**
   * true (default): list each compacted day's webhook records and read the day from its JSON
   * objects when they are no longer the ones its parts were built from (an alert arrived late).
   * One LIST per 1000 alerts of the day against one GET per alert and object.
   */
  verify?: boolean
  onProgress?: (p: LoadProgress) => void
}

/** Days whose manifest and listing are fetched at once: a few requests each, nothing to hold in memory. */
const CHECK_DAYS_AT_ONCE = 16

/**
 * Makes the view `alerts` (the columns, plus `dt`) over the alerts of `range`: for each day its
 * Parquet parts, downloaded into `dir`, or, for a day not compacted yet, its JSON objects turned
 * into a local part the same way compaction would. The answer is complete either way.
 * @throws S3ClientError | UnexpectedException
 */
export async function loadAlerts (deps: TablesDeps, db: Db, range: TimeRange, dir: string, options: LoadOptions = {}): Promise<LoadProgress & { timings: LoadTimings }> {
  const { store } = deps
  const days = daysOf(range)
  const progress: LoadProgress = { days: days.length, daysDone: 0, compactedDays: 0, parts: 0, bytes: 0, jsonAlerts: 0, staleDays: 0 }
  const timings: LoadTimings = { checkMs: 0, fetchMs: 0, viewMs: 0 }
  const tell = (): void => options.onProgress?.({ ...progress })
  tell()
  let t0 = performance.now()
  // First what each day is (its manifest, and the listing that checks it), every day at once:
  // these are a few small requests per day, and the slow part of a compacted day.
  const checkLimit = pLimit(CHECK_DAYS_AT_ONCE)
  const checked = await Promise.all(days.map(async (day) => checkLimit(async () => {
    if (options.useTables === false) return { day, manifest: undefined, keys: undefined }
    const [found, keys] = await Promise.all([readManifest(store, day), options.verify === false ? undefined : dayKeys(deps, day)])
    if (found !== undefined && keys !== undefined && hashKeys(keys) !== found.keysHash) {
      progress.staleDays++
      return { day, manifest: undefined, keys }
    }
    return { day, manifest: found, keys }
  })))
  timings.checkMs = performance.now() - t0
  t0 = performance.now()

  // Then the bytes: all parts of the compacted days through one bound, beside the days read from
  // JSON a few at a time (each day's own GETs are bounded by deps.concurrency).
  const partLimit = pLimit(deps.concurrency)
  const dayLimit = pLimit(Math.max(1, Math.min(4, deps.concurrency)))
  const jsonDays: Array<{ day: string, rows: TableRow[] }> = []
  await Promise.all(checked.map(async ({ day, manifest, keys }) => {
    const folder = join(dir, `dt=${day}`)
    if (manifest !== undefined) {
      await mkdir(folder, { recursive: true })
      await Promise.all(manifest.parts.map(async (name, n) => partLimit(async () => {
        const body = await getBytes(store, partKey(store.prefix, day, n))
        // Parts are written before their manifest; a missing one means the day was being rebuilt
        // by a writer that failed midway: the evidence is still there.
        if (body === undefined) throw new S3ClientError({ cause: new Error(`part ${n} of ${day} is missing`) })
        await writeFile(join(folder, name), body)
        progress.parts++
        progress.bytes += body.length
        tell()
      })))
      progress.compactedDays++
    } else {
      await dayLimit(async () => {
        const { rows } = await readDayFromJson(deps, day, () => { progress.jsonAlerts++; if (progress.jsonAlerts % 100 === 0) tell() }, keys)
        jsonDays.push({ day, rows })
      })
    }
    progress.daysDone++
    tell()
  }))
  // DuckDB writes one day at a time; the downloads above ran alongside.
  for (const { day, rows } of jsonDays) await writeParts(db, rows, join(dir, `dt=${day}`))
  timings.fetchMs = performance.now() - t0
  t0 = performance.now()

  const bounds = `created_at >= epoch_ms(${Math.trunc(range.startMs)}) AND created_at < epoch_ms(${Math.trunc(range.endMs)})`
  const names = COLUMNS.map((c) => c.name).join(', ')
  const anyPart = progress.compactedDays > 0 || jsonDays.some((d) => d.rows.length > 0)
  const from = anyPart
    ? `SELECT ${names}, dt FROM read_parquet(${sqlString(join(dir, '*', '*.parquet'))}, hive_partitioning = true, hive_types = {'dt': VARCHAR})`
    : `SELECT ${COLUMNS.map((c) => `CAST(NULL AS ${c.duckdb}) AS ${c.name}`).join(', ')}, CAST(NULL AS VARCHAR) AS dt WHERE false`
  try {
    // A compacted day with no rows has a folder and no part: the glob can still match nothing.
    await db.connection.run(`CREATE VIEW alerts AS SELECT * FROM (${from}) WHERE ${bounds}`)
    if (anyPart) await db.connection.run('SELECT count(*) FROM alerts')
  } catch (err) {
    if (!/No files found/i.test(String((err as Error).message))) throw new UnexpectedException({ cause: err })
    await db.connection.run('DROP VIEW IF EXISTS alerts')
    await db.connection.run(`CREATE VIEW alerts AS SELECT ${COLUMNS.map((c) => `CAST(NULL AS ${c.duckdb}) AS ${c.name}`).join(', ')}, CAST(NULL AS VARCHAR) AS dt WHERE false`)
  }
  timings.viewMs = performance.now() - t0
  return { ...progress, timings }
}

export { DAY_MS }
