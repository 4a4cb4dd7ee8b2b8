// Shared by the benchmark and soak scripts: child processes, their resource use, percentiles.
import { spawn, type ChildProcess } from 'node:child_process'
import { openSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { createInterface } from 'node:readline'
import { request } from 'undici'

export const ROOT = fileURLToPath(new URL('..', import.meta.url))

export interface Upstreams { s3: string, s3Direct: string, threatstack: string, bucket: string, apiKey: string }

/** Runs `script` (TypeScript, from the repo root) in its own Node process; resolves with its first stdout line. */
export async function spawnScript (script: string, env: Record<string, string> = {}): Promise<{ child: ChildProcess, firstLine: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    cwd: ROOT,
    env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', ...env },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  const lines = createInterface({ input: child.stdout! })
  const firstLine = await new Promise<string>((resolve, reject) => {
    lines.once('line', resolve)
    child.once('exit', (code) => reject(new Error(`${script} exited with ${String(code)} before answering`)))
  })
  return { child, firstLine }
}

export async function startUpstreamsProcess (env: Record<string, string> = {}): Promise<{ child: ChildProcess, upstreams: Upstreams }> {
  const { child, firstLine } = await spawnScript('bench/upstreams.ts', env)
  return { child, upstreams: JSON.parse(firstLine) as Upstreams }
}

/** The service as `npm start` runs it (dist/server.js: `npm run build` first), ready once /health answers. */
export async function startService (env: Record<string, string>, port: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['dist/server.js'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', PORT: String(port), HOST: '127.0.0.1', ...env },
    // BENCH_SERVICE_LOG=<file> keeps the service's log.
    stdio: ['ignore', process.env.BENCH_SERVICE_LOG === undefined ? 'ignore' : openSync(process.env.BENCH_SERVICE_LOG, 'w'), 'inherit']
  })
  for (let i = 0; i < 600 && child.exitCode === null; i++) {
    const up = await request(`http://127.0.0.1:${port}/health`).then(async (r) => { await r.body.dump(); return r.statusCode === 200 }, () => false)
    if (up) return child
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error('the service did not start')
}

/** CPU seconds (user + system) and resident memory of a process, from /proc. */
export async function processStats (pid: number): Promise<{ cpuSeconds: number, rssBytes: number }> {
  const stat = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]?.split(' ') ?? []
  // Fields 14 and 15 of /proc/PID/stat (utime, stime) are the 12th and 13th after the command name, in clock ticks (100/s on Linux).
  const cpuSeconds = (Number(stat[11]) + Number(stat[12])) / 100
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0)
  return { cpuSeconds, rssBytes: rssKb * 1024 }
}

/** Samples a process's RSS every `everyMs` until stopped; returns the peak and all samples. */
export function sampleRss (pid: number, everyMs = 200): { stop: () => { peak: number, samples: number[] } } {
  const samples: number[] = []
  const timer = setInterval(() => {
    processStats(pid).then((s) => { samples.push(s.rssBytes) }, () => {})
  }, everyMs)
  return { stop: () => { clearInterval(timer); return { peak: Math.max(0, ...samples), samples } } }
}

export function percentile (sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number
}

export async function stopProcess (child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return child.exitCode
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  child.kill('SIGTERM')
  return await exited
}
