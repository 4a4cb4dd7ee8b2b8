// `npm run dev` on a fresh clone: whatever upstream is not configured gets a local stand-in
// (s3rver on .dev/s3, the Threat Stack simulator), and dev tokens when none are set. What it
// starts is printed whatever the log level: endpoints and credentials are for the developer.
import { mkdir } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import type { AddressInfo } from 'node:net'
import { ConfigError, loadConfig, readEnv, type Config } from '../config.js'
import { LOCAL_S3_CREDENTIALS, startLocalS3 } from './local-s3.js'
import { startThreatStackSimulator, type ThreatStackSimulator } from './threatstack-simulator.js'
import { startAlertStream, type AlertStream } from './alert-stream.js'
import { ensureDevDigestKey } from './digest-key.js'

export const DEV_BUCKET = 'threatstack-archive'
export const DEV_INGEST_TOKEN = 'dev-ingest-token-0001'
export const DEV_READ_TOKEN = 'dev-read-token-0001'
const DEV_DATA_DIR = resolve('.dev', 's3')
/** The real sender's period. */
const DEV_SENDER_INTERVAL_S = 10

/**
 * The dev-only switches of the simulated sender, read here rather than in config.ts: the service
 * never sees them. DEV_SENDER=off (or 0, false) leaves the webhook to you; DEV_SENDER_INTERVAL_S
 * sets the time between batches.
 */
function senderSettings (env: Record<string, string | undefined>): { on: boolean, intervalMs: number } {
  const on = !['off', '0', 'false', 'no'].includes((env.DEV_SENDER ?? 'on').trim().toLowerCase())
  const raw = env.DEV_SENDER_INTERVAL_S?.trim()
  const seconds = raw === undefined || raw === '' ? DEV_SENDER_INTERVAL_S : Number(raw)
  if (!Number.isFinite(seconds) || seconds < 0.1 || seconds > 3600) throw new ConfigError([{ variable: 'DEV_SENDER_INTERVAL_S', rule: 'must be a number of seconds from 0.1 to 3600' }])
  return { on, intervalMs: Math.round(seconds * 1000) }
}

export interface LocalDependencies {
  config: Config
  /**
   * Prints where everything is and a curl to try, once the server listens; with the simulator as
   * Threat Stack, starts the simulated sender posting to the server (unless DEV_SENDER=off).
   */
  announce (addresses: AddressInfo[]): void
  /** Stops the simulated sender, its batch under way answered first: before the server closes. */
  stopSender (): Promise<void>
  close (): Promise<void>
}

export async function startLocalDependencies (print: (text: string) => void, source = readEnv(), dataDir = DEV_DATA_DIR): Promise<LocalDependencies> {
  const env = { ...source }
  const closers: Array<() => Promise<void>> = []
  const notes: string[] = []
  // A bad sender setting is reported with the service's own bad variables, all at once.
  let sending = { on: false, intervalMs: 0 }
  let senderProblem: ConfigError | undefined
  try {
    sending = senderSettings(env)
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    senderProblem = err
  }
  let simulator: ThreatStackSimulator | undefined

  const embeddedS3 = env.AWS_ENDPOINT_URL_S3 === undefined && env.TS_AWS_S3_BUCKET === undefined
  if (embeddedS3) {
    await mkdir(dataDir, { recursive: true })
    const s3 = await startLocalS3({ directory: dataDir, buckets: [DEV_BUCKET] })
    closers.push(async () => s3.close())
    Object.assign(env, {
      AWS_ENDPOINT_URL_S3: s3.endpoint,
      TS_AWS_S3_BUCKET: DEV_BUCKET,
      AWS_ACCESS_KEY_ID: LOCAL_S3_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: LOCAL_S3_CREDENTIALS.secretAccessKey
    })
    notes.push([
      `embedded S3 (s3rver) at ${s3.endpoint}, bucket "${DEV_BUCKET}", data in ${dataDir}`,
      `  AWS_ENDPOINT_URL_S3=${s3.endpoint} TS_AWS_S3_BUCKET=${DEV_BUCKET} AWS_ACCESS_KEY_ID=${LOCAL_S3_CREDENTIALS.accessKeyId} AWS_SECRET_ACCESS_KEY=${LOCAL_S3_CREDENTIALS.secretAccessKey}`
    ].join('\n'))
  }

  if (env.THREATSTACK_API_KEY === undefined) {
    const started = await startThreatStackSimulator({ apiKey: 'dev-api-key', userId: 'dev-user', organizationId: 'dev-org' })
    simulator = started
    closers.push(async () => started.close())
    Object.assign(env, {
      THREATSTACK_BASE_URL: simulator.url,
      THREATSTACK_API_KEY: 'dev-api-key',
      THREATSTACK_USER_ID: 'dev-user',
      THREATSTACK_ORGANIZATION_ID: 'dev-org'
    })
    notes.push([
      `Threat Stack simulator at ${started.url} (Hawk)`,
      `  THREATSTACK_BASE_URL=${started.url} THREATSTACK_API_KEY=dev-api-key THREATSTACK_USER_ID=dev-user THREATSTACK_ORGANIZATION_ID=dev-org`
    ].join('\n'))
  }

  if (env.AUTH_MODE !== 'none' && env.INGEST_TOKENS === undefined && env.READ_TOKENS === undefined) {
    Object.assign(env, { INGEST_TOKENS: DEV_INGEST_TOKEN, READ_TOKENS: DEV_READ_TOKEN })
    notes.push(`dev tokens: ingest "${DEV_INGEST_TOKEN}", read "${DEV_READ_TOKEN}"`)
    // The dev tokens are printed and in the README: with them the server answers this machine only,
    // unless HOST says otherwise.
    if (env.HOST === undefined) {
      env.HOST = '127.0.0.1'
      notes.push('listening on 127.0.0.1 only, as the dev tokens are no secret (HOST=0.0.0.0 to reach it from elsewhere)')
    }
  }

  if (embeddedS3 && env.DIGEST_SIGNING_KEY_FILE === undefined && env.DIGEST_KMS_KEY_ID === undefined) {
    // The embedded archive's digests are signed too, so that `npm run verify` can be tried end to end.
    const key = await ensureDevDigestKey(dirname(resolve(dataDir)))
    env.DIGEST_SIGNING_KEY_FILE = key.privateKeyFile
    notes.push(`digests signed with ${key.privateKeyFile}; verify with --public-key ${key.publicKeyFile}`)
  }

  let stream: AlertStream | undefined
  const stopSender = async (): Promise<void> => {
    const running = stream
    stream = undefined
    await running?.close()
  }
  const close = async (): Promise<void> => {
    await stopSender()
    await Promise.all(closers.map(async (c) => c()))
  }
  let config: Config
  try {
    config = loadConfig(env)
  } catch (err) {
    await close()
    if (senderProblem !== undefined && err instanceof ConfigError) throw new ConfigError([...err.problems, ...senderProblem.problems])
    throw err
  }
  if (senderProblem !== undefined) {
    await close()
    throw senderProblem
  }
  for (const note of notes) print(`dev: ${note}`)

  return {
    config,
    close,
    stopSender,
    announce (addresses) {
      const senderLines = (base: string, read: string): string[] => {
        if (simulator === undefined) return []
        if (!sending.on) return ['dev: simulated Threat Stack sender off (DEV_SENDER=off)']
        const day = new Date().toISOString().slice(0, 10)
        const next = new Date(Date.parse(day) + 86_400_000).toISOString().slice(0, 10)
        return [
          `dev: simulated Threat Stack sender: 1-3 alerts raised at the simulator every ${sending.intervalMs / 1000} s, batched by severity, POSTed to ${base}/api/v1/s3/alert ` +
            '(DEV_SENDER=off stops it, DEV_SENDER_INTERVAL_S sets the period); each batch\'s answer is printed',
          `  read one back by its id: curl -s ${base}/api/v1/s3/alert/<id> -H 'authorization: Bearer ${read}'`,
          `  coverage (the sweeper writes an hour's ledger once it is closed): curl -s '${base}/api/v1/s3/coverage?start=${day}T00:00:00Z&end=${next}T00:00:00Z' -H 'authorization: Bearer ${read}'`
        ]
      }
      const address = addresses.find((a) => a.family === 'IPv4') ?? addresses[0]
      if (address === undefined) return
      const host = ['0.0.0.0', '::', '127.0.0.1', '::1'].includes(address.address) ? 'localhost' : address.address
      const base = `http://${host}:${address.port}`
      // The sender's own requests go to the address itself: `localhost` may resolve to an address not listened on.
      const direct = address.address === '0.0.0.0' ? '127.0.0.1' : address.address === '::' ? '::1' : address.address
      const senderBase = `http://${direct.includes(':') ? `[${direct}]` : direct}:${address.port}`
      const ingest = config.auth.ingestTokens[0] ?? '<ingest token>'
      const read = config.auth.readTokens[0] ?? '<read token>'
      const id = '587c0159a907346eccb84004'
      if (simulator !== undefined && sending.on) {
        const token = config.auth.ingestTokens[0]
        stream = startAlertStream({
          simulator,
          url: `${senderBase}/api/v1/s3/alert${token === undefined ? '' : `?token=${encodeURIComponent(token)}`}`,
          intervalMs: sending.intervalMs,
          print
        })
      }
      const upstreams = [
        config.s3.endpoint !== undefined && `AWS_ENDPOINT_URL_S3=${config.s3.endpoint}`,
        `TS_AWS_S3_BUCKET=${config.s3.bucket}`,
        config.s3.credentials !== undefined && `AWS_ACCESS_KEY_ID=${config.s3.credentials.accessKeyId} AWS_SECRET_ACCESS_KEY=${config.s3.credentials.secretAccessKey}`,
        `THREATSTACK_BASE_URL=${config.threatstack.baseUrl}`,
        // A configured Threat Stack key is the developer's own: not printed.
        source.THREATSTACK_API_KEY === undefined && `THREATSTACK_API_KEY=${config.threatstack.apiKey}`,
        config.threatstack.auth.kind === 'hawk' && source.THREATSTACK_API_KEY === undefined &&
          `THREATSTACK_USER_ID=${config.threatstack.auth.userId} THREATSTACK_ORGANIZATION_ID=${config.threatstack.auth.organizationId}`
      ].filter((part): part is string => typeof part === 'string')
      print([
        `dev: service at ${base}`,
        `  API docs: ${base}/documentation   health: ${base}/health   readiness: ${base}/api/v1/s3/status`,
        '  try it: npm run demo   (posts sample webhooks and reads them back)',
        'dev: archive a sample webhook, then read it back:',
        `  curl -s -X POST ${base}/api/v1/s3/alert -H 'authorization: Bearer ${ingest}' -H 'content-type: application/json' \\`,
        `    -d '{"alerts":[{"id":"${id}","created_at":"1484521800000","severity":"2","title":"Sample alert"}]}'`,
        `  curl -s ${base}/api/v1/s3/alert/${id} -H 'authorization: Bearer ${read}'`,
        ...senderLines(base, read),
        'dev: complete half-archived alerts against these upstreams:',
        `  ${upstreams.join(' ')} \\`,
        '    npm run reconcile -- --start 2017-01-15T00:00:00Z --end 2017-01-16T00:00:00Z'
      ].join('\n'))
    }
  }
}
