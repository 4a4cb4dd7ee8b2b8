import t from 'tap'
import type { Test } from 'tap'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { ConfigError, envTable, loadConfig, THREATSTACK_V1_URL, THREATSTACK_V2_URL, VARIABLES } from '../config.js'

const base = {
  TS_AWS_S3_BUCKET: 'archive-bucket',
  THREATSTACK_API_KEY: 'api-key-SECRET-value',
  INGEST_TOKENS: 'ingest-token-0123456789',
  READ_TOKENS: 'read-token-0123456789a'
}

function rejects (t: Test, env: Record<string, string | undefined>, variable: string, secret?: string): void {
  try {
    loadConfig(env)
    t.fail(`expected ${variable} to be rejected`)
  } catch (err) {
    t.type(err, ConfigError)
    t.equal((err as ConfigError).variable, variable, `names ${variable}`)
    t.match((err as Error).message, new RegExp(`^Invalid configuration: ${variable} `))
    t.notMatch((err as Error).message, /\n/, 'one line')
    if (secret !== undefined) t.notMatch((err as Error).message, secret, 'never prints the value')
  }
}

t.test('defaults for a minimal environment', async (t) => {
  const config = loadConfig(base)
  t.equal(config.server.port, 3000)
  t.equal(config.server.host, '0.0.0.0')
  t.equal(config.s3.region, 'us-east-1')
  t.equal(config.s3.prefix, '')
  t.equal(config.s3.endpoint, undefined)
  t.equal(config.s3.credentials, undefined, 'the SDK credential chain decides')
  t.equal(config.auth.mode, 'tokens')
  t.same(config.auth.ingestTokens, [base.INGEST_TOKENS])
  t.same(config.threatstack.auth, { kind: 'legacy' })
  t.equal(config.threatstack.baseUrl, THREATSTACK_V1_URL, 'legacy key: API v1')
  t.equal(config.logLevel, 'info')
  t.equal(config.sns.enabled, true)
  t.equal(config.sns.topicArns, undefined)
  t.equal(config.server.trustProxy, false)
  t.ok(config.server.keepAliveTimeoutMs > 60_000, 'keep-alive outlives a 60 s balancer idle timeout')
})

t.test('Hawk when both user and organization ids are set, with the v2 base URL', async (t) => {
  const config = loadConfig({ ...base, THREATSTACK_USER_ID: 'user-1', THREATSTACK_ORGANIZATION_ID: 'org-1' })
  t.same(config.threatstack.auth, { kind: 'hawk', userId: 'user-1', organizationId: 'org-1' })
  t.equal(config.threatstack.baseUrl, THREATSTACK_V2_URL)
  const custom = loadConfig({ ...base, THREATSTACK_BASE_URL: 'http://ts.internal:8080/v2/' })
  t.equal(custom.threatstack.baseUrl, 'http://ts.internal:8080/v2', 'trailing slash dropped')
})

t.test('one Hawk id without the other is an error naming the missing one', async (t) => {
  rejects(t, { ...base, THREATSTACK_USER_ID: 'user-1' }, 'THREATSTACK_ORGANIZATION_ID')
  rejects(t, { ...base, THREATSTACK_ORGANIZATION_ID: 'org-1' }, 'THREATSTACK_USER_ID')
})

t.test('required variables', async (t) => {
  rejects(t, { ...base, TS_AWS_S3_BUCKET: undefined }, 'TS_AWS_S3_BUCKET')
  rejects(t, { ...base, TS_AWS_S3_BUCKET: '   ' }, 'TS_AWS_S3_BUCKET')
  rejects(t, { ...base, THREATSTACK_API_KEY: undefined }, 'THREATSTACK_API_KEY')
  rejects(t, { ...base, INGEST_TOKENS: undefined }, 'INGEST_TOKENS')
  rejects(t, { ...base, READ_TOKENS: undefined }, 'READ_TOKENS')
})

t.test('AUTH_MODE=none needs no tokens', async (t) => {
  const config = loadConfig({ ...base, INGEST_TOKENS: undefined, READ_TOKENS: undefined, AUTH_MODE: 'none' })
  t.equal(config.auth.mode, 'none')
  rejects(t, { ...base, AUTH_MODE: 'open' }, 'AUTH_MODE')
})

t.test('malformed values name the variable and never print the value', async (t) => {
  rejects(t, { ...base, PORT: 'eighty' }, 'PORT')
  rejects(t, { ...base, PORT: '70000' }, 'PORT')
  rejects(t, { ...base, TS_AWS_S3_BUCKET: 'Bad_Bucket' }, 'TS_AWS_S3_BUCKET')
  rejects(t, { ...base, TS_AWS_S3_PREFIX: 'a/../b' }, 'TS_AWS_S3_PREFIX')
  rejects(t, { ...base, AWS_ENDPOINT_URL_S3: 'ftp://x' }, 'AWS_ENDPOINT_URL_S3')
  rejects(t, { ...base, THREATSTACK_API_KEY: 'has SECRET space' }, 'THREATSTACK_API_KEY', 'SECRET')
  rejects(t, { ...base, INGEST_TOKENS: 'short-SECRET' }, 'INGEST_TOKENS', 'short-SECRET')
  rejects(t, { ...base, READ_TOKENS: 'read-token-0123456789a,,x' }, 'READ_TOKENS', 'read-token')
  rejects(t, { ...base, LOG_LEVEL: 'verbose' }, 'LOG_LEVEL')
  rejects(t, { ...base, SNS_ENABLED: 'maybe' }, 'SNS_ENABLED')
  rejects(t, { ...base, SNS_TOPIC_ARNS: 'topic-1' }, 'SNS_TOPIC_ARNS')
  rejects(t, { ...base, ARCHIVE_CONCURRENCY: '0' }, 'ARCHIVE_CONCURRENCY')
  rejects(t, { ...base, THREATSTACK_TIMEOUT_MS: '-5' }, 'THREATSTACK_TIMEOUT_MS')
  rejects(t, { ...base, AWS_ACCESS_KEY_ID: 'AKIAEXAMPLE' }, 'AWS_SECRET_ACCESS_KEY')
  rejects(t, { ...base, AWS_SECRET_ACCESS_KEY: 'SECRET-key' }, 'AWS_ACCESS_KEY_ID', 'SECRET-key')
})

t.test('values are read and normalised', async (t) => {
  const config = loadConfig({
    ...base,
    PORT: '8080',
    HOST: '127.0.0.1',
    TS_AWS_S3_PREFIX: '/tenant-a/archive/',
    AWS_REGION: 'eu-west-1',
    AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:9000',
    AWS_ACCESS_KEY_ID: 'AKIAEXAMPLE',
    AWS_SECRET_ACCESS_KEY: 'secret',
    INGEST_TOKENS: 'ingest-token-0123456789 , ingest-token-9876543210',
    SNS_ENABLED: 'false',
    SNS_TOPIC_ARNS: 'arn:aws:sns:us-east-1:123456789012:alerts,arn:aws:sns:us-east-1:123456789012:other',
    SNS_CERTS_DIR: '/etc/sns-certs',
    TRUST_PROXY: '2',
    ARCHIVE_CONCURRENCY: '4'
  })
  t.equal(config.server.port, 8080)
  t.equal(config.server.host, '127.0.0.1')
  t.equal(config.s3.prefix, 'tenant-a/archive')
  t.equal(config.s3.region, 'eu-west-1')
  t.equal(config.s3.endpoint, 'http://127.0.0.1:9000')
  t.same(config.s3.credentials, { accessKeyId: 'AKIAEXAMPLE', secretAccessKey: 'secret' })
  t.same(config.auth.ingestTokens, ['ingest-token-0123456789', 'ingest-token-9876543210'])
  t.equal(config.sns.enabled, false)
  t.same(config.sns.topicArns, ['arn:aws:sns:us-east-1:123456789012:alerts', 'arn:aws:sns:us-east-1:123456789012:other'])
  t.equal(config.sns.certsDir, '/etc/sns-certs')
  t.equal(config.server.trustProxy, 2)
  t.same(loadConfig({ ...base, TRUST_PROXY: '10.0.0.0/8, 127.0.0.1' }).server.trustProxy, ['10.0.0.0/8', '127.0.0.1'])
  t.equal(loadConfig({ ...base, TRUST_PROXY: 'true' }).server.trustProxy, true)
  t.equal(config.archive.concurrency, 4)
})

t.test('INGEST_ALLOWED_CIDRS: networks and addresses, v4 and v6; anything else is named', async (t) => {
  t.equal(loadConfig(base).auth.ingestNetworks, undefined, 'unset: any address')
  t.same(loadConfig({ ...base, INGEST_ALLOWED_CIDRS: '192.0.2.0/24, 198.51.100.7,2001:db8::/32' }).auth.ingestNetworks,
    ['192.0.2.0/24', '198.51.100.7', '2001:db8::/32'])
  for (const bad of ['192.0.2.0/33', '2001:db8::/129', 'threatstack.com', '10.0.0.0/8/8', '192.0.2.0/', '192.0.2.0/24,,10.0.0.1', 'loopback']) {
    const err = (() => { try { loadConfig({ ...base, INGEST_ALLOWED_CIDRS: bad }) } catch (e) { return e } })()
    t.type(err, ConfigError, bad)
    t.equal((err as ConfigError).variable, 'INGEST_ALLOWED_CIDRS', bad)
  }
})

t.test("TS_DEBUG, the Python service's switch, sets the level to debug", async (t) => {
  t.equal(loadConfig({ ...base, TS_DEBUG: '1', LOG_LEVEL: 'warn' }).logLevel, 'debug')
  t.equal(loadConfig({ ...base, LOG_LEVEL: 'warn' }).logLevel, 'warn')
})

t.test('variables outside the schema are ignored, empty ones count as unset', async (t) => {
  const config = loadConfig({ ...base, UNRELATED: 'x', AWS_REGION: '' })
  t.equal(config.s3.region, 'us-east-1')
})

t.test('production knobs: retries, load shedding, S3 write options', async (t) => {
  const defaults = loadConfig(base)
  t.same(defaults.threatstack.retry, { retries: 2, baseDelayMs: 200, maxDelayMs: 2000, budgetMs: 20_000 })
  t.ok(defaults.threatstack.retry.budgetMs < 30_000, 'the budget answers a sender within its usual 30 s timeout')
  t.same(defaults.load, { maxEventLoopDelayMs: 1000, maxEventLoopUtilization: 0.98, maxHeapUsedBytes: 0, maxRssBytes: 0, maxInFlightWebhooks: 256, retryAfterSeconds: 2 })
  t.equal(defaults.s3.write, undefined, 'the bucket defaults apply')
  t.equal(defaults.s3.retryMode, 'standard')

  const tuned = loadConfig({
    ...base,
    THREATSTACK_RETRIES: '0',
    THREATSTACK_BUDGET_MS: '5000',
    LOAD_MAX_EVENT_LOOP_UTILIZATION: '0.9',
    LOAD_MAX_RSS_BYTES: '536870912',
    S3_RETRY_MODE: 'adaptive',
    S3_SSE: 'aws:kms',
    S3_SSE_KMS_KEY_ID: 'arn:aws:kms:us-east-1:123456789012:key/abcd-ef',
    S3_STORAGE_CLASS: 'GLACIER_IR',
    S3_OBJECT_TAGS: 'app=threatstack&team=sec'
  })
  t.equal(tuned.threatstack.retry.retries, 0)
  t.equal(tuned.threatstack.retry.budgetMs, 5000)
  t.equal(tuned.load.maxEventLoopUtilization, 0.9)
  t.equal(tuned.load.maxRssBytes, 536870912)
  t.equal(tuned.s3.retryMode, 'adaptive')
  t.same(tuned.s3.write, {
    ServerSideEncryption: 'aws:kms',
    SSEKMSKeyId: 'arn:aws:kms:us-east-1:123456789012:key/abcd-ef',
    StorageClass: 'GLACIER_IR',
    Tagging: 'app=threatstack&team=sec'
  })

  rejects(t, { ...base, S3_SSE_KMS_KEY_ID: 'alias/x' }, 'S3_SSE_KMS_KEY_ID')
  rejects(t, { ...base, S3_SSE: 'aes' }, 'S3_SSE')
  rejects(t, { ...base, S3_OBJECT_TAGS: 'no-value-pair' }, 'S3_OBJECT_TAGS')
  rejects(t, { ...base, LOAD_MAX_EVENT_LOOP_UTILIZATION: '1.5' }, 'LOAD_MAX_EVENT_LOOP_UTILIZATION')
  rejects(t, { ...base, THREATSTACK_RETRIES: '11' }, 'THREATSTACK_RETRIES')
  rejects(t, { ...base, S3_RETRY_MODE: 'legacy' }, 'S3_RETRY_MODE')
})

t.test('integrity: Object Lock needs mode and days together; one digest signer', async (t) => {
  const config = loadConfig({ ...base, S3_OBJECT_LOCK_MODE: 'COMPLIANCE', S3_OBJECT_LOCK_DAYS: '365' })
  t.same(config.integrity.lock, { mode: 'COMPLIANCE', days: 365 })
  t.equal(loadConfig(base).integrity.lock, undefined)
  t.equal(loadConfig(base).integrity.intervalS, 60)
  t.equal(loadConfig(base).integrity.lookbackHours, 48)
  rejects(t, { ...base, S3_OBJECT_LOCK_MODE: 'GOVERNANCE' }, 'S3_OBJECT_LOCK_DAYS')
  rejects(t, { ...base, S3_OBJECT_LOCK_DAYS: '3' }, 'S3_OBJECT_LOCK_MODE')
  rejects(t, { ...base, S3_OBJECT_LOCK_MODE: 'GOVERNANCE', S3_OBJECT_LOCK_DAYS: '0' }, 'S3_OBJECT_LOCK_DAYS')
  rejects(t, { ...base, S3_OBJECT_LOCK_MODE: 'governance', S3_OBJECT_LOCK_DAYS: '3' }, 'S3_OBJECT_LOCK_MODE')
  rejects(t, { ...base, DIGEST_SIGNING_KEY_FILE: '/k.pem', DIGEST_KMS_KEY_ID: 'alias/digests' }, 'DIGEST_KMS_KEY_ID')
  t.equal(loadConfig({ ...base, SWEEP_INTERVAL_S: '0' }).integrity.intervalS, 0)
})

t.test('every invalid variable is reported at once, one line each, no value printed', async (t) => {
  const env = {
    ...base,
    THREATSTACK_API_KEY: undefined,
    PORT: 'eighty',
    TRUST_PROXY: 'maybe',
    INGEST_TOKENS: 'short-SECRET',
    SNS_ENABLED: 'perhaps',
    THREATSTACK_USER_ID: 'user-1'
  }
  try {
    loadConfig(env)
    t.fail('expected a ConfigError')
  } catch (err) {
    t.type(err, ConfigError)
    const lines = (err as Error).message.split('\n')
    t.same(lines.map((line) => line.split(' ')[2]).sort(),
      ['INGEST_TOKENS', 'PORT', 'SNS_ENABLED', 'THREATSTACK_API_KEY', 'THREATSTACK_ORGANIZATION_ID', 'TRUST_PROXY'])
    for (const line of lines) t.match(line, /^Invalid configuration: [A-Z0-9_]+ (must|is|needs) /)
    t.notMatch((err as Error).message, 'SECRET')
    t.equal((err as ConfigError).problems.length, 6)
  }
})

t.test('TRUST_PROXY takes only what the proxy matcher can compile', async (t) => {
  for (const bad of ['maybe', '10.0.0.0/33', '10.0.0.1,proxy.internal', '::1/200', '-1', 'on']) rejects(t, { ...base, TRUST_PROXY: bad }, 'TRUST_PROXY')
  t.same(loadConfig({ ...base, TRUST_PROXY: 'loopback, 10.0.0.0/8, ::1, 192.168.0.0/255.255.0.0' }).server.trustProxy, ['loopback', '10.0.0.0/8', '::1', '192.168.0.0/255.255.0.0'])
  t.equal(loadConfig({ ...base, TRUST_PROXY: 'false' }).server.trustProxy, false)
  t.equal(loadConfig({ ...base, TRUST_PROXY: '0' }).server.trustProxy, 0, 'digits are a hop count')
})

t.test('a bad value of any secret variable is named, never printed', async (t) => {
  for (const [name, variable] of Object.entries(VARIABLES)) {
    if (!('secret' in variable) || variable.secret !== true) continue
    rejects(t, { ...base, [name]: 'bad SECRET-value' }, name, 'SECRET-value')
  }
})

t.test("the README's table of variables is the config table", async (t) => {
  const readme = await readFile(fileURLToPath(new URL('../README.md', import.meta.url)), 'utf8')
  const start = readme.indexOf('<!-- env-table:start -->')
  const end = readme.indexOf('<!-- env-table:end -->')
  t.ok(start !== -1 && end > start, 'the README marks its table')
  t.equal(readme.slice(start, end).replace('<!-- env-table:start -->', '').trim(), envTable(), 'regenerate it with `npm run --silent docs:env`')
  for (const name of Object.keys(VARIABLES)) t.match(readme, `\`${name}\``)
})

// Values other than the default for the rows whose type alone does not give one (strings, lists),
// with the variables each needs beside it.
const SAMPLES: Record<string, Record<string, string>> = {
  HOST: { HOST: '127.0.0.1' },
  TS_AWS_S3_BUCKET: { TS_AWS_S3_BUCKET: 'other-bucket' },
  TS_AWS_S3_PREFIX: { TS_AWS_S3_PREFIX: 'archive' },
  AWS_REGION: { AWS_REGION: 'eu-west-1' },
  AWS_ENDPOINT_URL_S3: { AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:9000' },
  AWS_ACCESS_KEY_ID: { AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE', AWS_SECRET_ACCESS_KEY: 'secret' },
  AWS_SECRET_ACCESS_KEY: { AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE', AWS_SECRET_ACCESS_KEY: 'secret' },
  AWS_SESSION_TOKEN: { AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE', AWS_SECRET_ACCESS_KEY: 'secret', AWS_SESSION_TOKEN: 'session' },
  THREATSTACK_API_KEY: { THREATSTACK_API_KEY: 'another-api-key' },
  THREATSTACK_USER_ID: { THREATSTACK_USER_ID: 'user', THREATSTACK_ORGANIZATION_ID: 'org' },
  THREATSTACK_ORGANIZATION_ID: { THREATSTACK_USER_ID: 'user', THREATSTACK_ORGANIZATION_ID: 'org' },
  THREATSTACK_BASE_URL: { THREATSTACK_BASE_URL: 'http://127.0.0.1:8080/v2' },
  INGEST_TOKENS: { INGEST_TOKENS: 'ingest-token-other-0001' },
  READ_TOKENS: { READ_TOKENS: 'read-token-other-00001' },
  TS_DEBUG: { TS_DEBUG: '1' },
  SNS_TOPIC_ARNS: { SNS_TOPIC_ARNS: 'arn:aws:sns:us-east-1:123456789012:alerts' },
  SNS_CERTS_DIR: { SNS_CERTS_DIR: '/etc/sns-certs' },
  INGEST_ALLOWED_CIDRS: { INGEST_ALLOWED_CIDRS: '192.0.2.0/24' },
  TRUST_PROXY: { TRUST_PROXY: '1' },
  S3_SSE_KMS_KEY_ID: { S3_SSE: 'aws:kms', S3_SSE_KMS_KEY_ID: 'alias/archive' },
  S3_STORAGE_CLASS: { S3_STORAGE_CLASS: 'STANDARD_IA' },
  S3_OBJECT_TAGS: { S3_OBJECT_TAGS: 'app=archive' },
  S3_OBJECT_LOCK_MODE: { S3_OBJECT_LOCK_MODE: 'GOVERNANCE', S3_OBJECT_LOCK_DAYS: '30' },
  S3_OBJECT_LOCK_DAYS: { S3_OBJECT_LOCK_MODE: 'GOVERNANCE', S3_OBJECT_LOCK_DAYS: '30' },
  DIGEST_SIGNING_KEY_FILE: { DIGEST_SIGNING_KEY_FILE: '/etc/digest.pem' },
  DIGEST_KMS_KEY_ID: { DIGEST_KMS_KEY_ID: 'alias/digests' }
}

/** A valid value other than the row's default, from its type: another number, the other boolean, another literal. */
function otherValue (schema: Record<string, unknown>): string | undefined {
  const def = schema.default
  if (schema.type === 'integer') {
    const max = typeof schema.maximum === 'number' ? schema.maximum : Number.MAX_SAFE_INTEGER
    const min = typeof schema.minimum === 'number' ? schema.minimum : 0
    return String(typeof def !== 'number' ? min : def + 1 <= max ? def + 1 : def - 1)
  }
  if (schema.type === 'number') return String(def === 0.5 ? 0.25 : 0.5)
  if (schema.type === 'boolean') return String(def !== true)
  const literals = (schema.anyOf as Array<{ const?: unknown }> | undefined)?.map((m) => m.const)
  if (literals?.every((l) => typeof l === 'string') === true) return (literals as string[]).find((l) => l !== def)
  return undefined
}

t.test('every row of the table is read into its section of Config: no variable is silently ignored', async (t) => {
  const before = loadConfig(base) as unknown as Record<string, unknown>
  for (const [name, variable] of Object.entries(VARIABLES)) {
    const other = otherValue(variable.schema as unknown as Record<string, unknown>)
    const env = SAMPLES[name] ?? (other === undefined ? undefined : { [name]: other })
    if (env === undefined) {
      t.fail(`${name}: give it a sample value in SAMPLES`)
      continue
    }
    const after = loadConfig({ ...base, ...env }) as unknown as Record<string, unknown>
    t.notSame(after[variable.section], before[variable.section], `${name} changes config.${variable.section}`)
  }
})
