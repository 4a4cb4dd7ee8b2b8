// The service's configuration: one TypeBox schema over the environment, checked once at
// start-up. This is the only module that reads environment variables.
import { Type, type TSchema } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import type { StorageClass } from '@aws-sdk/client-s3'

const INT = '^[0-9]{1,10}$'
const BOOL = '^(true|false|1|0|yes|no)$'
const LIST = '^[^,\\s]+(\\s*,\\s*[^,\\s]+)*$'
const TOKEN_LIST = '^[\\x21-\\x2b\\x2d-\\x7e]{16,256}(\\s*,\\s*[\\x21-\\x2b\\x2d-\\x7e]{16,256})*$'

function str (description: string, pattern?: string): TSchema {
  return Type.Optional(Type.String({ description, ...(pattern !== undefined && { pattern }) }))
}

/** Every variable the service reads. `description` is what an operator sees when a value is rejected. */
export const EnvSchema = Type.Object({
  PORT: str('a port number from 0 to 65535', INT),
  HOST: str('a host name or IP address to listen on', '^[A-Za-z0-9.:_-]{1,255}$'),
  TS_AWS_S3_BUCKET: str('an S3 bucket name (3-63 characters of a-z, 0-9, ".", "-")', '^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$'),
  TS_AWS_S3_PREFIX: str('a key prefix (up to 256 characters, no "..")', '^(?!.*\\.\\.)[A-Za-z0-9!_.*\'()/-]{1,256}$'),
  AWS_REGION: str('an AWS region such as us-east-1', '^[a-z0-9-]{2,32}$'),
  AWS_ENDPOINT_URL_S3: str('an http(s) URL', '^https?://[^\\s]+$'),
  AWS_ACCESS_KEY_ID: str('an access key id', '^\\S{1,256}$'),
  AWS_SECRET_ACCESS_KEY: str('a secret access key', '^\\S{1,256}$'),
  AWS_SESSION_TOKEN: str('a session token', '^\\S+$'),
  THREATSTACK_BASE_URL: str('an http(s) URL', '^https?://[^\\s]+$'),
  THREATSTACK_API_KEY: str('the Threat Stack API key', '^\\S{1,1024}$'),
  THREATSTACK_USER_ID: str('the Threat Stack user id', '^\\S{1,256}$'),
  THREATSTACK_ORGANIZATION_ID: str('the Threat Stack organization id', '^\\S{1,256}$'),
  INGEST_TOKENS: str('comma-separated tokens of 16 to 256 printable characters', TOKEN_LIST),
  READ_TOKENS: str('comma-separated tokens of 16 to 256 printable characters', TOKEN_LIST),
  AUTH_MODE: str('"tokens" or "none"', '^(tokens|none)$'),
  LOG_LEVEL: str('one of fatal, error, warn, info, debug, trace, silent', '^(fatal|error|warn|info|debug|trace|silent)$'),
  TS_DEBUG: str('any value (set: debug logging)'),
  SNS_ENABLED: str('true or false', BOOL),
  SNS_TOPIC_ARNS: str('comma-separated SNS topic ARNs', '^arn:[^,\\s]+(\\s*,\\s*arn:[^,\\s]+)*$'),
  SNS_CERTS_DIR: str('a folder path'),
  BODY_LIMIT_BYTES: str('a size in bytes', INT),
  MAX_HEADER_BYTES: str('a size in bytes', INT),
  TRUST_PROXY: str('true, false, a hop count, or comma-separated addresses/CIDRs', LIST),
  KEEP_ALIVE_TIMEOUT_MS: str('milliseconds', INT),
  REQUEST_TIMEOUT_MS: str('milliseconds', INT),
  BODY_TIMEOUT_MS: str('milliseconds', INT),
  SHUTDOWN_GRACE_MS: str('milliseconds', INT),
  THREATSTACK_TIMEOUT_MS: str('milliseconds', INT),
  THREATSTACK_CONNECT_TIMEOUT_MS: str('milliseconds', INT),
  THREATSTACK_MAX_CONNECTIONS: str('a number of connections', INT),
  THREATSTACK_MAX_RESPONSE_BYTES: str('a size in bytes', INT),
  THREATSTACK_RETRIES: str('a number of retries', INT),
  THREATSTACK_RETRY_BASE_MS: str('milliseconds', INT),
  THREATSTACK_RETRY_MAX_DELAY_MS: str('milliseconds', INT),
  THREATSTACK_BUDGET_MS: str('milliseconds', INT),
  S3_TIMEOUT_MS: str('milliseconds', INT),
  S3_BUDGET_MS: str('milliseconds', INT),
  S3_CONNECT_TIMEOUT_MS: str('milliseconds', INT),
  S3_MAX_SOCKETS: str('a number of sockets', INT),
  S3_READ_MAX_SOCKETS: str('a number of sockets', INT),
  S3_MAX_ATTEMPTS: str('a number of attempts', INT),
  S3_RETRY_MODE: str('"standard" or "adaptive"', '^(standard|adaptive)$'),
  S3_SSE: str('"AES256" or "aws:kms"', '^(AES256|aws:kms)$'),
  S3_SSE_KMS_KEY_ID: str('a KMS key id, alias or ARN', '^[A-Za-z0-9:/_-]{1,2048}$'),
  S3_STORAGE_CLASS: str('an S3 storage class such as STANDARD_IA', '^[A-Z_]{3,32}$'),
  S3_OBJECT_TAGS: str('URL-encoded tags, key=value&key2=value2', '^[^=&\\s]+=[^=&\\s]*(&[^=&\\s]+=[^=&\\s]*)*$'),
  ARCHIVE_CONCURRENCY: str('a number of alerts', INT),
  SEARCH_CONCURRENCY: str('a number of S3 reads', INT),
  STATUS_TIMEOUT_MS: str('milliseconds', INT),
  LOAD_MAX_EVENT_LOOP_DELAY_MS: str('milliseconds (0: off)', INT),
  LOAD_MAX_EVENT_LOOP_UTILIZATION: str('a fraction from 0 to 1 (0: off)', '^(0(\\.[0-9]+)?|1(\\.0+)?)$'),
  LOAD_MAX_HEAP_USED_BYTES: str('a size in bytes (0: off)', INT),
  LOAD_MAX_RSS_BYTES: str('a size in bytes (0: off)', INT),
  LOAD_MAX_IN_FLIGHT_WEBHOOKS: str('a number of requests', INT),
  LOAD_RETRY_AFTER_SECONDS: str('seconds', INT),
  STATUS_CACHE_MS: str('milliseconds', INT),
  // Integrity: Object Lock retention, digest signing, the periodic digest job.
  S3_OBJECT_LOCK_MODE: str('"GOVERNANCE" or "COMPLIANCE"', '^(GOVERNANCE|COMPLIANCE)$'),
  S3_OBJECT_LOCK_DAYS: str('a number of days (at least 1)', INT),
  DIGEST_SIGNING_KEY_FILE: str('the path of an Ed25519 private key (PEM)'),
  DIGEST_KMS_KEY_ID: str('a KMS key id, alias or ARN', '^[A-Za-z0-9:/_-]{1,2048}$'),
  SWEEP_INTERVAL_S: str('seconds (0: off)', INT),
  SWEEP_LOOKBACK_HOURS: str('a number of hours', INT)
})

type EnvName = keyof typeof EnvSchema.properties
export type Env = Partial<Record<EnvName, string>>

export type ThreatStackAuth =
  | { kind: 'hawk', userId: string, organizationId: string }
  | { kind: 'legacy' }

export interface Config {
  server: {
    port: number
    host: string
    bodyLimit: number
    maxHeaderBytes: number
    trustProxy: boolean | number | string[]
    keepAliveTimeoutMs: number
    requestTimeoutMs: number
    /** How long a request body may take to arrive once its head is in. */
    bodyTimeoutMs: number
    shutdownGraceMs: number
  }
  logLevel: string
  s3: {
    bucket: string
    /** Normalised: no leading or trailing slash; '' when none. */
    prefix: string
    region: string
    endpoint?: string
    credentials?: { accessKeyId: string, secretAccessKey: string, sessionToken?: string }
    timeoutMs: number
    connectTimeoutMs: number
    /** Total time of one S3 call (slot wait, every attempt, body read); absent: services/storage.ts's default. */
    budgetMs?: number
    maxSockets: number
    /** Sockets of the read routes (search, alert by id), beside maxSockets: reads never take ingest's. */
    readMaxSockets?: number
    maxAttempts: number
    /** The SDK's retry strategy; its default (standard) when absent. */
    retryMode?: 'standard' | 'adaptive'
    /** Applied to every object written; absent: the bucket's defaults. */
    write?: S3WriteOptions
  }
  threatstack: {
    baseUrl: string
    apiKey: string
    auth: ThreatStackAuth
    timeoutMs: number
    connectTimeoutMs: number
    maxConnections: number
    maxResponseBytes: number
    retry: { retries: number, baseDelayMs: number, maxDelayMs: number, budgetMs: number }
  }
  auth: {
    mode: 'tokens' | 'none'
    ingestTokens: string[]
    readTokens: string[]
  }
  sns: {
    enabled: boolean
    /** undefined: any topic may deliver. */
    topicArns?: string[]
    certsDir?: string
  }
  archive: { concurrency: number }
  search: { concurrency: number }
  status: { timeoutMs: number, cacheMs: number }
  integrity: {
    /** Retention put on every object written; absent: none from us (the bucket's default may apply). */
    lock?: { mode: 'GOVERNANCE' | 'COMPLIANCE', days: number }
    /** What signs the hourly digests; neither: chained but unsigned. */
    signingKeyFile?: string
    kmsKeyId?: string
    /** Seconds between digest runs; 0: off. */
    intervalS: number
    /** How far back, in hours, late objects get a supplement digest. */
    lookbackHours: number
  }
  load: {
    maxEventLoopDelayMs: number
    maxEventLoopUtilization: number
    maxHeapUsedBytes: number
    maxRssBytes: number
    maxInFlightWebhooks: number
    retryAfterSeconds: number
  }
}

export interface S3WriteOptions {
  ServerSideEncryption?: 'AES256' | 'aws:kms'
  SSEKMSKeyId?: string
  StorageClass?: StorageClass
  /** URL-encoded, as the x-amz-tagging header. */
  Tagging?: string
}

export const THREATSTACK_V2_URL = 'https://api.threatstack.com/v2'
export const THREATSTACK_V1_URL = 'https://app.threatstack.com/api/v1'

/** A configuration the process cannot start with. The message names the variable, never its value. */
export class ConfigError extends Error {
  constructor (readonly variable: string, rule: string) {
    super(`Invalid configuration: ${variable} ${rule}`)
    this.name = 'ConfigError'
  }
}

function list (value: string | undefined): string[] {
  return value === undefined ? [] : value.split(',').map((s) => s.trim()).filter((s) => s !== '')
}

function bool (value: string | undefined, fallback: boolean): boolean {
  return value === undefined ? fallback : ['true', '1', 'yes'].includes(value)
}

function trustProxy (value: string | undefined): boolean | number | string[] {
  if (value === undefined || value === 'false') return false
  if (value === 'true') return true
  if (/^[0-9]+$/.test(value)) return Number(value)
  return list(value)
}

/** The process environment: the one place it is read. */
export function readEnv (): Record<string, string | undefined> {
  return { ...process.env }
}

/**
 * Reads the environment into a Config.
 * @throws ConfigError naming the first variable that is missing or malformed.
 */
export function loadConfig (source: Record<string, string | undefined>): Config {
  // Only the variables of the schema are looked at; an empty value counts as unset.
  const env: Env = {}
  for (const name of Object.keys(EnvSchema.properties) as EnvName[]) {
    const value = source[name]
    if (value !== undefined && value.trim() !== '') env[name] = name === 'TS_AWS_S3_PREFIX' ? value.trim() : value
  }
  const first = Value.Errors(EnvSchema, env).First()
  if (first !== undefined) {
    const name = first.path.replace(/^\//, '')
    const description = (EnvSchema.properties as Record<string, TSchema>)[name]?.description ?? 'a valid value'
    throw new ConfigError(name, `must be ${description}`)
  }

  const int = (name: EnvName, fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER): number => {
    const value = env[name] === undefined ? fallback : Number(env[name])
    if (value < min || value > max) throw new ConfigError(name, `must be from ${min} to ${max}`)
    return value
  }
  const required = (name: EnvName): string => {
    const value = env[name]
    if (value === undefined) throw new ConfigError(name, 'is required')
    return value
  }

  // Required variables are checked in the order of the README's table.
  const bucket = required('TS_AWS_S3_BUCKET')
  const apiKey = required('THREATSTACK_API_KEY')
  const authMode = env.AUTH_MODE === 'none' ? 'none' : 'tokens'
  const ingestTokens = list(env.INGEST_TOKENS)
  const readTokens = list(env.READ_TOKENS)
  if (authMode === 'tokens') {
    required('INGEST_TOKENS')
    required('READ_TOKENS')
  }

  const { THREATSTACK_USER_ID: userId, THREATSTACK_ORGANIZATION_ID: organizationId } = env
  if ((userId === undefined) !== (organizationId === undefined)) {
    throw new ConfigError(userId === undefined ? 'THREATSTACK_USER_ID' : 'THREATSTACK_ORGANIZATION_ID',
      'is required when ' + (userId === undefined ? 'THREATSTACK_ORGANIZATION_ID' : 'THREATSTACK_USER_ID') + ' is set (Hawk needs both)')
  }
  const tsAuth: ThreatStackAuth = userId !== undefined && organizationId !== undefined
    ? { kind: 'hawk', userId, organizationId }
    : { kind: 'legacy' }

  const { AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretAccessKey } = env
  if ((accessKeyId === undefined) !== (secretAccessKey === undefined)) {
    throw new ConfigError(accessKeyId === undefined ? 'AWS_ACCESS_KEY_ID' : 'AWS_SECRET_ACCESS_KEY', 'is required when the other AWS key variable is set')
  }

  if (env.S3_SSE_KMS_KEY_ID !== undefined && env.S3_SSE !== 'aws:kms') {
    throw new ConfigError('S3_SSE_KMS_KEY_ID', 'needs S3_SSE=aws:kms')
  }
  const write: S3WriteOptions = {
    ...(env.S3_SSE !== undefined && { ServerSideEncryption: env.S3_SSE as 'AES256' | 'aws:kms' }),
    ...(env.S3_SSE_KMS_KEY_ID !== undefined && { SSEKMSKeyId: env.S3_SSE_KMS_KEY_ID }),
    ...(env.S3_STORAGE_CLASS !== undefined && { StorageClass: env.S3_STORAGE_CLASS as StorageClass }),
    ...(env.S3_OBJECT_TAGS !== undefined && { Tagging: env.S3_OBJECT_TAGS })
  }

  // Integrity settings.
  const { S3_OBJECT_LOCK_MODE: lockMode, S3_OBJECT_LOCK_DAYS: lockDays } = env
  if ((lockMode === undefined) !== (lockDays === undefined)) {
    throw new ConfigError(lockMode === undefined ? 'S3_OBJECT_LOCK_MODE' : 'S3_OBJECT_LOCK_DAYS',
      'is required when ' + (lockMode === undefined ? 'S3_OBJECT_LOCK_DAYS' : 'S3_OBJECT_LOCK_MODE') + ' is set (a retention needs both)')
  }
  if (env.DIGEST_SIGNING_KEY_FILE !== undefined && env.DIGEST_KMS_KEY_ID !== undefined) {
    throw new ConfigError('DIGEST_KMS_KEY_ID', 'cannot be set together with DIGEST_SIGNING_KEY_FILE (one signer)')
  }
  const integrity: Config['integrity'] = {
    ...(lockMode !== undefined && { lock: { mode: lockMode as 'GOVERNANCE' | 'COMPLIANCE', days: int('S3_OBJECT_LOCK_DAYS', 1, 1, 36_500) } }),
    ...(env.DIGEST_SIGNING_KEY_FILE !== undefined && { signingKeyFile: env.DIGEST_SIGNING_KEY_FILE }),
    ...(env.DIGEST_KMS_KEY_ID !== undefined && { kmsKeyId: env.DIGEST_KMS_KEY_ID }),
    intervalS: int('SWEEP_INTERVAL_S', 60, 0, 86_400),
    lookbackHours: int('SWEEP_LOOKBACK_HOURS', 48, 1, 24 * 366)
  }

  const topicArns = list(env.SNS_TOPIC_ARNS)
  const level = env.TS_DEBUG !== undefined ? 'debug' : env.LOG_LEVEL ?? 'info'

  return {
    server: {
      port: int('PORT', 3000, 0, 65535),
      host: env.HOST ?? '0.0.0.0',
      bodyLimit: int('BODY_LIMIT_BYTES', 1024 * 1024, 1024, 64 * 1024 * 1024),
      maxHeaderBytes: int('MAX_HEADER_BYTES', 16 * 1024, 1024, 64 * 1024),
      trustProxy: trustProxy(env.TRUST_PROXY),
      // Above the idle timeout of common balancers (AWS ALB: 60 s), so they close first.
      keepAliveTimeoutMs: int('KEEP_ALIVE_TIMEOUT_MS', 72_000, 1000),
      requestTimeoutMs: int('REQUEST_TIMEOUT_MS', 60_000, 1000),
      // A webhook of BODY_LIMIT_BYTES arrives in well under a second from any sender worth serving.
      bodyTimeoutMs: int('BODY_TIMEOUT_MS', 10_000, 100),
      shutdownGraceMs: int('SHUTDOWN_GRACE_MS', 25_000, 0)
    },
    logLevel: level,
    s3: {
      bucket,
      prefix: (env.TS_AWS_S3_PREFIX ?? '').replace(/^\/+|\/+$/g, ''),
      region: env.AWS_REGION ?? 'us-east-1',
      ...(env.AWS_ENDPOINT_URL_S3 !== undefined && { endpoint: env.AWS_ENDPOINT_URL_S3 }),
      ...(accessKeyId !== undefined && secretAccessKey !== undefined && {
        credentials: {
          accessKeyId,
          secretAccessKey,
          ...(env.AWS_SESSION_TOKEN !== undefined && { sessionToken: env.AWS_SESSION_TOKEN })
        }
      }),
      timeoutMs: int('S3_TIMEOUT_MS', 10_000, 100),
      // Leaves a webhook's record PUT room to fail and be answered within the ~30 s a sender waits.
      budgetMs: int('S3_BUDGET_MS', 15_000, 100),
      connectTimeoutMs: int('S3_CONNECT_TIMEOUT_MS', 3000, 100),
      maxSockets: int('S3_MAX_SOCKETS', 64, 1, 4096),
      readMaxSockets: int('S3_READ_MAX_SOCKETS', 32, 1, 4096),
      maxAttempts: int('S3_MAX_ATTEMPTS', 3, 1, 10),
      retryMode: env.S3_RETRY_MODE === 'adaptive' ? 'adaptive' : 'standard',
      ...(Object.keys(write).length > 0 && { write })
    },
    threatstack: {
      baseUrl: (env.THREATSTACK_BASE_URL ?? (tsAuth.kind === 'hawk' ? THREATSTACK_V2_URL : THREATSTACK_V1_URL)).replace(/\/+$/, ''),
      apiKey,
      auth: tsAuth,
      timeoutMs: int('THREATSTACK_TIMEOUT_MS', 8000, 100),
      connectTimeoutMs: int('THREATSTACK_CONNECT_TIMEOUT_MS', 3000, 100),
      maxConnections: int('THREATSTACK_MAX_CONNECTIONS', 64, 1, 4096),
      maxResponseBytes: int('THREATSTACK_MAX_RESPONSE_BYTES', 1024 * 1024, 1024),
      retry: {
        retries: int('THREATSTACK_RETRIES', 2, 0, 10),
        baseDelayMs: int('THREATSTACK_RETRY_BASE_MS', 200, 1),
        maxDelayMs: int('THREATSTACK_RETRY_MAX_DELAY_MS', 2000, 1),
        // Under the ~30 s a webhook sender waits, so a slow Threat Stack still gets an answer out.
        budgetMs: int('THREATSTACK_BUDGET_MS', 20_000, 100)
      }
    },
    auth: { mode: authMode, ingestTokens, readTokens },
    sns: {
      enabled: bool(env.SNS_ENABLED, true),
      ...(topicArns.length > 0 && { topicArns }),
      ...(env.SNS_CERTS_DIR !== undefined && { certsDir: env.SNS_CERTS_DIR })
    },
    archive: { concurrency: int('ARCHIVE_CONCURRENCY', 8, 1, 256) },
    search: { concurrency: int('SEARCH_CONCURRENCY', 16, 1, 256) },
    status: {
      timeoutMs: int('STATUS_TIMEOUT_MS', 2000, 100),
      cacheMs: int('STATUS_CACHE_MS', 5000, 0)
    },
    integrity,
    load: {
      maxEventLoopDelayMs: int('LOAD_MAX_EVENT_LOOP_DELAY_MS', 1000, 0),
      maxEventLoopUtilization: env.LOAD_MAX_EVENT_LOOP_UTILIZATION === undefined ? 0.98 : Number(env.LOAD_MAX_EVENT_LOOP_UTILIZATION),
      // Memory limits depend on the container: off unless set.
      maxHeapUsedBytes: int('LOAD_MAX_HEAP_USED_BYTES', 0, 0),
      maxRssBytes: int('LOAD_MAX_RSS_BYTES', 0, 0),
      maxInFlightWebhooks: int('LOAD_MAX_IN_FLIGHT_WEBHOOKS', 256, 1, 100_000),
      retryAfterSeconds: int('LOAD_RETRY_AFTER_SECONDS', 2, 1, 3600)
    }
  }
}
