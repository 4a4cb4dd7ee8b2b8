import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3'
import { LOCAL_S3_CREDENTIALS } from '../../dev/local-s3.js'
import { startUpstreams, SECRETS } from '../helpers/build.js'
import { assertNoLeak } from '../helpers/leaks.js'

const HOUR = Date.UTC(2026, 10, 30, 10)
const RANGE = ['--start', '2026-11-30T10:00:00Z', '--end', '2026-11-30T12:00:00Z']

t.test('npm run backfill: dry run, import, resume, force, legacy refusal, progress on a terminal', async (t) => {
  const upstreams = await startUpstreams(t)
  const legacy = await startUpstreams(t, { hawk: false })
  const { threatstack, env } = upstreams
  const raised = threatstack.raiseAlerts({ count: 30, fromMs: HOUR, untilMs: HOUR + 2 * 3_600_000, seed: 31 })
  const reader = new S3Client({ region: 'us-east-1', endpoint: upstreams.s3.endpoint, forcePathStyle: true, credentials: LOCAL_S3_CREDENTIALS })
  t.teardown(() => reader.destroy())
  const keys = async (): Promise<string[]> => ((await reader.send(new ListObjectsV2Command({ Bucket: SECRETS.bucket }))).Contents ?? []).map((o) => o.Key as string).sort()

  const run = async (args: string[], runEnv: Record<string, string> = env, tty = false): Promise<{ code: number | null, out: string, err: string }> => {
    const command = [process.execPath, '--import', 'tsx', 'cli/backfill.ts', ...args]
    const [file, argv] = tty ? ['script', ['-qec', command.join(' '), '/dev/null']] : [command[0] as string, command.slice(1)]
    const child = spawn(file, argv, {
      cwd: fileURLToPath(new URL('../..', import.meta.url)),
      env: { PATH: process.env.PATH ?? '', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', ...runEnv },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    let out = ''
    let err = ''
    child.stdout.on('data', (c: Buffer) => { out += c.toString() })
    child.stderr.on('data', (c: Buffer) => { err += c.toString() })
    const [code] = await once(child, 'exit')
    return { code: code as number | null, out, err }
  }
  const listCalls = (): number => threatstack.requests.filter((r) => r.path.startsWith('/v2/alerts?')).length

  const refused = await run(RANGE, legacy.env)
  t.equal(refused.code, 2)
  t.equal(refused.err, 'backfill needs the Threat Stack API v2: set THREATSTACK_USER_ID and THREATSTACK_ORGANIZATION_ID (the legacy API key cannot list alerts)\n', 'one clear line')
  t.equal(legacy.threatstack.requests.length, 0, 'nothing asked of Threat Stack')
  t.equal((await run(['--start', '2026-11-30'])).code, 2, 'missing --end')

  const dry = await run([...RANGE, '--dry-run'])
  t.equal(dry.code, 1, 'something would be archived')
  t.match(dry.out, /^hours: 2 \(checked 2, skipped as complete 0, busy 0, failed 0\)\nalerts at Threat Stack: 30\nwould archive: 30\n/)
  for (const a of raised) t.match(dry.out, new RegExp(`  2026-11-30T1[01]:00:00\\.000Z  ${a.id as string}`))
  t.same(await keys(), [], 'a dry run writes nothing')
  assertNoLeak(t, dry.out + dry.err)

  const first = await run(RANGE)
  t.equal(first.code, 0, first.err)
  t.match(first.out, /alerts at Threat Stack: 30\narchived now: 30\nstill missing: 0\npending enrichment: 0\n/)
  t.match(first.err, /^2026-11-30T10:00:00\.000Z: \d+ at Threat Stack, \d+ archived, 0 missing, 0 pending$/m, 'a plain line per hour off a terminal')
  t.notMatch(first.err, /\r/)
  const stored = await keys()
  t.equal(stored.filter((k) => k.startsWith('webhooks/')).length, 30)
  t.equal(stored.filter((k) => k.startsWith('alerts/')).length, 30)
  t.same(stored.filter((k) => k.startsWith('ledger/2')), ['ledger/2026/11/30/10.json', 'ledger/2026/11/30/11.json'])

  const before = listCalls()
  const resumed = await run(RANGE)
  t.equal(resumed.code, 0)
  t.match(resumed.out, /^hours: 2 \(checked 0, skipped as complete 2, busy 0, failed 0\)/)
  t.equal(listCalls(), before, 'complete hours are not listed again')

  const forced = await run([...RANGE, '--force'], env, true)
  t.equal(forced.code, 0)
  t.ok(listCalls() > before, 'with --force they are')
  t.match(forced.out, /\r\[#{24}\] 2\/2 hours, 30 seen, 0 archived, [\d.]+ alerts\/s/, 'on a terminal, a progress bar rewritten in place')
  t.match(forced.out, /archived now: 0/)
})

t.test('npm run backfill: an hour older than the digest job\'s lookback that got alerts is marked for its next run', async (t) => {
  const { threatstack, env, s3 } = await startUpstreams(t)
  const old = Math.floor(Date.now() / 3_600_000) * 3_600_000 - 72 * 3_600_000
  const quiet = old + 3_600_000
  threatstack.raiseAlerts({ count: 3, fromMs: old, untilMs: old + 3_600_000, seed: 32 })
  const reader = new S3Client({ region: 'us-east-1', endpoint: s3.endpoint, forcePathStyle: true, credentials: LOCAL_S3_CREDENTIALS })
  t.teardown(() => reader.destroy())
  const child = spawn(process.execPath, ['--import', 'tsx', 'cli/backfill.ts', '--start', new Date(old).toISOString(), '--end', new Date(quiet + 3_600_000).toISOString()], {
    cwd: fileURLToPath(new URL('../..', import.meta.url)),
    env: { PATH: process.env.PATH ?? '', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', ...env, SWEEP_LOOKBACK_HOURS: '48' },
    stdio: ['ignore', 'ignore', 'pipe']
  })
  let err = ''
  child.stderr.on('data', (c: Buffer) => { err += c.toString() })
  const [code] = await once(child, 'exit')
  t.equal(code, 0, err)
  const marks = ((await reader.send(new ListObjectsV2Command({ Bucket: SECRETS.bucket, Prefix: 'ledger/digest-pending/' }))).Contents ?? []).map((o) => o.Key)
  t.same(marks, [`ledger/digest-pending/${new Date(old).toISOString().slice(0, 13).replace(/-/g, '/').replace('T', '/')}`], 'the hour that got alerts, not the quiet one')
})
