// Query results as text: an aligned table for a person, JSON or CSV for a program.
import type { QueryResult } from '../services/duckdb.js'

const BIG = new Set(['BIGINT', 'UBIGINT', 'HUGEINT', 'UHUGEINT'])

/** A value as JSON: a count (BIGINT, which DuckDB hands out as text) becomes a number when exact. */
function jsonValue (value: unknown, type: string | undefined): unknown {
  if (typeof value === 'string' && type !== undefined && BIG.has(type) && /^-?\d+$/.test(value) && Number.isSafeInteger(Number(value))) return Number(value)
  return value
}

function cell (value: unknown): string {
  if (value === null || value === undefined) return 'NULL'
  if (typeof value === 'string') return value
  if (typeof value === 'number' || typeof value === 'boolean') return String(value)
  return JSON.stringify(value)
}

const NUMERIC = /^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|UHUGEINT|FLOAT|DOUBLE|DECIMAL.*)$/

/** Columns padded to their widest cell, numbers on the right; control characters shown escaped so rows stay rows. */
export function formatTable (result: QueryResult): string {
  const safe = (text: string): string => [...text].map((c) => c.charCodeAt(0) < 32 || c === '\u007f' ? JSON.stringify(c).slice(1, -1) : c).join('')
  const header = result.columns.map(safe)
  const body = result.rows.map((row) => row.map((v) => safe(cell(v))))
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => (r[i] ?? '').length)))
  const right = result.types.map((t) => NUMERIC.test(t))
  const line = (cells: string[]): string => cells.map((c, i) => right[i] === true ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0)).join('  ').trimEnd()
  const count = `(${result.rows.length} row${result.rows.length === 1 ? '' : 's'})`
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line), count].join('\n') + '\n'
}

/** One JSON array of row objects, one row per line. */
export function formatJson (result: QueryResult): string {
  if (result.rows.length === 0) return '[]\n'
  const rows = result.rows.map((row) => JSON.stringify(Object.fromEntries(result.columns.map((c, i) => [c, jsonValue(row[i], result.types[i])]))))
  return `[\n${rows.join(',\n')}\n]\n`
}

function csvField (text: string): string {
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text
}

/** RFC 4180: a header row, CRLF line ends, NULL as an empty field. */
export function formatCsv (result: QueryResult): string {
  const value = (v: unknown): string => v === null || v === undefined ? '' : csvField(cell(v))
  return [result.columns.map(csvField).join(','), ...result.rows.map((row) => row.map(value).join(','))].map((l) => `${l}\r\n`).join('')
}
