// The service's configuration: one table, one row per environment variable (its TypeBox type
// with bounds and default, what it means, whether it is a secret, the section of Config it
// feeds), read once at start-up. This is the only module that reads environment variables.
import { FormatRegistry, Kind, Type, type Static, type TInteger, type TLiteral, type TSchema, type TString, type TUnion } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { isIP } from 'node:net'
import type { StorageClass } from '@aws-sdk/client-s3'

export type ThreatStackAuth =
  | { kind: 'hawk', userId: string, organizationId: string }
  | { kind: 'legacy' }

export interface S3WriteOptions {
  ServerSideEncryption?: 'AES256' | 'aws:kms'
  SSEKMSKeyId?: string
  StorageClass?: StorageClass
  /** URL-encoded, as the x-amz-tagging header. */
  Tagging?: string
}

export const THREATSTACK_V2_URL = 'https://api.threatstack.com/v2'
export const THREATSTACK_V1_URL = 'https://app.threatstack.com/api/v1'

type Section = 'server' | 'logLevel' | 's3' | 'threatstack' | 'auth' | 'sns' | 'archive' | 'search' | 'status' | 'load' | 'integrity'

export interface Variable<S extends TSchema = TSchema> {
  /** The parsed value's type, with its bounds and `default`; its `description` is the README's. */
  schema: S
  section: Section
  /** Never logged, never printed, not even in an error. */
  secret?: boolean
  /** Unset is an error (variables required only with others are checked after the walk). */
  required?: boolean
  /** What a valid value is, for the error line; integers say their range themselves. */
  must?: string
  /** The README's default column when the schema's default does not tell it. */
  shown?: string
}

const TOKEN = '^[\\x21-\\x2b\\x2d-\\x7e]{16,256}$'
const URL_PATTERN = '^https?://[^\\s]+$'

type Defaulted<S extends TSchema> = S & { default: Static<S> }

const ms = (description: string, def: number, minimum: number, maximum?: number): Defaulted<TInteger> =>
  Type.Integer({ description, default: def, minimum, ...(maximum !== undefined && { maximum }) }) as Defaulted<TInteger>
const str = (description: string, pattern?: string): TString =>
  Type.String({ description, ...(pattern !== undefined && { pattern }) })
const strD = (description: string, pattern: string, def: string): Defaulted<TString> =>
  Type.String({ description, pattern, default: def }) as Defaulted<TString>
const oneOf = <T extends string>(description: string, values: readonly T[], def: T): Defaulted<TUnion<Array<TLiteral<T>>>> =>
  Type.Union(values.map((v) => Type.Literal(v)), { description, default: def }) as Defaulted<TUnion<Array<TLiteral<T>>>>
const tokens = (description: string) =>
  Type.Array(Type.String({ pattern: TOKEN }), { description, minItems: 1 })
const defaulted = <S extends TSchema>(schema: S): Defaulted<S> => schema as Defaulted<S>

// What proxy-addr (Fastify's trustProxy) compiles: an address, a CIDR, address/netmask, or a named range.
FormatRegistry.Set('proxy', (value) => {
  if (['loopback', 'linklocal', 'uniquelocal'].includes(value) || isIP(value) !== 0) return true
  const [address = '', range, ...rest] = value.split('/')
  const family = isIP(address)
  if (family === 0 || range === undefined || rest.length > 0) return false
  if (/^[0-9]{1,3}$/.test(range)) return Number(range) <= (family === 4 ? 32 : 128)
  return family === 4 && isIP(range) === 4
})

// A network of INGEST_ALLOWED_CIDRS: an address, or an address with a prefix length (node:net's BlockList takes both).
FormatRegistry.Set('network', (value) => {
  const [address = '', bits, ...rest] = value.split('/')
  const family = isIP(address)
  if (family === 0 || rest.length > 0) return false
  return bits === undefined || (/^[0-9]{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128))
})

/** Every variable the service reads, in the README's order. */
export const VARIABLES = {
  PORT: { section: 'server', schema: ms('listen port', 3000, 0, 65535) },
  HOST: { section: 'server', schema: strD('listen address', '^[A-Za-z0-9.:_-]{1,255}$', '0.0.0.0'), must: 'a host name or IP address' },
  TS_AWS_S3_BUCKET: { section: 's3', required: true, schema: str('archive bucket', '^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$'), must: 'an S3 bucket name (3-63 characters of a-z, 0-9, ".", "-")' },
  TS_AWS_S3_PREFIX: { section: 's3', schema: str('key prefix inside the bucket (slashes at either end are dropped)', '^(?!.*\\.\\.)[A-Za-z0-9!_.*\'()/-]{1,256}$'), must: 'a key prefix (up to 256 characters, no "..")', shown: 'none' },
  AWS_REGION: { section: 's3', schema: strD('S3 region', '^[a-z0-9-]{2,32}$', 'us-east-1'), must: 'an AWS region such as us-east-1' },
  AWS_ENDPOINT_URL_S3: { section: 's3', schema: str('S3-compatible endpoint (MinIO, Ceph, a local server); path-style addressing, checksums only where required', URL_PATTERN), must: 'an http(s) URL', shown: 'AWS' },
  AWS_ACCESS_KEY_ID: { section: 's3', schema: str('static credentials, with `AWS_SECRET_ACCESS_KEY`; unset: the SDK\'s credential chain (instance role, web identity, profile)', '^\\S{1,256}$'), must: 'an access key id', shown: 'SDK chain' },
  AWS_SECRET_ACCESS_KEY: { section: 's3', secret: true, schema: str('the secret of `AWS_ACCESS_KEY_ID`', '^\\S{1,256}$'), must: 'a secret access key', shown: 'SDK chain' },
  AWS_SESSION_TOKEN: { section: 's3', secret: true, schema: str('session token of temporary static credentials', '^\\S+$'), must: 'a session token' },
  THREATSTACK_API_KEY: { section: 'threatstack', required: true, secret: true, schema: str('Threat Stack API key', '^\\S{1,1024}$'), must: 'the Threat Stack API key' },
  THREATSTACK_USER_ID: { section: 'threatstack', schema: str('with `THREATSTACK_ORGANIZATION_ID`: Hawk (sha256) auth with `ext` = organization id (API v2); both unset: legacy `Authorization: <key>` (API v1); one alone is an error', '^\\S{1,256}$'), must: 'the Threat Stack user id' },
  THREATSTACK_ORGANIZATION_ID: { section: 'threatstack', schema: str('the organization id of Hawk auth (with `THREATSTACK_USER_ID`)', '^\\S{1,256}$'), must: 'the Threat Stack organization id' },
  THREATSTACK_BASE_URL: { section: 'threatstack', schema: str('REST API base', URL_PATTERN), must: 'an http(s) URL', shown: '`https://api.threatstack.com/v2` with Hawk, `https://app.threatstack.com/api/v1` with the legacy key' },
  INGEST_TOKENS: { section: 'auth', secret: true, schema: tokens('comma-separated tokens (16–256 printable characters each) allowed to post webhooks'), must: 'comma-separated tokens of 16 to 256 printable characters', shown: '**required** unless `AUTH_MODE=none`' },
  READ_TOKENS: { section: 'auth', secret: true, schema: tokens('comma-separated tokens allowed to read the archive'), must: 'comma-separated tokens of 16 to 256 printable characters', shown: '**required** unless `AUTH_MODE=none`' },
  INGEST_ALLOWED_CIDRS: {
    section: 'auth',
    schema: Type.Array(Type.String({ format: 'network' }), {
      description: 'comma-separated networks (`192.0.2.0/24`, `2001:db8::/32`, or an address) allowed to post webhooks, judged on the client address after `TRUST_PROXY`; others get `403 AuthorizationError`, whatever their token. SNS deliveries come from AWS\'s addresses, not Threat Stack\'s; unset: any',
      minItems: 1
    }),
    must: 'comma-separated networks: an IP address, optionally with /prefix length',
    shown: 'unset'
  },
  AUTH_MODE: { section: 'auth', schema: oneOf('`tokens`, or `none` when a gateway in front authenticates (logged as a warning)', ['tokens', 'none'], 'tokens'), must: '"tokens" or "none"' },
  LOG_LEVEL: { section: 'logLevel', schema: oneOf('`fatal` … `trace`, `silent`', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], 'info'), must: 'one of fatal, error, warn, info, debug, trace, silent' },
  TS_DEBUG: { section: 'logLevel', schema: str('the Python service\'s switch: when set, the level is `debug`'), must: 'any value' },
  SNS_ENABLED: { section: 'sns', schema: defaulted(Type.Boolean({ description: 'accept AWS SNS deliveries', default: true })), must: 'true or false' },
  SNS_TOPIC_ARNS: { section: 'sns', schema: Type.Array(Type.String({ pattern: '^arn:\\S+$' }), { description: 'comma-separated topic ARNs allowed to deliver; unset: any', minItems: 1 }), must: 'comma-separated SNS topic ARNs' },
  SNS_CERTS_DIR: { section: 'sns', schema: str('folder of SNS signing certificates used instead of fetching them'), must: 'a folder path' },
  BODY_LIMIT_BYTES: { section: 'server', schema: ms('largest request body; larger: `413`', 1024 * 1024, 1024, 64 * 1024 * 1024) },
  MAX_HEADER_BYTES: { section: 'server', schema: ms('largest request head (request line and headers); larger: `431`', 16 * 1024, 1024, 64 * 1024) },
  TRUST_PROXY: {
    section: 'server',
    schema: defaulted(Type.Union([Type.Integer({ minimum: 0 }), Type.Boolean(), Type.Array(Type.String({ format: 'proxy' }), { minItems: 1 })],
      { description: '`true`, `false`, a hop count, or comma-separated addresses/CIDRs of trusted proxies', default: false })),
    must: 'true, false, a hop count, or comma-separated IP addresses or CIDRs'
  },
  // Above the idle timeout of common balancers (AWS ALB: 60 s), so they close first.
  KEEP_ALIVE_TIMEOUT_MS: { section: 'server', schema: ms('idle keep-alive of client connections; keep it above the balancer\'s idle timeout (ALB: 60 s)', 72_000, 1000) },
  REQUEST_TIMEOUT_MS: { section: 'server', schema: ms('longest time to receive a whole request', 60_000, 1000) },
  // A webhook of BODY_LIMIT_BYTES arrives in well under a second from any sender worth serving.
  BODY_TIMEOUT_MS: { section: 'server', schema: ms('longest time for a request body to arrive once its head is in; later: `408`, and the connection is closed (a slow sender holds no webhook slot meanwhile)', 10_000, 100) },
  SHUTDOWN_GRACE_MS: { section: 'server', schema: ms('on SIGTERM/SIGINT, time left to requests in flight before the process exits anyway', 25_000, 0) },
  THREATSTACK_TIMEOUT_MS: { section: 'threatstack', schema: ms('deadline of one Threat Stack attempt (headers and body)', 8000, 100) },
  THREATSTACK_RETRIES: { section: 'threatstack', schema: ms('retries after the first attempt, on connection failures, 5xx and 429 (GETs are idempotent)', 2, 0, 10) },
  THREATSTACK_RETRY_BASE_MS: { section: 'threatstack', schema: ms('exponential backoff with full jitter: retry n waits a random time below min(max, base × 2ⁿ); a `Retry-After` from Threat Stack is honoured instead', 200, 1) },
  THREATSTACK_RETRY_MAX_DELAY_MS: { section: 'threatstack', schema: ms('the longest wait between two retries (the max above)', 2000, 1) },
  // Under the ~30 s a webhook sender waits, so a slow Threat Stack still gets an answer out.
  THREATSTACK_BUDGET_MS: { section: 'threatstack', schema: ms('all attempts and waits of one call end within this; a `Retry-After` past it ends the call at once (the sender retries later)', 20_000, 100) },
  THREATSTACK_CONNECT_TIMEOUT_MS: { section: 'threatstack', schema: ms('TCP/TLS connect timeout to Threat Stack', 3000, 100) },
  THREATSTACK_MAX_CONNECTIONS: { section: 'threatstack', schema: ms('connections in the Threat Stack pool', 64, 1, 4096) },
  THREATSTACK_MAX_RESPONSE_BYTES: { section: 'threatstack', schema: ms('largest Threat Stack answer accepted', 1024 * 1024, 1024) },
  S3_TIMEOUT_MS: { section: 's3', schema: ms('S3 request timeout: how long one attempt\'s socket may stay idle', 10_000, 100) },
  // Leaves a webhook's record PUT room to fail and be answered within the ~30 s a sender waits.
  S3_BUDGET_MS: { section: 's3', schema: ms('total time of one S3 call: the wait for a slot, every attempt and backoff, and the body read; past it `502 S3ClientError`, the socket closed and the slot freed (an S3 that trickles cannot hold a call)', 15_000, 100) },
  S3_CONNECT_TIMEOUT_MS: { section: 's3', schema: ms('S3 connect timeout', 3000, 100) },
  S3_MAX_SOCKETS: { section: 's3', schema: ms('keep-alive sockets to S3, and S3 calls under way at once (more wait their turn before the SDK builds them, outside `S3_TIMEOUT_MS` but inside `S3_BUDGET_MS`), for ingest and everything but the read routes', 64, 1, 4096) },
  S3_READ_MAX_SOCKETS: { section: 's3', schema: ms('sockets to S3, and S3 calls under way at once, of the read routes (searches, alerts by id), on top of `S3_MAX_SOCKETS`: however many searches run, they never take a socket a webhook needs', 32, 1, 4096) },
  S3_MAX_ATTEMPTS: { section: 's3', schema: ms('attempts per S3 call (the SDK\'s retry: 5xx, throttling, connection errors)', 3, 1, 10) },
  S3_RETRY_MODE: { section: 's3', schema: oneOf('`standard`, or `adaptive` (client-side rate limiting when S3 throttles)', ['standard', 'adaptive'], 'standard'), must: '"standard" or "adaptive"' },
  S3_SSE: { section: 's3', schema: Type.Union([Type.Literal('AES256'), Type.Literal('aws:kms')], { description: 'server-side encryption of every object written: `AES256` or `aws:kms`' }), must: '"AES256" or "aws:kms"', shown: 'bucket default' },
  S3_SSE_KMS_KEY_ID: { section: 's3', schema: str('KMS key (id, alias or ARN) with `S3_SSE=aws:kms`', '^[A-Za-z0-9:/_-]{1,2048}$'), must: 'a KMS key id, alias or ARN', shown: 'AWS managed key' },
  S3_STORAGE_CLASS: { section: 's3', schema: str('storage class of every object, e.g. `STANDARD_IA`, `GLACIER_IR`', '^[A-Z_]{3,32}$'), must: 'an S3 storage class such as STANDARD_IA', shown: '`STANDARD`' },
  S3_OBJECT_TAGS: { section: 's3', schema: str('URL-encoded tags on every object, e.g. `app=threatstack-to-s3&retention=7y` (needs `s3:PutObjectTagging`)', '^[^=&\\s]+=[^=&\\s]*(&[^=&\\s]+=[^=&\\s]*)*$'), must: 'URL-encoded tags, key=value&key2=value2', shown: 'none' },
  ARCHIVE_CONCURRENCY: { section: 'archive', schema: ms('alerts of one webhook archived at once', 8, 1, 256) },
  ENRICH_WAIT_MS: { section: 'archive', schema: ms('how long a webhook request waits for its full alerts before answering with them `pending` (`0`: never waits); it always waits for the records', 2000, 0, 60_000) },
  ENRICH_QUEUE_MAX: { section: 'archive', schema: ms('full alerts owed in the background at once by one process; beyond it they are left to the sweeper (counted)', 10_000, 1, 1_000_000) },
  ENRICH_CONCURRENCY: { section: 'archive', schema: ms('background retries of full alerts under way at once', 8, 1, 256) },
  ENRICH_BUDGET_MS: { section: 'archive', schema: ms('how long an owed full alert is retried in the background (backoff with full jitter from `THREATSTACK_RETRY_BASE_MS`, or Threat Stack\'s `Retry-After`) before it is left to the sweeper', 600_000, 1000) },
  ENRICH_RETRY_MAX_DELAY_MS: { section: 'archive', schema: ms('the longest wait between two background retries', 60_000, 1) },
  ENRICH_DRAIN_MS: { section: 'archive', schema: ms('on close, time left to background fetches under way before they are aborted (the sweeper completes the rest); keep it below `SHUTDOWN_GRACE_MS`', 10_000, 0) },
  SEARCH_CONCURRENCY: { section: 'search', schema: ms('S3 reads of one search at once', 16, 1, 256) },
  STATUS_TIMEOUT_MS: { section: 'status', schema: ms('timeout of each dependency check of `/status`', 2000, 100) },
  STATUS_CACHE_MS: { section: 'status', schema: ms('how long a `/status` answer is reused', 5000, 0) },
  LOAD_MAX_EVENT_LOOP_DELAY_MS: { section: 'load', schema: ms('shed requests (503) while the event loop lags more than this; `0` off', 1000, 0) },
  LOAD_MAX_EVENT_LOOP_UTILIZATION: { section: 'load', schema: defaulted(Type.Number({ description: 'shed requests while the event loop is busier than this fraction; `0` off', default: 0.98, minimum: 0, maximum: 1 })), must: 'a fraction from 0 to 1 (0: off)' },
  // Memory limits depend on the container: off unless set.
  LOAD_MAX_HEAP_USED_BYTES: { section: 'load', schema: ms('shed requests above this heap use; set it from the container\'s limit; `0` off', 0, 0) },
  LOAD_MAX_RSS_BYTES: { section: 'load', schema: ms('shed requests above this resident memory; set it from the container\'s limit; `0` off', 0, 0) },
  LOAD_MAX_IN_FLIGHT_WEBHOOKS: { section: 'load', schema: ms('webhooks processed at once by one process; more are shed (503) instead of queued', 256, 1, 100_000) },
  LOAD_RETRY_AFTER_SECONDS: { section: 'load', schema: ms('`Retry-After` of a shed request', 2, 1, 3600) },
  S3_OBJECT_LOCK_MODE: { section: 'integrity', schema: Type.Union([Type.Literal('GOVERNANCE'), Type.Literal('COMPLIANCE')], { description: 'S3 Object Lock retention put on every object written (`GOVERNANCE` or `COMPLIANCE`), with `S3_OBJECT_LOCK_DAYS`; one without the other is an error' }), must: '"GOVERNANCE" or "COMPLIANCE"', shown: 'unset' },
  S3_OBJECT_LOCK_DAYS: { section: 'integrity', schema: Type.Integer({ description: 'days of that retention, from the time of writing', minimum: 1, maximum: 36_500 }), shown: 'unset' },
  DIGEST_SIGNING_KEY_FILE: { section: 'integrity', schema: str('Ed25519 private key (PEM, PKCS#8) that signs the hourly digests; one that cannot be read stops the start'), must: 'a file path', shown: 'unset' },
  DIGEST_KMS_KEY_ID: { section: 'integrity', schema: str('AWS KMS asymmetric key (`ECC_NIST_P256`, `SIGN_VERIFY`) that signs them instead (needs `kms:Sign`, `kms:GetPublicKey`); neither set: digests chained but unsigned, a warning at start', '^[A-Za-z0-9:/_-]{1,2048}$'), must: 'a KMS key id, alias or ARN', shown: 'unset' },
  SWEEP_INTERVAL_S: { section: 'integrity', schema: ms('seconds between two sweeps (enrichment, backfill, ledgers, digests); `0` turns the sweeper, and with it the digests, off', 60, 0, 86_400) },
  SWEEP_LOOKBACK_HOURS: { section: 'integrity', schema: ms('the sweeper\'s window, by the hour of the key: hours it completes, backfills and re-checks, and whose digests it writes; older hours are the CLIs\' work and get supplement digests when an object arrives for them', 48, 1, 24 * 366) },
  SWEEP_LEASE_S: { section: 'integrity', schema: ms('how long a replica\'s claim on an hour\'s check holds (renewed while the work goes on); a replica that dies leaves its hours to the others after this', 300, 5, 86_400) },
  BACKFILL_DELAY_MIN: { section: 'integrity', schema: ms('minutes after its end before an hour counts as closed and is backfilled from Threat Stack\'s list (late webhooks get that long to arrive)', 15, 0, 24 * 60) }
} satisfies Record<string, Variable>

export type EnvName = keyof typeof VARIABLES
/** The parsed value of every variable: its default when unset, or undefined when it has none. */
export type Values = { [K in EnvName]: (typeof VARIABLES)[K]['schema'] extends { default: unknown } ? Static<(typeof VARIABLES)[K]['schema']> : Static<(typeof VARIABLES)[K]['schema']> | undefined }

/** One line per invalid variable; the message names variables, never their values. */
export class ConfigError extends Error {
  /** The first variable named. */
  readonly variable: string
  readonly problems: ReadonlyArray<{ variable: string, rule: string }>
  constructor (problems: Array<{ variable: string, rule: string }>, options?: ErrorOptions) {
    super(problems.map((p) => `Invalid configuration: ${p.variable} ${p.rule}`).join('\n'), options)
    this.name = 'ConfigError'
    this.problems = problems
    this.variable = problems[0]?.variable ?? ''
  }
}

/**
 * The one line an entry point prints when it cannot listen where it was told to (a busy or a
 * forbidden port: a mistake in PORT or HOST, not a fault of ours), or undefined for any other failure.
 */
export function cannotListen (err: unknown, server: { host: string, port: number }): string | undefined {
  const code = (err as NodeJS.ErrnoException | undefined)?.code
  if (code !== 'EADDRINUSE' && code !== 'EACCES') return undefined
  return `Cannot listen: port ${server.port} on ${server.host} is ${code === 'EADDRINUSE' ? 'already in use' : 'not allowed'} (set PORT to another port)`
}

/** The process environment: the one place it is read. */
export function readEnv (): Record<string, string | undefined> {
  return { ...process.env }
}

const TRUE = ['true', '1', 'yes']
const FALSE = ['false', '0', 'no']

/** The text of a variable as the value its schema describes; `undefined` when it cannot be one. */
function parse (schema: TSchema, raw: string): unknown {
  switch (schema[Kind]) {
    case 'Integer':
    case 'Number':
      return /^-?[0-9]+(\.[0-9]+)?$/.test(raw) ? Number(raw) : undefined
    case 'Boolean':
      return TRUE.includes(raw) ? true : FALSE.includes(raw) ? false : undefined
    case 'Array':
      return /^[^,\s]+(\s*,\s*[^,\s]+)*$/.test(raw.trim()) ? raw.split(',').map((s) => s.trim()) : undefined
    case 'Union':
      // The first member the text parses into (TRUST_PROXY: a hop count, a boolean, then a list).
      for (const member of (schema as TUnion).anyOf) {
        const value = member[Kind] === 'Literal' ? raw : parse(member, raw)
        if (value !== undefined && Value.Check(member, value)) return value
      }
      return undefined
    default:
      return raw
  }
}

function rule (variable: Variable): string {
  const { schema } = variable
  if (schema[Kind] === 'Integer') {
    const { minimum, maximum } = schema as TInteger
    return maximum !== undefined ? `must be a whole number from ${minimum ?? 0} to ${maximum}` : `must be a whole number of at least ${minimum ?? 0}`
  }
  return `must be ${variable.must ?? 'a valid value'}`
}

/** Each variable's value, its default when unset; every invalid one is named at once. */
export function readValues (source: Record<string, string | undefined>): Values {
  const problems: Array<{ variable: string, rule: string }> = []
  const values: Record<string, unknown> = {}
  for (const [name, variable] of Object.entries(VARIABLES) as Array<[EnvName, Variable]>) {
    // An empty value counts as unset.
    const raw = source[name]?.trim()
    if (raw === undefined || raw === '') {
      if (variable.required === true) problems.push({ variable: name, rule: 'is required' })
      values[name] = variable.schema.default
      continue
    }
    const value = parse(variable.schema, name === 'TS_AWS_S3_PREFIX' ? raw : source[name] ?? '')
    if (value === undefined || !Value.Check(variable.schema, value)) problems.push({ variable: name, rule: rule(variable) })
    else values[name] = value
  }
  const v = values as Values
  // Rules over several variables.
  if (v.AUTH_MODE === 'tokens') {
    if (v.INGEST_TOKENS === undefined && !problems.some((p) => p.variable === 'INGEST_TOKENS')) problems.push({ variable: 'INGEST_TOKENS', rule: 'is required' })
    if (v.READ_TOKENS === undefined && !problems.some((p) => p.variable === 'READ_TOKENS')) problems.push({ variable: 'READ_TOKENS', rule: 'is required' })
  }
  if ((v.THREATSTACK_USER_ID === undefined) !== (v.THREATSTACK_ORGANIZATION_ID === undefined)) {
    const [missing, other] = v.THREATSTACK_USER_ID === undefined ? ['THREATSTACK_USER_ID', 'THREATSTACK_ORGANIZATION_ID'] : ['THREATSTACK_ORGANIZATION_ID', 'THREATSTACK_USER_ID']
    problems.push({ variable: missing, rule: `is required when ${other} is set (Hawk needs both)` })
  }
  if ((v.AWS_ACCESS_KEY_ID === undefined) !== (v.AWS_SECRET_ACCESS_KEY === undefined)) {
    problems.push({ variable: v.AWS_ACCESS_KEY_ID === undefined ? 'AWS_ACCESS_KEY_ID' : 'AWS_SECRET_ACCESS_KEY', rule: 'is required when the other AWS key variable is set' })
  }
  if (v.S3_SSE_KMS_KEY_ID !== undefined && v.S3_SSE !== 'aws:kms') problems.push({ variable: 'S3_SSE_KMS_KEY_ID', rule: 'needs S3_SSE=aws:kms' })
  if ((v.S3_OBJECT_LOCK_MODE === undefined) !== (v.S3_OBJECT_LOCK_DAYS === undefined) &&
    !problems.some((p) => p.variable === 'S3_OBJECT_LOCK_MODE' || p.variable === 'S3_OBJECT_LOCK_DAYS')) {
    const [missing, other] = v.S3_OBJECT_LOCK_MODE === undefined ? ['S3_OBJECT_LOCK_MODE', 'S3_OBJECT_LOCK_DAYS'] : ['S3_OBJECT_LOCK_DAYS', 'S3_OBJECT_LOCK_MODE']
    problems.push({ variable: missing, rule: `is required when ${other} is set (a retention needs both)` })
  }
  if (v.DIGEST_SIGNING_KEY_FILE !== undefined && v.DIGEST_KMS_KEY_ID !== undefined) {
    problems.push({ variable: 'DIGEST_KMS_KEY_ID', rule: 'cannot be set together with DIGEST_SIGNING_KEY_FILE (one signer)' })
  }
  if (problems.length > 0) throw new ConfigError(problems)
  return v
}

/** The sections of Config, shaped from the values. */
function shape (v: Values) {
  const tsAuth: ThreatStackAuth = v.THREATSTACK_USER_ID !== undefined && v.THREATSTACK_ORGANIZATION_ID !== undefined
    ? { kind: 'hawk', userId: v.THREATSTACK_USER_ID, organizationId: v.THREATSTACK_ORGANIZATION_ID }
    : { kind: 'legacy' }
  const write: S3WriteOptions = {
    ...(v.S3_SSE !== undefined && { ServerSideEncryption: v.S3_SSE }),
    ...(v.S3_SSE_KMS_KEY_ID !== undefined && { SSEKMSKeyId: v.S3_SSE_KMS_KEY_ID }),
    ...(v.S3_STORAGE_CLASS !== undefined && { StorageClass: v.S3_STORAGE_CLASS as StorageClass }),
    ...(v.S3_OBJECT_TAGS !== undefined && { Tagging: v.S3_OBJECT_TAGS })
  }
  const credentials = v.AWS_ACCESS_KEY_ID !== undefined && v.AWS_SECRET_ACCESS_KEY !== undefined
    ? { accessKeyId: v.AWS_ACCESS_KEY_ID, secretAccessKey: v.AWS_SECRET_ACCESS_KEY, ...(v.AWS_SESSION_TOKEN !== undefined && { sessionToken: v.AWS_SESSION_TOKEN }) }
    : undefined
  return {
    server: {
      port: v.PORT,
      host: v.HOST,
      bodyLimit: v.BODY_LIMIT_BYTES,
      maxHeaderBytes: v.MAX_HEADER_BYTES,
      trustProxy: v.TRUST_PROXY as boolean | number | string[],
      keepAliveTimeoutMs: v.KEEP_ALIVE_TIMEOUT_MS,
      requestTimeoutMs: v.REQUEST_TIMEOUT_MS,
      bodyTimeoutMs: v.BODY_TIMEOUT_MS,
      shutdownGraceMs: v.SHUTDOWN_GRACE_MS
    },
    logLevel: v.TS_DEBUG !== undefined ? 'debug' : v.LOG_LEVEL as string,
    s3: {
      bucket: v.TS_AWS_S3_BUCKET ?? '',
      /** Normalised: no leading or trailing slash; '' when none. */
      prefix: (v.TS_AWS_S3_PREFIX ?? '').replace(/^\/+|\/+$/g, ''),
      region: v.AWS_REGION,
      ...(v.AWS_ENDPOINT_URL_S3 !== undefined && { endpoint: v.AWS_ENDPOINT_URL_S3 }),
      ...(credentials !== undefined && { credentials }),
      timeoutMs: v.S3_TIMEOUT_MS,
      connectTimeoutMs: v.S3_CONNECT_TIMEOUT_MS,
      // Optional in the type, so that a store built without a Config keeps services/storage.ts's defaults.
      ...({ budgetMs: v.S3_BUDGET_MS, readMaxSockets: v.S3_READ_MAX_SOCKETS } as { budgetMs?: number, readMaxSockets?: number }),
      maxSockets: v.S3_MAX_SOCKETS,
      maxAttempts: v.S3_MAX_ATTEMPTS,
      // Optional in the type: the SDK's default applies to a Config made without it.
      ...({ retryMode: v.S3_RETRY_MODE } as { retryMode?: 'standard' | 'adaptive' }),
      /** Applied to every object written; absent: the bucket's defaults. */
      ...(Object.keys(write).length > 0 && { write })
    },
    threatstack: {
      baseUrl: (v.THREATSTACK_BASE_URL ?? (tsAuth.kind === 'hawk' ? THREATSTACK_V2_URL : THREATSTACK_V1_URL)).replace(/\/+$/, ''),
      apiKey: v.THREATSTACK_API_KEY ?? '',
      auth: tsAuth,
      timeoutMs: v.THREATSTACK_TIMEOUT_MS,
      connectTimeoutMs: v.THREATSTACK_CONNECT_TIMEOUT_MS,
      maxConnections: v.THREATSTACK_MAX_CONNECTIONS,
      maxResponseBytes: v.THREATSTACK_MAX_RESPONSE_BYTES,
      retry: {
        retries: v.THREATSTACK_RETRIES,
        baseDelayMs: v.THREATSTACK_RETRY_BASE_MS,
        maxDelayMs: v.THREATSTACK_RETRY_MAX_DELAY_MS,
        budgetMs: v.THREATSTACK_BUDGET_MS
      }
    },
    auth: {
      mode: v.AUTH_MODE,
      ingestTokens: v.INGEST_TOKENS ?? [],
      readTokens: v.READ_TOKENS ?? [],
      /** undefined: webhooks from any address. */
      ...(v.INGEST_ALLOWED_CIDRS !== undefined && { ingestNetworks: v.INGEST_ALLOWED_CIDRS })
    },
    sns: {
      enabled: v.SNS_ENABLED,
      /** undefined: any topic may deliver. */
      ...(v.SNS_TOPIC_ARNS !== undefined && { topicArns: v.SNS_TOPIC_ARNS }),
      ...(v.SNS_CERTS_DIR !== undefined && { certsDir: v.SNS_CERTS_DIR })
    },
    archive: {
      concurrency: v.ARCHIVE_CONCURRENCY,
      enrich: {
        waitMs: v.ENRICH_WAIT_MS,
        queueMax: v.ENRICH_QUEUE_MAX,
        concurrency: v.ENRICH_CONCURRENCY,
        budgetMs: v.ENRICH_BUDGET_MS,
        baseDelayMs: v.THREATSTACK_RETRY_BASE_MS,
        maxDelayMs: v.ENRICH_RETRY_MAX_DELAY_MS,
        drainMs: v.ENRICH_DRAIN_MS
      }
    },
    search: { concurrency: v.SEARCH_CONCURRENCY },
    status: { timeoutMs: v.STATUS_TIMEOUT_MS, cacheMs: v.STATUS_CACHE_MS },
    integrity: {
      /** Retention put on every object written; absent: none from us (the bucket's default may apply). */
      ...(v.S3_OBJECT_LOCK_MODE !== undefined && v.S3_OBJECT_LOCK_DAYS !== undefined && { lock: { mode: v.S3_OBJECT_LOCK_MODE, days: v.S3_OBJECT_LOCK_DAYS } }),
      /** What signs the hourly digests; neither: chained but unsigned. */
      ...(v.DIGEST_SIGNING_KEY_FILE !== undefined && { signingKeyFile: v.DIGEST_SIGNING_KEY_FILE }),
      ...(v.DIGEST_KMS_KEY_ID !== undefined && { kmsKeyId: v.DIGEST_KMS_KEY_ID }),
      /** Seconds between runs; 0: off. */
      intervalS: v.SWEEP_INTERVAL_S,
      lookbackHours: v.SWEEP_LOOKBACK_HOURS,
      /** Minutes after its end before an hour is closed and backfilled from Threat Stack's list. */
      backfillDelayMin: v.BACKFILL_DELAY_MIN,
      leaseS: v.SWEEP_LEASE_S
    },
    load: {
      maxEventLoopDelayMs: v.LOAD_MAX_EVENT_LOOP_DELAY_MS,
      maxEventLoopUtilization: v.LOAD_MAX_EVENT_LOOP_UTILIZATION,
      maxHeapUsedBytes: v.LOAD_MAX_HEAP_USED_BYTES,
      maxRssBytes: v.LOAD_MAX_RSS_BYTES,
      maxInFlightWebhooks: v.LOAD_MAX_IN_FLIGHT_WEBHOOKS,
      retryAfterSeconds: v.LOAD_RETRY_AFTER_SECONDS
    }
  }
}

export type Config = ReturnType<typeof shape>

/**
 * Reads the environment into a Config.
 * @throws ConfigError naming every variable that is missing or malformed, one line each.
 */
export function loadConfig (source: Record<string, string | undefined>): Config {
  return shape(readValues(source))
}

/** The README's table of variables, made from the rows above. */
export function envTable (): string {
  const lines = ['| variable | meaning | default | secret |', '|---|---|---|---|']
  for (const [name, variable] of Object.entries(VARIABLES) as Array<[EnvName, Variable]>) {
    const def = variable.shown ?? (variable.required === true
      ? '**required**'
      : variable.schema.default !== undefined ? `\`${String(variable.schema.default)}\`` : 'unset')
    lines.push(`| \`${name}\` | ${String(variable.schema.description)} | ${def} | ${variable.secret === true ? 'yes' : ''} |`)
  }
  return lines.join('\n')
}
