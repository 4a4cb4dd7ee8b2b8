// The chaos proof, on real processes: two replicas (server.ts) behind a balancer, on moto (which
// enforces write-once) through the S3 fault proxy, the Threat Stack simulator, and a sender that
// behaves as Threat Stack's does (exactly 200, three resends, then drop). While alerts are sent,
// in turn: Threat Stack's API is down, S3 is down longer than the three resends, one replica is
// SIGKILLed, and the service is stopped. After recovery and a few sweeps every alert raised is
// archived with both objects, every hour's ledger says 0 missing, nothing was written twice,
// and the sender saw no answer other than 200 except while S3 was down.
import t from 'tap'
import { GetObjectCommand, ListObjectVersionsCommand, PutBucketVersioningCommand, type S3Client } from '@aws-sdk/client-s3'
import { startS3FaultProxy } from '../dev/s3-fault-proxy.js'
import { raisedAtMs, startThreatStackSimulator } from '../dev/threatstack-simulator.js'
import { startThreatStackSender, type SenderAttempt, type ThreatStackSender } from '../dev/threatstack-sender.js'
import { alertKey, webhookKey } from '../services/keys.js'
import { HOUR_MS, hourStart, ledgerKey, type Ledger } from '../services/ledger.js'
import { startBalancer } from './helpers/balancer.js'
import { SECRETS, TOKENS } from './helpers/build.js'
import { MOTO_CREDENTIALS, startMoto, withMoto } from './helpers/moto.js'
import { freePort, startServer, type ServerProcess } from './helpers/process.js'

// Six server processes over the run, each compiling the service with tsx, on a shared machine.
t.setTimeout(300_000)

const BUCKET = 'chaos-archive'
const PER_PHASE = 10
const PHASES = ['normal', 'threatstack-down', 's3-down', 'replica-killed', 'service-stopped', 'recovered'] as const
type Phase = typeof PHASES[number]

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

async function read (s3: S3Client, key: string): Promise<string | undefined> {
  try {
    return await (await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }))).Body?.transformToString()
  } catch {
    return undefined
  }
}

async function versions (s3: S3Client, prefix: string): Promise<Map<string, number>> {
  const counts = new Map<string, number>()
  let keyMarker: string | undefined
  for (let page = 0; page < 100; page++) {
    const res = await s3.send(new ListObjectVersionsCommand({ Bucket: BUCKET, Prefix: prefix, ...(keyMarker !== undefined && { KeyMarker: keyMarker }) }))
    for (const v of res.Versions ?? []) counts.set(v.Key as string, (counts.get(v.Key as string) ?? 0) + 1)
    if (res.IsTruncated !== true) break
    keyMarker = res.NextKeyMarker
  }
  return counts
}

await withMoto(t, 'chaos: every alert raised is archived once, with both objects, and every ledger says 0 missing', async (t, executable) => {
  const moto = await startMoto(t, executable, [{ name: BUCKET }])
  // Every overwrite would leave a second version: the proof that nothing was written twice.
  await moto.client.send(new PutBucketVersioningCommand({ Bucket: BUCKET, VersioningConfiguration: { Status: 'Enabled' } }))
  const proxy = await startS3FaultProxy(moto.endpoint)
  t.teardown(async () => proxy.close())
  const threatstack = await startThreatStackSimulator({ apiKey: SECRETS.apiKey, userId: SECRETS.userId, organizationId: SECRETS.organizationId })
  t.teardown(async () => threatstack.close())

  const env: Record<string, string> = {
    HOST: '127.0.0.1',
    TS_AWS_S3_BUCKET: BUCKET,
    AWS_ENDPOINT_URL_S3: proxy.endpoint,
    AWS_ACCESS_KEY_ID: MOTO_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: MOTO_CREDENTIALS.secretAccessKey,
    THREATSTACK_BASE_URL: threatstack.url,
    THREATSTACK_API_KEY: SECRETS.apiKey,
    THREATSTACK_USER_ID: SECRETS.userId,
    THREATSTACK_ORGANIZATION_ID: SECRETS.organizationId,
    INGEST_TOKENS: TOKENS.ingest,
    READ_TOKENS: TOKENS.read,
    LOG_LEVEL: 'warn',
    THREATSTACK_TIMEOUT_MS: '1000',
    THREATSTACK_RETRIES: '0',
    THREATSTACK_BUDGET_MS: '2000',
    S3_TIMEOUT_MS: '2000',
    S3_BUDGET_MS: '3000',
    S3_MAX_ATTEMPTS: '1',
    LOAD_MAX_EVENT_LOOP_DELAY_MS: '0',
    LOAD_MAX_EVENT_LOOP_UTILIZATION: '0',
    SHUTDOWN_GRACE_MS: '5000',
    SWEEP_INTERVAL_S: '1',
    SWEEP_LOOKBACK_HOURS: '4',
    BACKFILL_DELAY_MIN: '0',
    // A SIGKILLed replica's claims expire quickly, so the survivor takes its hours over.
    SWEEP_LEASE_S: '5'
  }
  // The alerts are dated in the two hours before this one: closed, so the backfill applies.
  // Threat Stack has them before any webhook leaves (its list is the source of truth).
  const first = hourStart(Date.now()) - 2 * HOUR_MS
  const raised = threatstack.raiseAlerts({ count: PER_PHASE * PHASES.length, fromMs: first, untilMs: first + 2 * HOUR_MS, seed: 14, dismissedShare: 0.25 })
  const ports = [await freePort(), await freePort()]
  const processes: ServerProcess[] = []
  const start = async (i: number): Promise<ServerProcess> => {
    const server = await startServer({ ...env, PORT: String(ports[i]) })
    processes.push(server)
    t.teardown(() => { if (server.child.exitCode === null) server.child.kill('SIGKILL') })
    t.equal(server.child.exitCode, null, `replica ${i} listens`)
    return server
  }
  let replicas = [await start(0), await start(1)]

  const webhookOf = (a: Record<string, unknown>): Record<string, unknown> =>
    ({ id: a.id, created_at: String(raisedAtMs(a)), severity: String(a.severity ?? 1), title: a.title })
  // Shuffled across phases so that every hour sees every fault.
  const byPhase = new Map<Phase, Array<Record<string, unknown>>>(PHASES.map((p, i) => [p, raised.filter((_, j) => j % PHASES.length === i)]))

  const attempts: Array<SenderAttempt & { phase: Phase }> = []
  const delivered = new Set<string>()
  const dropped = new Set<string>()
  /** One phase: its alerts raised to a sender, sent, and resent three times. */
  const phase = async (name: Phase, url: string): Promise<void> => {
    const sender: ThreatStackSender = startThreatStackSender({ url: `${url}/api/v1/s3/alert?token=${TOKENS.ingest}`, intervalMs: 0, timeoutMs: 8000 })
    for (const a of byPhase.get(name) ?? []) sender.raise(webhookOf(a))
    for (let i = 0; i < 4 && (i === 0 || sender.outstanding > 0); i++) await sender.tick()
    await sender.close()
    attempts.push(...sender.attempts.map((a) => ({ ...a, phase: name })))
    for (const id of sender.delivered) delivered.add(id)
    for (const d of sender.dropped) for (const id of d.ids) dropped.add(id)
  }

  let balancer = await startBalancer(replicas.map((r) => r.url))
  t.teardown(async () => balancer.close())
  await phase('normal', balancer.url)

  await threatstack.failWith('refused')
  await phase('threatstack-down', balancer.url)
  await threatstack.heal()

  await proxy.failWith('refuse')
  await phase('s3-down', balancer.url)
  await proxy.heal()

  replicas[1]?.child.kill('SIGKILL')
  await replicas[1]?.exited
  await phase('replica-killed', balancer.url)

  replicas[0]?.child.kill('SIGTERM')
  t.equal(await replicas[0]?.exited, 0, 'the survivor stops cleanly on SIGTERM')
  // Nothing listens: the sender's POSTs find no service (no answer at all).
  await phase('service-stopped', replicas[0]?.url ?? '')

  replicas = [await start(0), await start(1)]
  await balancer.close()
  balancer = await startBalancer(replicas.map((r) => r.url))
  await phase('recovered', balancer.url)

  // A few sweeps: until both hours' ledgers count every alert and miss none (at most 90 s).
  const hours = [first, first + HOUR_MS]
  const expected = hours.map((h) => raised.filter((a) => hourStart(raisedAtMs(a)) === h).length)
  let ledgers: Array<Ledger | undefined> = []
  for (let i = 0; i < 180; i++) {
    ledgers = await Promise.all(hours.map(async (h) => {
      const body = await read(moto.client, ledgerKey('', h))
      return body === undefined ? undefined : JSON.parse(body) as Ledger
    }))
    if (ledgers.every((l, j) => l !== undefined && l.threatstack.total === expected[j] && l.missing.length === 0 && l.pending.length === 0)) break
    await sleep(500)
  }
  for (const [j, l] of ledgers.entries()) {
    t.match(l, { threatstack: { total: expected[j] }, archived: { total: expected[j] }, missing: [], pending: [], complete: true }, `hour ${j}: 0 missing`, { missing: l?.missing, pending: l?.pending, checks: l?.checks, checkedAt: l?.checkedAt, logs: processes.map((p) => p.stdout().split('\n').filter((line) => /warn|error|"level":[45]0/.test(line)).slice(-8)) })
  }

  for (const a of raised) {
    const id = a.id as string
    t.ok(await read(moto.client, webhookKey('', id, raisedAtMs(a))) !== undefined && await read(moto.client, alertKey('', id)) !== undefined, `${id}: both objects`)
  }
  const written = new Map([...await versions(moto.client, 'webhooks/'), ...await versions(moto.client, 'alerts/')])
  t.equal(written.size, raised.length * 2, 'one record and one full alert per alert, nothing else')
  t.same([...written].filter(([, n]) => n !== 1), [], 'no object written twice')

  const answered = attempts.filter((a) => a.status !== undefined)
  // The records are stored while Threat Stack is down, so the answer is 200 there too (full alerts pending).
  const badOutside = answered.filter((a) => a.status !== 200 && a.phase !== 's3-down')
  t.same(badOutside, [], 'no answer other than 200 except while S3 was down')
  t.ok(answered.some((a) => a.phase === 'threatstack-down'), 'the sender posted while Threat Stack was down')
  t.ok(answered.some((a) => a.phase === 's3-down' && a.status !== 200), 'S3 down: the sender was told')
  t.ok(attempts.some((a) => a.phase === 'service-stopped' && a.status === undefined), 'service stopped: no answer at all')

  const figures = {
    raised: raised.length,
    deliveredByWebhook: delivered.size,
    droppedBySender: dropped.size,
    backfilled: ledgers.reduce((n, l) => n + (l?.archived.viaBackfill ?? 0), 0),
    posts: attempts.length,
    non200: answered.filter((a) => a.status !== 200).length,
    noAnswer: attempts.filter((a) => a.status === undefined).length
  }
  t.comment(`chaos figures: ${JSON.stringify(figures)}`)
  t.ok(figures.droppedBySender > 0, 'the sender did drop alerts, so the backfill had work')
})
