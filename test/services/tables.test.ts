import t, { type Test } from 'tap'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DeleteObjectCommand, GetObjectCommand } from '@aws-sdk/client-s3'
import { alertKey, webhookKey } from '../../services/keys.js'
import { compactDay, daysOf, manifestKey, partKey, rowOf, type TablesDeps } from '../../services/tables.js'
import { queryAlerts } from '../../services/query.js'
import { openDb, runQuery, QueryError } from '../../services/duckdb.js'
import { startBackend, type CountingStore } from '../helpers/s3.js'

const DAY1 = Date.UTC(2017, 0, 15)
const DAY2 = Date.UTC(2017, 0, 16)
const H = 3_600_000

// What the Python service wrote: numbers for created_at, json.dumps' spacing.
const PYTHON_RECORD = '{"id": "py000001", "created_at": 1484452800000, "severity": 3, "title": "Python era"}'
const PYTHON_FULL = '{"id": "py000001", "created_at": 1484452800000, "severity": 3, "title": "Python era", "server_or_region": "old-host", "rule": {"id": "r-old", "name": "Old rule"}}'

async function seed (store: CountingStore): Promise<void> {
  const full = (id: string, at: number, extra: Record<string, unknown>): string => JSON.stringify({ id, created_at: at, title: `alert ${id}`, ...extra })
  await store.putMany([
    [webhookKey('', 'a0000001', DAY1 + H), JSON.stringify({ id: 'a0000001', created_at: String(DAY1 + H), severity: '1' })],
    [alertKey('', 'a0000001'), full('a0000001', DAY1 + H, { severity: 1, source: 'host', server_or_region: 'web-1', agent_id: 'ag-1', rule: { id: 'r-1', name: 'Login', ruleset_id: 'rs-1' }, organization_id: 'org-1' })],
    // API v2 spelling.
    [webhookKey('', 'a0000002', DAY1 + 2 * H), JSON.stringify({ id: 'a0000002', created_at: String(DAY1 + 2 * H) })],
    [alertKey('', 'a0000002'), JSON.stringify({ id: 'a0000002', createdAt: new Date(DAY1 + 2 * H).toISOString(), severity: 2, dataSource: 'cloudtrail', ruleId: 'r-ct', rulesetId: 'rs-ct', agentId: 'ag-2', title: 'v2' })],
    // Full alert missing: the row comes from the record.
    [webhookKey('', 'a0000003', DAY1 + 3 * H), JSON.stringify({ id: 'a0000003', created_at: String(DAY1 + 3 * H), severity: '2', title: 'from record', server_or_region: 'web-2' })],
    [webhookKey('', 'py000001', DAY1 + 4 * H), PYTHON_RECORD],
    [alertKey('', 'py000001'), PYTHON_FULL],
    [webhookKey('', 'b0000001', DAY2 + H), JSON.stringify({ id: 'b0000001', created_at: String(DAY2 + H), severity: '1' })],
    [alertKey('', 'b0000001'), full('b0000001', DAY2 + H, { severity: 1, server_or_region: 'web-1' })]
  ])
}

async function setup (t: Test): Promise<{ store: CountingStore, deps: TablesDeps }> {
  const store = await startBackend(t, 's3rver', 'tables-bucket')
  await seed(store)
  return { store, deps: { store, concurrency: 4 } }
}

async function getObject (store: CountingStore, key: string): Promise<Uint8Array | undefined> {
  try {
    const res = await store.s3.send(new GetObjectCommand({ Bucket: store.bucket, Key: key }))
    return await res.Body!.transformToByteArray()
  } catch (err) {
    if ((err as { name?: string }).name === 'NoSuchKey') return undefined
    throw err
  }
}

/** The rows of a stored part, read by DuckDB from a local copy, with the types it finds. */
async function readPart (t: Test, bytes: Uint8Array): Promise<{ rows: Array<Record<string, unknown>>, types: Record<string, string> }> {
  const dir = await mkdtemp(join(tmpdir(), 'ts2s3-part-'))
  t.teardown(async () => rm(dir, { recursive: true, force: true }))
  await writeFile(join(dir, 'p.parquet'), bytes)
  const db = await openDb()
  try {
    const res = await runQuery(db, `SELECT * FROM read_parquet('${join(dir, 'p.parquet')}')`)
    const codec = await runQuery(db, `SELECT DISTINCT compression FROM parquet_metadata('${join(dir, 'p.parquet')}')`)
    t.same(codec.rows, [['ZSTD']], 'ZSTD throughout')
    return {
      rows: res.rows.map((r) => Object.fromEntries(res.columns.map((c, i) => [c, r[i]]))),
      types: Object.fromEntries(res.columns.map((c, i) => [c, res.types[i] as string]))
    }
  } finally {
    db.close()
  }
}

t.test('rowOf takes fields from the full alert first, in the spellings Threat Stack uses', async (t) => {
  const row = rowOf('x1', 0, '{"id":"x1","created_at":"1000","severity":"3","title":"rec"}', '{"id":"x1","severity":1,"ruleId":"r","agent":{"id":"ag"},"ruleset":{"id":"rs"}}')
  t.match(row, { id: 'x1', created_at_ms: 1000, severity: 1, title: 'rec', rule_id: 'r', agent_id: 'ag', ruleset_id: 'rs', full_alert: true })
  const broken = rowOf('x2', 60_000, 'not json', '{"truncated":')
  t.match(broken, { id: 'x2', created_at_ms: 60_000, severity: null, full_alert: false, raw: null }, 'unreadable objects: the key alone makes the row')
})

t.test('daysOf lists the UTC days a range touches', async (t) => {
  t.same(daysOf({ startMs: DAY1 + H, endMs: DAY2 }), ['2017-01-15'])
  t.same(daysOf({ startMs: DAY1 + H, endMs: DAY2 + 1 }), ['2017-01-15', '2017-01-16'])
})

t.test('compactDay writes one typed Parquet part and a manifest, then nothing while the day is unchanged', async (t) => {
  const { store, deps } = await setup(t)
  const first = await compactDay(deps, '2017-01-15')
  t.match(first, { status: 'written', rows: 4, withoutFullAlert: 1, parts: 1 })
  const part = await getObject(store, partKey('', '2017-01-15', 0))
  t.ok(part, 'part-0.parquet stored')
  const { rows, types } = await readPart(t, part!)
  t.match(types, { id: 'VARCHAR', created_at: 'TIMESTAMP', severity: 'INTEGER', full_alert: 'BOOLEAN', raw: 'VARCHAR' })
  t.same(rows.map((r) => r.id), ['a0000001', 'a0000002', 'a0000003', 'py000001'], 'ordered by created_at')
  t.match(rows[0], { created_at: '2017-01-15 01:00:00', severity: 1, source: 'host', server_or_region: 'web-1', rule_id: 'r-1', rule_name: 'Login', ruleset_id: 'rs-1', agent_id: 'ag-1', organization_id: 'org-1', full_alert: true })
  t.match(rows[1], { source: 'cloudtrail', rule_id: 'r-ct', ruleset_id: 'rs-ct', agent_id: 'ag-2', severity: 2 })
  t.match(rows[2], { title: 'from record', severity: 2, server_or_region: 'web-2', full_alert: false, raw: null })
  t.equal(rows[3]?.raw, PYTHON_FULL, 'raw is the full alert byte for byte, as the Python service stored it')
  t.match(rows[3], { rule_id: 'r-old', server_or_region: 'old-host', severity: 3 })
  const manifest = JSON.parse(new TextDecoder().decode(await getObject(store, manifestKey('', '2017-01-15')))) as Record<string, unknown>
  t.match(manifest, { v: 1, day: '2017-01-15', rows: 4, withoutFullAlert: 1, parts: ['part-0.parquet'] })

  store.reset()
  const again = await compactDay(deps, '2017-01-15')
  t.match(again, { status: 'unchanged', rows: 4 })
  t.notOk(store.requests.has('PutObjectCommand'), 'an unchanged day is not written again')

  // The missing full alert arrives: the day is rebuilt.
  await store.putRaw(alertKey('', 'a0000003'), JSON.stringify({ id: 'a0000003', created_at: DAY1 + 3 * H, severity: 1, title: 'completed' }))
  const third = await compactDay(deps, '2017-01-15')
  t.match(third, { status: 'written', rows: 4, withoutFullAlert: 0 })
  const rebuilt = await readPart(t, (await getObject(store, partKey('', '2017-01-15', 0)))!)
  t.match(rebuilt.rows[2], { id: 'a0000003', title: 'completed', severity: 1, full_alert: true })
})

t.test('a day whose records are all gone keeps a manifest of no rows and no part', async (t) => {
  const { store, deps } = await setup(t)
  await compactDay(deps, '2017-01-16')
  t.ok(await getObject(store, partKey('', '2017-01-16', 0)))
  await store.s3.send(new DeleteObjectCommand({ Bucket: store.bucket, Key: webhookKey('', 'b0000001', DAY2 + H) }))
  t.match(await compactDay(deps, '2017-01-16'), { status: 'written', rows: 0, parts: 0 })
  t.equal(await getObject(store, partKey('', '2017-01-16', 0)), undefined, 'the stale part is deleted')
  const res = await queryAlerts(deps, { startMs: DAY2, endMs: DAY2 + 86_400_000 }, 'SELECT count(*) AS n FROM alerts')
  t.same(res.rows, [['0']])
  t.equal(res.load.compactedDays, 1)
})

t.test('queryAlerts answers over compacted days and JSON days alike', async (t) => {
  const { store, deps } = await setup(t)
  await compactDay(deps, '2017-01-15')
  const range = { startMs: DAY1, endMs: DAY2 + 86_400_000 }
  store.reset()
  const res = await queryAlerts(deps, range, 'SELECT dt, severity, count(*) AS n FROM alerts GROUP BY ALL ORDER BY ALL')
  t.same(res.columns, ['dt', 'severity', 'n'])
  t.same(res.rows, [['2017-01-15', 1, '1'], ['2017-01-15', 2, '2'], ['2017-01-15', 3, '1'], ['2017-01-16', 1, '1']])
  t.match(res.load, { days: 2, compactedDays: 1, parts: 1, jsonAlerts: 1, staleDays: 0 })
  t.equal(store.requests.get('GetObjectCommand'), 2 + 2, 'the compacted day: manifest and part; the other: its (missing) manifest and the full alert (which makes the record unneeded)')

  const fromJson = await queryAlerts(deps, range, 'SELECT dt, severity, count(*) AS n FROM alerts GROUP BY ALL ORDER BY ALL', { useTables: false })
  t.same(fromJson.rows, res.rows, 'the same answer from the JSON objects alone')
  t.equal(fromJson.load.jsonAlerts, 5)

  const partial = await queryAlerts(deps, { startMs: DAY1 + 2 * H, endMs: DAY1 + 3 * H + 1 }, 'SELECT id FROM alerts ORDER BY id')
  t.same(partial.rows, [['a0000002'], ['a0000003']], 'start ≤ created_at < end, inside a compacted day')

  // A record filed after compaction: the day is read from its objects again.
  await store.putRaw(webhookKey('', 'a0000009', DAY1 + 20 * H), JSON.stringify({ id: 'a0000009', created_at: String(DAY1 + 20 * H), severity: '3' }))
  const late = await queryAlerts(deps, range, 'SELECT count(*) FROM alerts')
  t.same(late.rows, [['6']])
  t.equal(late.load.staleDays, 1)
})

t.test('SQL errors are QueryError with DuckDB\'s message; the SQL reads nothing but its table', async (t) => {
  const { deps } = await setup(t)
  const range = { startMs: DAY1, endMs: DAY2 }
  await t.rejects(queryAlerts(deps, range, 'SELEC 1'), { name: 'QueryError', message: /syntax error/ })
  await t.rejects(queryAlerts(deps, range, 'SELECT nope FROM alerts'), QueryError)
  await t.rejects(queryAlerts(deps, range, "SELECT * FROM read_text('/etc/hostname')"), { name: 'QueryError', message: /disabled by configuration|Permission/ })
  await t.rejects(queryAlerts(deps, range, "COPY alerts TO '/tmp/ts2s3-leak.csv'"), QueryError)
  await t.rejects(queryAlerts(deps, range, 'SET enable_external_access = true'), QueryError)
})

t.test('the table tier lives under the prefix', async (t) => {
  const store = await startBackend(t, 's3rver', 'tables-bucket', 'team/a')
  await store.putRaw(webhookKey('team/a', 'c0000001', DAY1 + H), JSON.stringify({ id: 'c0000001', created_at: String(DAY1 + H) }))
  await compactDay({ store, concurrency: 2 }, '2017-01-15')
  t.ok(await getObject(store, 'team/a/tables/alerts/dt=2017-01-15/part-0.parquet'))
  t.ok(await getObject(store, 'team/a/tables/alerts/dt=2017-01-15/_manifest.json'))
})

t.test('a full alert that disagrees with its key\'s minute: the record is read and its created_at kept', async (t) => {
  const store = await startBackend(t, 's3rver', 'tables-bucket')
  await store.putRaw(webhookKey('', 'e0000001', DAY1 + H), JSON.stringify({ id: 'e0000001', created_at: String(DAY1 + H), title: 'record' }))
  await store.putRaw(alertKey('', 'e0000001'), JSON.stringify({ id: 'e0000001', created_at: DAY1 + 5 * H, severity: 1 }))
  await store.putRaw(webhookKey('', 'e0000002', DAY1 + 2 * H), JSON.stringify({ id: 'e0000002', created_at: String(DAY1 + 2 * H) }))
  await store.putRaw(alertKey('', 'e0000002'), JSON.stringify({ id: 'e0000002', created_at: DAY1 + 2 * H, severity: 2 }))
  store.reset()
  const res = await queryAlerts({ store, concurrency: 2 }, { startMs: DAY1, endMs: DAY2 }, 'SELECT id, created_at, severity, title FROM alerts ORDER BY id')
  t.same(res.rows, [['e0000001', '2017-01-15 01:00:00', 1, 'record'], ['e0000002', '2017-01-15 02:00:00', 2, null]])
  t.equal(store.requests.get('GetObjectCommand'), 1 + 2 + 1, 'manifest; both objects of the first; the full alert alone of the second')
})

t.test('a day of more than one LIST page: the first page, then the rest of its hours at once, every record kept', async (t) => {
  const store = await startBackend(t, 'fauxqs', 'tables-bucket')
  // Pages of 10 keys; 23 records over hours 0-11, two an hour: the first page ends inside hour 4.
  const records: Array<[string, string]> = Array.from({ length: 23 }, (_, i) => {
    const at = DAY1 + Math.floor(i / 2) * H + (i % 2) * 60_000
    const id = `f${String(i).padStart(7, '0')}`
    return [webhookKey('', id, at), JSON.stringify({ id, created_at: String(at), severity: '2' })]
  })
  await store.putMany(records)
  const deps = { store, concurrency: 16, listPageSize: 10 }
  store.reset()
  t.match(await compactDay(deps, '2017-01-15'), { status: 'written', rows: 23 })
  t.equal(store.requests.get('ListObjectsV2Command'), 1 + (24 - 4) + 1, 'the first page, hours 4 to 23 (one page each), and the part folder')

  store.reset()
  const res = await queryAlerts(deps, { startMs: DAY1, endMs: DAY2 }, 'SELECT count(*) AS n, count(DISTINCT id) AS ids FROM alerts')
  t.same(res.rows, [['23', '23']])
  t.match(res.load, { compactedDays: 1, staleDays: 0 }, 'the check lists the same keys as compaction did')

  // A late record in the hour the first page ended in, after its last key, and one in hour 23.
  await store.putRaw(webhookKey('', 'g0000001', DAY1 + 4 * H + 59 * 60_000), JSON.stringify({ id: 'g0000001', created_at: String(DAY1 + 4 * H + 59 * 60_000) }))
  await store.putRaw(webhookKey('', 'g0000002', DAY1 + 23 * H), JSON.stringify({ id: 'g0000002', created_at: String(DAY1 + 23 * H) }))
  const late = await queryAlerts(deps, { startMs: DAY1, endMs: DAY2 }, 'SELECT count(*) FROM alerts')
  t.same(late.rows, [['25']])
  t.equal(late.load.staleDays, 1)
})
