// Writes a benchmark run's results: JSON, a Markdown table and an SVG plot, under .bench/results/
// (untracked), or bench/results/ (committed, what the README shows) with --update-results.
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ROOT } from './lib.js'

export interface Side { perSecond: number, p50: number, p99: number, errors: number, peakRssMb: number, cpuSecondsPer1000: number }
export interface Row {
  concurrency: number
  service: Side
  plain: Side
  latencyRatio: number
  throughputRatio: number
}
export interface Run {
  date: string
  /** Seconds per side and concurrency, split into `rounds` turns of service and plain client. */
  durationS: number
  rounds: number
  upstreamLatencyMs: number
  /** Heap size given to the service and the plain client (--max-heap-size), MB; 0: Node's default. */
  heapMb: number
  node: string
  rows: Row[]
  missing: number
  checked: number
  /**
   * Acknowledgement run (`--ack`): Threat Stack's added latency, apart from S3's (`upstreamLatencyMs`);
   * the plain client does the webhook PUT only, the service answers once its records are stored.
   */
  ack?: { threatstackLatencyMs: number, enrichWaitMs: number, drainSeconds: number }
}

const f = (n: number, digits = 1): string => Number.isFinite(n) ? n.toFixed(digits) : '–'

export function markdown (run: Run): string {
  const latency = run.ack === undefined
    ? `${run.upstreamLatencyMs} ms added per upstream call`
    : `${run.ack.threatstackLatencyMs} ms added per Threat Stack call and ${run.upstreamLatencyMs} ms per S3 call; ENRICH_WAIT_MS=${run.ack.enrichWaitMs}; ` +
      `the plain client does one S3 PUT (the webhook record); full alerts drained ${f(run.ack.drainSeconds)} s after the last round`
  return [
    `Run of ${run.date} (Node ${run.node}, ${run.durationS} s per side and concurrency in ${run.rounds} alternating rounds (latencies: median of the rounds), ${latency}, ` +
      `heap limit ${run.heapMb > 0 ? `${run.heapMb} MB` : 'Node default'}; ` +
      `${run.checked} alerts answered 200 checked in S3, ${run.missing} incomplete).`,
    '',
    '| concurrency | service webhooks/s | plain sequences/s | throughput ratio | service p50 ms | plain p50 ms | latency ratio | service p99 ms | plain p99 ms | errors | peak RSS MB (plain) | CPU s / 1,000 webhooks (plain) |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...run.rows.map((r) => `| ${r.concurrency} | ${f(r.service.perSecond, 0)} | ${f(r.plain.perSecond, 0)} | ${f(r.throughputRatio, 2)} | ` +
      `${f(r.service.p50)} | ${f(r.plain.p50)} | ${f(r.latencyRatio, 2)} | ${f(r.service.p99)} | ${f(r.plain.p99)} | ${r.service.errors} | ` +
      `${f(r.service.peakRssMb, 0)} (${f(r.plain.peakRssMb, 0)}) | ${f(r.service.cpuSecondsPer1000, 2)} (${f(r.plain.cpuSecondsPer1000, 2)}) |`),
    ''
  ].join('\n')
}

const SERVICE = '#c0392b'
const PLAIN = '#2471a3'

/**
 * Two panels against concurrency (log scale): latency (p50 solid, p99 dashed; log scale, as it
 * spans from milliseconds to seconds) and throughput (linear from 0); service beside plain client.
 */
export function svg (run: Run): string {
  const W = 380
  const H = 260
  const pad = { l: 58, r: 18, t: 34, b: 42 }
  const xs = run.rows.map((r) => r.concurrency)
  const lo = Math.log(Math.min(...xs))
  const hi = Math.log(Math.max(...xs))
  const x = (c: number): number => pad.l + (hi === lo ? 0.5 : (Math.log(c) - lo) / (hi - lo)) * (W - pad.l - pad.r)
  const plotH = H - pad.t - pad.b

  interface Axis { y: (v: number) => number, ticks: number[] }
  const linear = (values: number[]): Axis => {
    const max = Math.max(1e-9, ...values) * 1.1
    const step = 10 ** Math.floor(Math.log10(max / 1.1 / 2 || 1))
    const nice = [1, 2, 5, 10].map((k) => k * step).find((s) => max / s <= 6) ?? step * 10
    const ticks = Array.from({ length: Math.floor(max / nice) + 1 }, (_, i) => i * nice)
    return { y: (v) => pad.t + (1 - v / max) * plotH, ticks }
  }
  const logarithmic = (values: number[]): Axis => {
    const positive = values.filter((v) => v > 0)
    const a = Math.floor(Math.log10(Math.min(1, ...positive)))
    const b = Math.ceil(Math.log10(Math.max(10, ...positive)))
    const ticks = Array.from({ length: b - a + 1 }, (_, i) => 10 ** (a + i))
    return { y: (v) => pad.t + (1 - (Math.log10(Math.max(v, 10 ** a)) - a) / (b - a)) * plotH, ticks }
  }
  const series = (axis: Axis, values: number[], colour: string, dashed: boolean): string => {
    const points = run.rows.flatMap((r, i) => Number.isFinite(values[i]) ? [[x(r.concurrency), axis.y(values[i] as number)]] : [])
    return `<polyline fill="none" stroke="${colour}" stroke-width="2"${dashed ? ' stroke-dasharray="5 4"' : ''} points="${points.map(([px, py]) => `${(px as number).toFixed(1)},${(py as number).toFixed(1)}`).join(' ')}"/>` +
      (dashed ? '' : points.map(([px, py]) => `<circle cx="${(px as number).toFixed(1)}" cy="${(py as number).toFixed(1)}" r="3" fill="${colour}"/>`).join(''))
  }
  const frame = (title: string, unit: string, axis: Axis): string =>
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="13" font-weight="bold">${title}</text>` +
    axis.ticks.map((v) => `<line x1="${pad.l}" y1="${axis.y(v).toFixed(1)}" x2="${W - pad.r}" y2="${axis.y(v).toFixed(1)}" stroke="#ddd"/>` +
      `<text x="${pad.l - 6}" y="${(axis.y(v) + 4).toFixed(1)}" text-anchor="end" font-size="10">${v >= 1 ? v.toLocaleString('en') : String(v)}</text>`).join('') +
    `<line x1="${pad.l}" y1="${H - pad.b}" x2="${W - pad.r}" y2="${H - pad.b}" stroke="#444"/>` +
    `<line x1="${pad.l}" y1="${pad.t}" x2="${pad.l}" y2="${H - pad.b}" stroke="#444"/>` +
    xs.map((c) => `<text x="${x(c).toFixed(1)}" y="${H - pad.b + 14}" text-anchor="middle" font-size="10">${c}</text>`).join('') +
    `<text x="${(pad.l + W - pad.r) / 2}" y="${H - 8}" text-anchor="middle" font-size="10">concurrency (log scale)</text>` +
    `<text x="14" y="${pad.t + plotH / 2}" font-size="10" transform="rotate(-90 14 ${pad.t + plotH / 2})" text-anchor="middle">${unit}</text>`

  const latencyAxis = logarithmic(run.rows.flatMap((r) => [r.service.p50, r.plain.p50, r.service.p99, r.plain.p99]))
  const throughputAxis = linear(run.rows.flatMap((r) => [r.service.perSecond, r.plain.perSecond]).filter(Number.isFinite))
  const latency = frame('latency', 'ms (log scale)', latencyAxis) +
    series(latencyAxis, run.rows.map((r) => r.service.p99), SERVICE, true) +
    series(latencyAxis, run.rows.map((r) => r.plain.p99), PLAIN, true) +
    series(latencyAxis, run.rows.map((r) => r.service.p50), SERVICE, false) +
    series(latencyAxis, run.rows.map((r) => r.plain.p50), PLAIN, false)
  const throughput = frame('throughput', 'webhooks per second', throughputAxis) +
    series(throughputAxis, run.rows.map((r) => r.service.perSecond), SERVICE, false) +
    series(throughputAxis, run.rows.map((r) => r.plain.perSecond), PLAIN, false)
  const legendY = H + 8
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${2 * W}" height="${H + 28}" font-family="sans-serif">` +
    '<rect width="100%" height="100%" fill="white"/>' +
    `<g>${latency}</g><g transform="translate(${W},0)">${throughput}</g>` +
    `<g font-size="11" transform="translate(${W - 200},${legendY})">` +
    `<rect x="0" y="0" width="10" height="10" fill="${SERVICE}"/><text x="14" y="9">service</text>` +
    `<rect x="80" y="0" width="10" height="10" fill="${PLAIN}"/><text x="94" y="9">plain client</text>` +
    '<line x1="190" y1="5" x2="215" y2="5" stroke="#444" stroke-width="2"/><text x="219" y="9">p50</text>' +
    '<line x1="260" y1="5" x2="285" y2="5" stroke="#444" stroke-width="2" stroke-dasharray="5 4"/><text x="289" y="9">p99</text>' +
    '</g></svg>\n'
}

/** The committed results (README figures) are replaced only on request: `--update-results`. */
export const UPDATE_FLAG = '--update-results'

/** Where a run's results go: an untracked folder, unless the committed ones are to be updated. */
export function resultsDir (args: readonly string[]): string {
  return args.includes(UPDATE_FLAG) ? join(ROOT, 'bench', 'results') : join(ROOT, '.bench', 'results')
}

/** `name`: the files' base name (`ingest`, `ingest-ack`). */
export async function writeResults (run: Run, dir: string, name = 'ingest'): Promise<string> {
  await mkdir(dir, { recursive: true })
  const title = run.ack === undefined ? 'Ingest benchmark' : 'Ingest benchmark: the answer once the records are stored, beside one bare S3 PUT'
  await writeFile(join(dir, `${name}.json`), `${JSON.stringify(run, null, 2)}\n`)
  await writeFile(join(dir, `${name}.md`), `# ${title}\n\n${markdown(run)}\n![latency and throughput against concurrency](${name}.svg)\n`)
  await writeFile(join(dir, `${name}.svg`), svg(run))
  return dir
}

export interface QueryRow {
  question: string
  /** `search route`, `query, JSON only` or `query, table tier`. */
  how: string
  seconds: number
  requests: number
  /** `query` only: where the time went, ms. */
  timings?: { openMs: number, checkMs: number, fetchMs: number, viewMs: number, loadMs: number, queryMs: number }
}
export interface QueryRun {
  date: string
  /** The local S3 server: s3rver (on disk) or fauxqs (in memory). */
  s3: string
  node: string
  alerts: number
  days: number
  seedS: number
  /** Days the search route paged over; fewer than `days`: its figures are scaled to the whole range. */
  searchDays: number
  rows: QueryRow[]
  compaction: { perDayS: number[], allS: number, requests: number, bytes: number }
}

const TABLE = 'query, table tier'
const JSON_ONLY = 'query, JSON only'

export function queryMarkdown (run: QueryRun): string {
  const questions = [...new Set(run.rows.map((r) => r.question))]
  const find = (question: string, how: string): QueryRow | undefined => run.rows.find((r) => r.question === question && r.how === how)
  const scaled = run.searchDays < run.days
  const sorted = [...run.compaction.perDayS].sort((a, b) => a - b)
  const ms = (v: number | undefined): string => v === undefined ? '' : f(v / 1000, 2)
  return [
    `Run of ${run.date} (Node ${run.node}): ${run.alerts.toLocaleString('en')} alerts over ${run.days} days ` +
      `(${Math.round(run.alerts / run.days).toLocaleString('en')} a day) on ${run.s3} (local S3), one run, archived in ${f(run.seedS, 0)} s.` +
      (scaled ? ` **The search route paged over the first ${run.searchDays} of the ${run.days} days; its figures are that run scaled by ${f(run.days / run.searchDays, 1)} (extrapolated, marked \\*).**` : ''),
    '',
    '| question | how | wall time (s) | S3 requests | table tier vs JSON only |',
    '|---|---|---|---|---|',
    ...questions.flatMap((q) => ['search route', JSON_ONLY, TABLE].flatMap((how) => {
      const r = find(q, how)
      if (r === undefined) return []
      const json = find(q, JSON_ONLY)
      const star = how === 'search route' && scaled ? '\\*' : ''
      const ratio = how === TABLE && json !== undefined
        ? `${f(json.requests / r.requests, 0)}× fewer requests, ${f(json.seconds / r.seconds, 0)}× faster`
        : ''
      return [`| ${q} | ${how} | ${f(r.seconds, 2)}${star} | ${r.requests.toLocaleString('en')}${star} | ${ratio} |`]
    })),
    '',
    'Where the time of `query` goes (s): DuckDB started; each day\'s manifest and the listing of its webhook records; ' +
      'parts downloaded (table tier) or JSON objects read and written as local parts (JSON only); the view made; the SQL run.',
    '',
    '| question | how | DuckDB | manifests + listings | parts / JSON objects | view | SQL |',
    '|---|---|---|---|---|---|---|',
    ...run.rows.filter((r) => r.timings !== undefined).map((r) => {
      const t = r.timings!
      return `| ${r.question} | ${r.how} | ${ms(t.openMs)} | ${ms(t.checkMs)} | ${ms(t.fetchMs)} | ${ms(t.viewMs)} | ${ms(t.queryMs)} |`
    }),
    '',
    `Compaction of one day (${Math.round(run.alerts / run.days).toLocaleString('en')} alerts): median ${f(sorted[Math.floor(sorted.length / 2)] ?? Number.NaN, 2)} s ` +
      `(min ${f(sorted[0] ?? Number.NaN, 2)} s, max ${f(sorted.at(-1) ?? Number.NaN, 2)} s); all ${run.days} days ${f(run.compaction.allS, 1)} s, ` +
      `${run.compaction.requests.toLocaleString('en')} S3 requests, ${(run.compaction.bytes / 1e6).toFixed(1)} MB of Parquet.`,
    ''
  ].join('\n')
}

const HOW_COLOURS: Record<string, string> = { 'search route': '#7f8c8d', [JSON_ONLY]: SERVICE, [TABLE]: PLAIN }

/** Two panels of grouped bars, log scale: wall time and S3 requests, per question and method. */
export function querySvg (run: QueryRun): string {
  const W = 420
  const H = 280
  const pad = { l: 58, r: 14, t: 34, b: 56 }
  const questions = [...new Set(run.rows.map((r) => r.question))]
  const hows = ['search route', JSON_ONLY, TABLE]
  const plotW = W - pad.l - pad.r
  const plotH = H - pad.t - pad.b
  const panel = (title: string, unit: string, value: (r: QueryRow) => number): string => {
    const values = run.rows.map(value).filter((v) => v > 0)
    const a = Math.floor(Math.log10(Math.min(...values)))
    const b = Math.ceil(Math.log10(Math.max(...values)))
    const y = (v: number): number => pad.t + (1 - (Math.log10(Math.max(v, 10 ** a)) - a) / Math.max(1, b - a)) * plotH
    const ticks = Array.from({ length: b - a + 1 }, (_, i) => 10 ** (a + i))
    const groupW = plotW / questions.length
    const barW = groupW / (hows.length + 1)
    const bars = questions.flatMap((q, gi) => hows.flatMap((how, hi) => {
      const r = run.rows.find((row) => row.question === q && row.how === how)
      if (r === undefined) return []
      const bx = pad.l + gi * groupW + barW / 2 + hi * barW
      const top = y(value(r))
      const shown = value(r) >= 100 ? Math.round(value(r)).toLocaleString('en') : value(r).toFixed(value(r) >= 10 ? 0 : 1)
      return [`<rect x="${bx.toFixed(1)}" y="${top.toFixed(1)}" width="${(barW - 3).toFixed(1)}" height="${(H - pad.b - top).toFixed(1)}" fill="${HOW_COLOURS[how] ?? '#444'}"/>` +
        `<text x="${(bx + (barW - 3) / 2).toFixed(1)}" y="${(top - 3).toFixed(1)}" text-anchor="middle" font-size="9">${shown}</text>`]
    }))
    const names = questions.map((q, gi) => {
      const words = q.split(/(?<=,) /)
      return words.map((w, li) => `<text x="${(pad.l + (gi + 0.5) * groupW).toFixed(1)}" y="${H - pad.b + 14 + li * 11}" text-anchor="middle" font-size="9">${w}</text>`).join('')
    }).join('')
    return `<text x="${W / 2}" y="20" text-anchor="middle" font-size="13" font-weight="bold">${title}</text>` +
      ticks.map((v) => `<line x1="${pad.l}" y1="${y(v).toFixed(1)}" x2="${W - pad.r}" y2="${y(v).toFixed(1)}" stroke="#ddd"/>` +
        `<text x="${pad.l - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end" font-size="10">${v >= 1 ? v.toLocaleString('en') : String(v)}</text>`).join('') +
      `<line x1="${pad.l}" y1="${H - pad.b}" x2="${W - pad.r}" y2="${H - pad.b}" stroke="#444"/>` +
      `<line x1="${pad.l}" y1="${pad.t}" x2="${pad.l}" y2="${H - pad.b}" stroke="#444"/>` +
      `<text x="14" y="${pad.t + plotH / 2}" font-size="10" transform="rotate(-90 14 ${pad.t + plotH / 2})" text-anchor="middle">${unit}</text>` +
      bars.join('') + names
  }
  const legend = hows.map((how, i) => `<rect x="${i * 150}" y="0" width="10" height="10" fill="${HOW_COLOURS[how] ?? '#444'}"/><text x="${i * 150 + 14}" y="9">${how}${how === 'search route' && run.searchDays < run.days ? ' (extrapolated)' : ''}</text>`).join('')
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${2 * W}" height="${H + 28}" font-family="sans-serif">` +
    '<rect width="100%" height="100%" fill="white"/>' +
    `<g>${panel('wall time', 's (log scale)', (r) => r.seconds)}</g>` +
    `<g transform="translate(${W},0)">${panel('S3 requests', 'requests (log scale)', (r) => r.requests)}</g>` +
    `<g font-size="11" transform="translate(${W - 225},${H + 8})">${legend}</g></svg>\n`
}

export async function writeQueryResults (run: QueryRun, dir: string): Promise<string> {
  await mkdir(dir, { recursive: true })
  const md = queryMarkdown(run)
  process.stdout.write(md)
  await writeFile(join(dir, 'query.json'), `${JSON.stringify(run, null, 2)}\n`)
  await writeFile(join(dir, 'query.md'), `# Query benchmark\n\n${md}\n![wall time and S3 requests per question and method](query.svg)\n`)
  await writeFile(join(dir, 'query.svg'), querySvg(run))
  return dir
}
