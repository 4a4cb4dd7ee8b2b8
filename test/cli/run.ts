// Runs the table commands as real processes against a local S3 server (shared by test/cli/*).
import type { Test } from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { alertKey, webhookKey } from '../../services/keys.js'
import { LOCAL_S3_CREDENTIALS } from '../../dev/local-s3.js'
import { startBackend, type CountingStore } from '../helpers/s3.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
export const DAY1 = Date.UTC(2017, 0, 15)
const H = 3_600_000

export interface Run { code: number | null, stdout: string, stderr: string }

const shellQuote = (arg: string): string => `'${arg.replaceAll("'", "'\\''")}'`

/** Runs a command; with `tty`, on a pseudo-terminal by `script` (everything then comes as stdout). */
export async function run (script: string, args: string[], env: Record<string, string>, tty = false): Promise<Run> {
  const command = [process.execPath, '--import', 'tsx', script, ...args]
  const [file, argv] = tty ? ['script', ['-qec', command.map(shellQuote).join(' '), '/dev/null']] : [command[0] as string, command.slice(1)]
  const child = spawn(file, argv, {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (c: Buffer) => { stdout += c.toString() })
  child.stderr.on('data', (c: Buffer) => { stderr += c.toString() })
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
  const [code] = await once(child, 'exit') as [number | null]
  clearTimeout(timer)
  return { code, stdout, stderr }
}

export async function setup (t: Test): Promise<{ store: CountingStore, env: Record<string, string> }> {
  const store = await startBackend(t, 's3rver', 'cli-tables-bucket')
  await store.putMany([
    [webhookKey('', 'd0000001', DAY1 + H), JSON.stringify({ id: 'd0000001', created_at: String(DAY1 + H), severity: '1' })],
    [alertKey('', 'd0000001'), JSON.stringify({ id: 'd0000001', created_at: DAY1 + H, severity: 1, title: 'Login, "odd" title', server_or_region: 'web-1' })],
    [webhookKey('', 'd0000002', DAY1 + 2 * H), JSON.stringify({ id: 'd0000002', created_at: String(DAY1 + 2 * H), severity: '2', title: 'no full alert' })],
    [webhookKey('', 'd0000003', DAY1 + 25 * H), JSON.stringify({ id: 'd0000003', created_at: String(DAY1 + 25 * H), severity: '2' })]
  ])
  const env = {
    TS_AWS_S3_BUCKET: store.bucket,
    AWS_ENDPOINT_URL_S3: store.server.endpoint,
    AWS_ACCESS_KEY_ID: LOCAL_S3_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: LOCAL_S3_CREDENTIALS.secretAccessKey,
    S3_TIMEOUT_MS: '5000',
    S3_MAX_ATTEMPTS: '1'
  }
  return { store, env }
}

export const CLEAR = '\r\u001b[2K'
export const RANGE = ['--start', '2017-01-15', '--end', '2017-01-17']
