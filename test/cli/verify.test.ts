// The verify command on moto: every attack of someone with bucket access (changed byte, deleted
// alert, forged object, deleted, edited, swapped or re-signed digest) is named, exit code 1.
import t from 'tap'
const tap = t
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { CopyObjectCommand, DeleteObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3'
import { webhookKey } from '../../services/keys.js'
import { HOUR_MS, buildDigest, digestKey, runDigestJob, type DigestDocument } from '../../services/digest.js'
import { ed25519Signer } from '../../services/signer.js'
import type { VerifyReport } from '../../services/verify.js'
import { MOTO_CREDENTIALS, withMoto } from '../helpers/moto.js'
import { archivePair, keyPair, motoBuckets, readText, type DigestBucket } from '../helpers/digests.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
let BUCKET = 'verify-archive-0'
// "Now" for the job: 2017-01-16T02:30Z, so the closed hours are up to 01:00.
const NOW = Date.UTC(2017, 0, 16, 2, 30)
const HOUR0 = Date.UTC(2017, 0, 15, 14)

// One moto for the whole file; each test gets a bucket of its own.
const bucketFor = motoBuckets(tap, 'verify-archive')
async function setup (t: any, executable: string): Promise<DigestBucket> {
  const made = await bucketFor(t, executable)
  BUCKET = made.bucket
  return made
}
const archive = archivePair
async function read (raw: S3Client, key: string): Promise<string> {
  return await readText(raw, BUCKET, key)
}

function hourOf (report: VerifyReport, hourMs: number): VerifyReport['hours'][number] {
  const name = `${new Date(hourMs).toISOString().slice(0, 13)}:00:00Z`
  const hour = report.hours.find((h) => h.hour === name)
  if (hour === undefined) throw new Error(`no report for ${name}`)
  return hour
}

await withMoto(t, 'verify names every attack of someone with bucket access, and exits non-zero', async (t, executable) => {
  const { store, raw, endpoint } = await setup(t, executable)
  const keys = makeKeys()
  const signer = ed25519Signer(keys.privatePem)
  const hour = (i: number): number => HOUR0 + i * HOUR_MS
  const archived: Array<{ record: string, full: string }> = []
  for (let i = 0; i < 10; i++) archived.push(await archive(store, `cccc000${i}`, hour(i) + 20 * 60_000))
  await runDigestJob({ store, signer, owner: 'r1', lookbackHours: 12 }, NOW)

  const dir = await mkdtemp(join(tmpdir(), 'ts2s3-verify-'))
  t.teardown(async () => rm(dir, { recursive: true, force: true }))
  const publicKeyFile = join(dir, 'public.pem')
  await writeFile(publicKeyFile, keys.publicPem)
  const env = {
    PATH: process.env.PATH ?? '',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    TS_AWS_S3_BUCKET: BUCKET,
    AWS_ENDPOINT_URL_S3: endpoint,
    AWS_ACCESS_KEY_ID: MOTO_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: MOTO_CREDENTIALS.secretAccessKey
  }
  const verify = async (...extra: string[]): Promise<{ code: number | null, stdout: string, stderr: string }> => {
    const command = [process.execPath, '--import', 'tsx', 'cli/verify.ts', '--start', '2017-01-15T14:00:00Z', '--end', '2017-01-16T00:00:00Z', '--public-key', publicKeyFile]
    // --tty: `script` runs the command on a pseudo-terminal (its stderr then comes as stdout).
    const tty = extra.includes('--tty')
    const args = [...command.slice(1), ...extra.filter((a) => a !== '--tty')]
    const child = tty
      ? spawn('script', ['-qec', [command[0], ...args].join(' '), '/dev/null'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (c: Buffer) => { stdout += c.toString() })
    child.stderr.on('data', (c: Buffer) => { stderr += c.toString() })
    const [code] = await once(child, 'exit') as [number | null]
    return { code, stdout, stderr }
  }

  const clean = await verify()
  t.equal(clean.code, 0, clean.stdout + clean.stderr)
  t.match(clean.stdout, /^2017-01-15T14:00:00Z {2}ok \(2 objects, 1 digests\)$/m)
  t.match(clean.stdout, /^OK: 10 hours, 0 failed, 20 objects and 10 digests checked, 0 problems$/m)
  const terminal = await verify('--tty')
  t.equal(terminal.code, 0)
  t.match(terminal.stdout, /\rverified 1\/10 hours, 2 objects, 0 problems/, 'on a terminal, a progress line rewritten in place')
  t.match(terminal.stdout, /\rverified 10\/10 hours, 20 objects, 0 problems\r?\n/, 'ending with the final count')

  // 0: one byte of a record changed (written back without a checksum, as a plain PUT would).
  const record = await read(raw, archived[0]!.record)
  await raw.send(new PutObjectCommand({ Bucket: BUCKET, Key: archived[0]!.record, Body: record.replace('alert cccc0000', 'alert cccc000X') }))
  // 1: a full alert deleted.
  await raw.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: archived[1]!.full }))
  // 2: a forged webhook record added.
  const forged = webhookKey('', 'forged0001', hour(2) + 30 * 60_000)
  await raw.send(new PutObjectCommand({ Bucket: BUCKET, Key: forged, Body: '{"id":"forged0001","created_at":"1"}' }))
  // 3: a digest deleted (hour 4 chains to it).
  await raw.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: digestKey('', hour(3), 0) }))
  // 5: a digest edited: an object's hash replaced, the signature kept.
  const edited = JSON.parse(await read(raw, digestKey('', hour(5), 0))) as DigestDocument
  edited.objects[0]!.sha256 = '0'.repeat(64)
  await raw.send(new PutObjectCommand({ Bucket: BUCKET, Key: digestKey('', hour(5), 0), Body: JSON.stringify(edited) }))
  // 6 and 7: two digests swapped.
  const six = await read(raw, digestKey('', hour(6), 0))
  const seven = await read(raw, digestKey('', hour(7), 0))
  await raw.send(new PutObjectCommand({ Bucket: BUCKET, Key: digestKey('', hour(6), 0), Body: seven }))
  await raw.send(new PutObjectCommand({ Bucket: BUCKET, Key: digestKey('', hour(7), 0), Body: six }))
  // 9: the digest rewritten (with a changed record) and signed with another key.
  await raw.send(new PutObjectCommand({ Bucket: BUCKET, Key: archived[9]!.record, Body: '{"id":"cccc0009","created_at":"1","title":"rewritten"}' }))
  const nine = JSON.parse(await read(raw, digestKey('', hour(9), 0))) as DigestDocument
  const { bytes } = await buildDigest({
    hour: nine.hour,
    sequence: 0,
    previous: nine.previous,
    objects: nine.objects.map((o) => o.key === archived[9]!.record ? { ...o, sha256: 'f'.repeat(64) } : o)
  }, ed25519Signer(makeKeys().privatePem))
  await raw.send(new PutObjectCommand({ Bucket: BUCKET, Key: digestKey('', hour(9), 0), Body: bytes }))
  // Untouched: hour 8. A copy to itself must not count as a change.
  await raw.send(new CopyObjectCommand({ Bucket: BUCKET, Key: archived[8]!.full, CopySource: `${BUCKET}/${archived[8]!.full}`, MetadataDirective: 'REPLACE', ContentType: 'application/json' }))

  const attacked = await verify('--json')
  t.equal(attacked.code, 1, 'exit code 1')
  const report = JSON.parse(attacked.stdout) as VerifyReport
  t.equal(report.ok, false)
  const kinds = (i: number): string[] => hourOf(report, hour(i)).problems.map((p) => `${p.kind} ${p.key}`)
  t.match(kinds(0), [`modified ${archived[0]!.record}`], 'one byte changed: modified')
  t.same(kinds(1), [`deleted ${archived[1]!.full}`], 'full alert deleted: deleted')
  t.same(kinds(2), [`added ${forged}`], 'forged object: added')
  t.same(kinds(3).sort(), ['added ' + archived[3]!.full, 'added ' + archived[3]!.record, 'digest missing '].sort(), 'deleted digest: its objects are covered by none')
  t.same(kinds(4), [`chain broken ${digestKey('', hour(4), 0)}`], 'the next digest\'s chain is broken')
  t.ok(kinds(5).includes(`signature bad ${digestKey('', hour(5), 0)}`), 'edited digest: signature bad')
  t.ok(kinds(6).includes(`chain broken ${digestKey('', hour(6), 0)}`) && kinds(6).includes(`digest invalid ${digestKey('', hour(6), 0)}`), 'swapped digest: misplaced')
  t.ok(kinds(7).includes(`digest invalid ${digestKey('', hour(7), 0)}`), 'swapped digest: misplaced')
  t.same(kinds(8), [`chain broken ${digestKey('', hour(8), 0)}`], 'the digest after the swapped ones sees its previous changed; its objects are fine')
  const nineProblems = hourOf(report, hour(9)).problems
  t.ok(nineProblems.some((p) => p.kind === 'signature bad' && /another key/.test(p.detail)), 'signed with another key: signature bad')
  t.ok(nineProblems.some((p) => p.kind === 'modified' && p.key === archived[9]!.record), 'and the record it was made to cover is still found changed')

  const text = await verify()
  t.equal(text.code, 1)
  t.match(text.stdout, /^2017-01-15T14:00:00Z {2}FAILED \(1 problems\)\n {4}modified: webhooks\/2017\/01\/15\/14\/20\/cccc0000: SHA-256 /m)
  t.match(text.stdout, /^FAILED: 10 hours, 10 failed, /m)
  t.notMatch(text.stderr, /\r/, 'no progress line when stderr is not a terminal')
})

await withMoto(t, 'verify: bad arguments exit 2 with the usage', async (t, executable) => {
  await setup(t, executable)
  const child = spawn(process.execPath, ['--import', 'tsx', 'cli/verify.ts', '--start', '2017-01-15'], { cwd: ROOT, env: { PATH: process.env.PATH ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (c: Buffer) => { stderr += c.toString() })
  const [code] = await once(child, 'exit') as [number | null]
  t.equal(code, 2)
  t.match(stderr, /--start and --end are required[\s\S]*Usage: threatstack-to-s3-verify/)
})

function makeKeys (): ReturnType<typeof keyPair> {
  return keyPair()
}
