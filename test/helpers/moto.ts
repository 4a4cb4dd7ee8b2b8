// moto (an S3 that enforces conditional writes, checksums and Object Lock), run by the tests
// themselves on loopback. s3rver and fauxqs ignore all three, so what rests on them is tested here.
// Without moto_server on PATH the tests that need it are not run, and the summary of the run
// names each with how to get moto; with REQUIRE_MOTO=1 (CI) they fail instead, so that no run
// passes with them left out.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { accessSync, constants } from 'node:fs'
import { delimiter, join } from 'node:path'
import { CreateBucketCommand, ListBucketsCommand, S3Client } from '@aws-sdk/client-s3'
import { createS3Client, storeOf } from '../../services/s3-client.js'
import type { Store } from '../../services/storage.js'

type Tap = {
  teardown: (fn: () => unknown) => void
  fail: (message: string) => boolean
  test: (name: string, ...rest: any[]) => Promise<unknown>
}

export const MOTO_CREDENTIALS = { accessKeyId: 'moto-test-key', secretAccessKey: 'moto-test-secret' }
export const MOTO_INSTALL = "pipx install 'moto[server]'"

/** The moto_server executable on PATH, undefined when there is none. */
export function findMotoServer (path = process.env.PATH ?? ''): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (dir === '') continue
    const candidate = join(dir, 'moto_server')
    try {
      accessSync(candidate, constants.X_OK)
      return candidate
    } catch { /* not in this folder */ }
  }
  return undefined
}

export interface Moto {
  endpoint: string
  pid: number
  /** A client of the tests' own: what an attacker with bucket access would hold. */
  client: S3Client
  close (): Promise<void>
}

async function stop (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  child.stdin?.end()
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
  await exited
  clearTimeout(timer)
}

/** Starts moto_server on 127.0.0.1 (a free port), waits until it answers, creates the buckets. */
export async function startMoto (t: Tap, executable: string, buckets: Array<{ name: string, objectLock?: boolean }>): Promise<Moto> {
  // Through a shell that stops moto when its stdin closes: when this process is killed (a tap
  // timeout skips teardowns), the pipe closes with it and no moto_server is left behind.
  const watchdog = '"$0" -H 127.0.0.1 -p 0 & m=$!; trap \'kill $m 2>/dev/null\' EXIT TERM; read _; kill $m; wait $m'
  const child = spawn('sh', ['-c', watchdog, executable], { stdio: ['pipe', 'pipe', 'pipe'] })
  t.teardown(async () => stop(child))
  let output = ''
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`moto_server did not start within 30 s: ${output.slice(-500)}`)), 30_000)
    const onData = (chunk: Buffer): void => {
      output += chunk.toString()
      const match = /Running on http:\/\/127\.0\.0\.1:(\d+)/.exec(output)
      if (match !== null) {
        clearTimeout(timer)
        resolve(Number(match[1]))
      }
    }
    child.stdout?.on('data', onData)
    child.stderr?.on('data', onData)
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`moto_server exited with ${String(code)}: ${output.slice(-500)}`))
    })
  })
  // Keep draining its request log so the pipe never fills.
  child.stdout?.resume()
  child.stderr?.resume()
  const endpoint = `http://127.0.0.1:${port}`
  const client = new S3Client({
    region: 'us-east-1',
    endpoint,
    forcePathStyle: true,
    credentials: MOTO_CREDENTIALS,
    maxAttempts: 1,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED'
  })
  t.teardown(() => client.destroy())
  let answered = false
  for (let i = 0; i < 100 && !answered; i++) {
    answered = await client.send(new ListBucketsCommand({})).then(() => true, () => false)
    if (!answered) await new Promise((resolve) => setTimeout(resolve, 100))
  }
  if (!answered) throw new Error('moto_server does not answer')
  for (const bucket of buckets) {
    await client.send(new CreateBucketCommand({ Bucket: bucket.name, ...(bucket.objectLock === true && { ObjectLockEnabledForBucket: true }) }))
  }
  return { endpoint, pid: child.pid ?? -1, client, close: async () => stop(child) }
}

/** Why a moto test did not run, as tap's summary shows it beside the test's name. */
export const MOTO_NOT_RUN = `NOT RUN (moto_server not on PATH): install moto to run it: ${MOTO_INSTALL}`

/**
 * Runs `fn` as a subtest when moto is installed. When it is not, the subtest is reported as
 * skipped with the reason, so that the summary at the end of `npm test` lists each test that did
 * not run and how to get moto; with REQUIRE_MOTO=1 in the environment (CI), a missing moto fails
 * instead, so no run passes with them left out.
 */
export async function withMoto (t: Tap, name: string, fn: (t: any, executable: string) => Promise<void>, env = process.env): Promise<void> {
  const executable = findMotoServer(env.PATH)
  if (executable !== undefined) {
    await t.test(name, async (t: any) => fn(t, executable))
    return
  }
  if (env.REQUIRE_MOTO === '1') {
    t.fail(`moto_server is not on PATH and REQUIRE_MOTO=1: "${name}" cannot run (install it: ${MOTO_INSTALL})`)
    return
  }
  await t.test(name, { skip: MOTO_NOT_RUN }, async () => {})
}

/** The service's own store over a bucket of `moto`, as the service would build it; destroyed at teardown. */
export function motoStore (t: Tap, moto: Moto, bucket: string): Store {
  const cfg = {
    region: 'us-east-1',
    endpoint: moto.endpoint,
    credentials: MOTO_CREDENTIALS,
    prefix: '',
    bucket,
    timeoutMs: 5000,
    connectTimeoutMs: 1000,
    maxSockets: 8,
    maxAttempts: 1
  }
  const s3 = createS3Client(cfg)
  t.teardown(() => s3.destroy())
  return storeOf(cfg, s3)
}
