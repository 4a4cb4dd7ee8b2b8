// Writes a benchmark run's results: JSON, a Markdown table and an SVG plot under bench/results/.
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ROOT } from './lib.js'

export interface Side { perSecond: number, p50: number, p99: number, errors: number }
export interface Row {
  concurrency: number
  service: Side & { peakRssMb: number, cpuSecondsPer1000: number }
  plain: Side
  latencyRatio: number
  throughputRatio: number
}
export interface Run { date: string, durationS: number, upstreamLatencyMs: number, node: string, rows: Row[], missing: number, checked: number }

const f = (n: number, digits = 1): string => Number.isFinite(n) ? n.toFixed(digits) : '–'

export function markdown (run: Run): string {
  return [
    `Run of ${run.date} (Node ${run.node}, ${run.durationS} s per step, ${run.upstreamLatencyMs} ms added per upstream call; ` +
      `${run.checked} alerts answered 200 checked in S3, ${run.missing} incomplete).`,
    '',
    '| concurrency | service webhooks/s | plain sequences/s | throughput ratio | service p50 ms | plain p50 ms | latency ratio | service p99 ms | plain p99 ms | errors | peak RSS MB | CPU s / 1,000 webhooks |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...run.rows.map((r) => `| ${r.concurrency} | ${f(r.service.perSecond, 0)} | ${f(r.plain.perSecond, 0)} | ${f(r.throughputRatio, 2)} | ${f(r.service.p50)} | ${f(r.plain.p50)} | ${f(r.latencyRatio, 2)} | ${f(r.service.p99)} | ${f(r.plain.p99)} | ${r.service.errors} | ${f(r.service.peakRssMb, 0)} | ${f(r.service.cpuSecondsPer1000, 2)} |`),
    ''
  ].join('\n')
}

/** Two panels (p50 latency, throughput) against concurrency on a log scale, service beside plain client. */
export function svg (run: Run): string {
  const W = 360
  const H = 240
  const pad = { l: 56, r: 16, t: 30, b: 40 }
  const xs = run.rows.map((r) => r.concurrency)
  const x = (c: number): number => {
    const lo = Math.log(Math.min(...xs))
    const hi = Math.log(Math.max(...xs))
    return pad.l + (hi === lo ? 0.5 : (Math.log(c) - lo) / (hi - lo)) * (W - pad.l - pad.r)
  }
  const panel = (title: string, unit: string, pick: (r: Row) => [number, number], offset: number): string => {
    const max = Math.max(1e-9, ...run.rows.flatMap((r) => pick(r)).filter(Number.isFinite)) * 1.1
    const y = (v: number): number => pad.t + (1 - v / max) * (H - pad.t - pad.b)
    const line = (i: 0 | 1, colour: string): string => {
      const points = run.rows.map((r) => `${x(r.concurrency).toFixed(1)},${y(pick(r)[i]).toFixed(1)}`)
      return `<polyline fill="none" stroke="${colour}" stroke-width="2" points="${points.join(' ')}"/>` +
        points.map((p) => `<circle cx="${p.split(',')[0] ?? 0}" cy="${p.split(',')[1] ?? 0}" r="3" fill="${colour}"/>`).join('')
    }
    const ticks = [0, 0.5, 1].map((k) => max / 1.1 * k)
    return `<g transform="translate(${offset},0)">` +
      `<text x="${W / 2}" y="18" text-anchor="middle" font-size="13">${title}</text>` +
      `<line x1="${pad.l}" y1="${H - pad.b}" x2="${W - pad.r}" y2="${H - pad.b}" stroke="#444"/>` +
      `<line x1="${pad.l}" y1="${pad.t}" x2="${pad.l}" y2="${H - pad.b}" stroke="#444"/>` +
      ticks.map((v) => `<text x="${pad.l - 6}" y="${y(v) + 4}" text-anchor="end" font-size="10">${f(v, v < 10 ? 1 : 0)}</text>`).join('') +
      xs.map((c) => `<text x="${x(c)}" y="${H - pad.b + 14}" text-anchor="middle" font-size="10">${c}</text>`).join('') +
      `<text x="${W / 2}" y="${H - 6}" text-anchor="middle" font-size="10">concurrency</text>` +
      `<text x="12" y="${H / 2}" font-size="10" transform="rotate(-90 12 ${H / 2})" text-anchor="middle">${unit}</text>` +
      line(0, '#c0392b') + line(1, '#2471a3') + '</g>'
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${2 * W}" height="${H + 20}" font-family="sans-serif">` +
    '<rect width="100%" height="100%" fill="white"/>' +
    panel('p50 latency', 'ms', (r) => [r.service.p50, r.plain.p50], 0) +
    panel('throughput', 'per second', (r) => [r.service.perSecond, r.plain.perSecond], W) +
    `<g font-size="11"><rect x="${W - 90}" y="${H + 4}" width="10" height="10" fill="#c0392b"/><text x="${W - 76}" y="${H + 13}">service</text>` +
    `<rect x="${W + 10}" y="${H + 4}" width="10" height="10" fill="#2471a3"/><text x="${W + 24}" y="${H + 13}">plain client</text></g></svg>\n`
}

export async function writeResults (run: Run): Promise<string> {
  const dir = join(ROOT, 'bench', 'results')
  await mkdir(dir, { recursive: true })
  await writeFile(join(dir, 'ingest.json'), `${JSON.stringify(run, null, 2)}\n`)
  await writeFile(join(dir, 'ingest.md'), `# Ingest benchmark\n\n${markdown(run)}\n![latency and throughput against concurrency](ingest.svg)\n`)
  await writeFile(join(dir, 'ingest.svg'), svg(run))
  return dir
}
