// Hourly digests, as CloudTrail keeps for its own logs: for each closed UTC hour, the key, size and
// SHA-256 of every object archived for it, the key and SHA-256 of the previous digest written (a
// chain), and a signature over the canonical bytes. Objects that arrive for an hour already
// digested get a supplement digest (HH.1.json, HH.2.json, …) in the same chain.
import pLimit from 'p-limit'
import { ArchiveIntegrityError } from '../errors/index.js'
import { sha256Hex } from './checksum.js'
import { alertKey, HOUR_MS, hourPath, hourStart, parseWebhookKey, webhooksRoot, withPrefix } from './keys.js'
import { claimLease, deleteState, getState, leaseKey, putState, releaseLease, renewLease } from './leases.js'
import type { DigestSigner } from './signer.js'
import { getBytes, listKeys, putOnce, type Store } from './storage.js'

export const DIGEST_VERSION = 1
export { HOUR_MS, hourPath, hourStart }

/** `2017-01-15T23:00:00Z`: how a digest names its hour. */
export function hourName (hourMs: number): string {
  return `${new Date(hourMs).toISOString().slice(0, 13)}:00:00Z`
}

/** `[prefix/]digests/YYYY/MM/DD/HH.json` for the first digest of an hour, `HH.<n>.json` for its supplements. */
export function digestKey (prefix: string, hourMs: number, sequence: number): string {
  return withPrefix(prefix, `digests/${hourPath(hourMs)}${sequence === 0 ? '' : `.${sequence}`}.json`)
}

/** The listing of every digest of one hour (and nothing else: "HH." ends the hour). */
export function digestListing (prefix: string, hourMs: number): { Prefix: string } {
  return { Prefix: withPrefix(prefix, `digests/${hourPath(hourMs)}.`) }
}

const DIGEST_KEY = /^digests\/(\d{4})\/(\d{2})\/(\d{2})\/(\d{2})(?:\.([1-9][0-9]{0,5}))?\.json$/

export function parseDigestKey (prefix: string, key: string): { hourMs: number, sequence: number } | undefined {
  const root = withPrefix(prefix, '')
  if (!key.startsWith(root)) return undefined
  const m = DIGEST_KEY.exec(key.slice(root.length))
  if (m === null) return undefined
  const hourMs = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]))
  if (hourPath(hourMs) !== `${m[1]}/${m[2]}/${m[3]}/${m[4]}`) return undefined
  return { hourMs, sequence: m[5] === undefined ? 0 : Number(m[5]) }
}

/** Where the chain's last digest is named: derived state, rewritten after each digest. */
export function chainHeadKey (prefix: string): string {
  return withPrefix(prefix, 'ledger/digest-head.json')
}

/** The lease name of the digest job: one chain, so one writer at a time. */
export const DIGEST_LEASE = 'digests'

export function digestLeaseKey (prefix: string): string {
  return leaseKey(prefix, DIGEST_LEASE)
}

/** Marks an hour outside the job's lookback that got a new object: the next run digests it. */
export function lateHourKey (prefix: string, hourMs: number): string {
  return withPrefix(prefix, `ledger/digest-pending/${hourPath(hourMs)}`)
}

export interface DigestEntry { key: string, size: number, sha256: string }
export interface ChainLink { key: string, sha256: string }

export interface DigestDocument {
  version: number
  hour: string
  sequence: number
  /** Sorted by key. SHA-256 in hex. */
  objects: DigestEntry[]
  previous: ChainLink | null
  signer: { keyId: string, algorithm: string } | null
  /** Base64 signature over signedBytes(document); null when unsigned. */
  signature: string | null
}

/** JSON with object keys sorted at every level and no whitespace: the same document, the same bytes. */
export function canonicalJson (value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`
  }
  return JSON.stringify(value)
}

/** What the signature covers: the document without its signature, canonically. */
export function signedBytes (doc: DigestDocument): Buffer {
  const { signature: _signature, ...unsigned } = doc
  return Buffer.from(canonicalJson(unsigned), 'utf-8')
}

export async function buildDigest (fields: Omit<DigestDocument, 'signer' | 'signature' | 'version'>, signer: DigestSigner | undefined): Promise<{ doc: DigestDocument, bytes: Buffer }> {
  const objects = [...fields.objects].sort((a, b) => a.key < b.key ? -1 : a.key > b.key ? 1 : 0)
  const unsigned: DigestDocument = {
    version: DIGEST_VERSION,
    ...fields,
    objects,
    signer: signer === undefined ? null : { keyId: signer.keyId, algorithm: signer.algorithm },
    signature: null
  }
  const doc = signer === undefined ? unsigned : { ...unsigned, signature: (await signer.sign(signedBytes(unsigned))).toString('base64') }
  return { doc, bytes: Buffer.from(canonicalJson(doc), 'utf-8') }
}

/** A parsed digest, or undefined when the bytes are not one. */
export function parseDigest (bytes: Uint8Array): DigestDocument | undefined {
  let value: Partial<DigestDocument>
  try {
    value = JSON.parse(Buffer.from(bytes).toString('utf-8')) as Partial<DigestDocument>
  } catch {
    return undefined
  }
  if (typeof value !== 'object' || value === null || typeof value.hour !== 'string' || typeof value.sequence !== 'number' || !Array.isArray(value.objects)) return undefined
  const entriesOk = value.objects.every((o) => typeof o?.key === 'string' && typeof o.size === 'number' && typeof o.sha256 === 'string')
  return entriesOk ? value as DigestDocument : undefined
}

/**
 * The keys that may hold an object archived for an hour: every key under the hour's webhook
 * folders, and the full alert of each webhook record found there (which may not exist yet).
 * @throws S3ClientError
 */
export async function hourCandidates (store: Store, hourMs: number): Promise<{ records: string[], alerts: string[] }> {
  const records: string[] = []
  const alerts: string[] = []
  for await (const key of listKeys(store, { Prefix: `${webhooksRoot(store.prefix)}${hourPath(hourMs)}/` })) {
    records.push(key)
    const parsed = parseWebhookKey(store.prefix, key)
    if (parsed !== undefined) alerts.push(alertKey(store.prefix, parsed.id))
  }
  return { records, alerts: [...new Set(alerts)] }
}

export function entryOf (key: string, bytes: Uint8Array): DigestEntry {
  return { key, size: bytes.byteLength, sha256: sha256Hex(bytes) }
}

export interface DigestLog {
  info: (obj: object, msg: string) => void
  warn: (obj: object, msg: string) => void
  error: (obj: object, msg: string) => void
}

export interface DigestJobDeps {
  store: Store
  /** Absent: digests are chained but unsigned. */
  signer?: DigestSigner
  /** Names this replica in the lease. */
  owner: string
  /** Hours back from the last closed one that are re-checked for late objects. */
  lookbackHours: number
  /** How long after its end an hour counts as closed. */
  closeDelayMs?: number
  leaseMs?: number
  /** Objects read at once. */
  concurrency?: number
  log?: DigestLog
}

export interface DigestRunResult {
  /** Whether this replica held the lease (another one did the run otherwise). */
  claimed: boolean
  /** Keys of the digests written. */
  written: string[]
  hoursChecked: number
}

async function readHead (store: Store): Promise<ChainLink | null> {
  const head = await getState(store, chainHeadKey(store.prefix))
  if (head === undefined) return null
  try {
    const link = JSON.parse(head.body) as Partial<ChainLink>
    return typeof link.key === 'string' && typeof link.sha256 === 'string' ? { key: link.key, sha256: link.sha256 } : null
  } catch {
    return null
  }
}

async function lateHours (store: Store): Promise<Map<number, string>> {
  const root = withPrefix(store.prefix, 'ledger/digest-pending/')
  const hours = new Map<number, string>()
  for await (const key of listKeys(store, { Prefix: root })) {
    const m = /^(\d{4})\/(\d{2})\/(\d{2})\/(\d{2})$/.exec(key.slice(root.length))
    if (m !== null) hours.set(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4])), key)
  }
  return hours
}

/** Digests one hour if it has none, or writes a supplement for its objects that no digest covers yet. */
async function digestHour (deps: DigestJobDeps, hourMs: number, head: ChainLink | null, limit: ReturnType<typeof pLimit>): Promise<{ link: ChainLink } | 'nothing' | 'lost'> {
  const { store } = deps
  const covered = new Set<string>()
  let next = 0
  for await (const key of listKeys(store, digestListing(store.prefix, hourMs))) {
    const parsed = parseDigestKey(store.prefix, key)
    if (parsed === undefined) continue
    next = Math.max(next, parsed.sequence + 1)
    const bytes = await getBytes(store, key)
    const doc = bytes === undefined ? undefined : parseDigest(bytes)
    if (doc === undefined) {
      // Never cover again what a damaged digest covered: verify reports it as it is.
      deps.log?.error({ key }, 'digest: an existing digest is unreadable; the hour is left for verify to report')
      return 'nothing'
    }
    for (const o of doc.objects) covered.add(o.key)
  }
  const { records, alerts } = await hourCandidates(store, hourMs)
  const unseen = [...records, ...alerts].filter((key) => !covered.has(key))
  const read = await Promise.all(unseen.map(async (key) => limit(async () => {
    try {
      const bytes = await getBytes(store, key)
      return bytes === undefined ? undefined : entryOf(key, bytes)
    } catch (err) {
      if (!(err instanceof ArchiveIntegrityError)) throw err
      // Not certified: a digest never vouches for bytes that fail their own checksum.
      deps.log?.error({ key, err }, 'digest: an object fails its checksum and is left out of the digest')
      return undefined
    }
  })))
  const objects = read.filter((e): e is DigestEntry => e !== undefined)
  if (next > 0 && objects.length === 0) return 'nothing'
  const key = digestKey(store.prefix, hourMs, next)
  const { bytes } = await buildDigest({ hour: hourName(hourMs), sequence: next, objects, previous: head }, deps.signer)
  const outcome = await putOnce(store, key, bytes)
  // Someone else wrote this digest: the chain's head has moved on without us.
  if (outcome !== 'created') return 'lost'
  const link = { key, sha256: sha256Hex(bytes) }
  await putState(store, chainHeadKey(store.prefix), JSON.stringify(link))
  return { link }
}

/**
 * One run of the digest job: under the lease, every closed hour of the lookback (and every late
 * hour marked) gets its digest or supplement, in hour order, each chained to the one before.
 * Where the server ignores conditional writes, two replicas may run at once: with the same head
 * they write the same bytes (Ed25519 signatures are deterministic).
 * @throws S3ClientError
 */
export async function runDigestJob (deps: DigestJobDeps, nowMs = Date.now(), signal?: AbortSignal): Promise<DigestRunResult> {
  const { store } = deps
  const ttlMs = deps.leaseMs ?? 10 * 60_000
  let lease = await claimLease(store, DIGEST_LEASE, { owner: deps.owner, ttlMs })
  if (lease === undefined) return { claimed: false, written: [], hoursChecked: 0 }
  const written: string[] = []
  let hoursChecked = 0
  try {
    const lastClosed = hourStart(nowMs - (deps.closeDelayMs ?? 60_000)) - HOUR_MS
    const late = await lateHours(store)
    const hours = new Set<number>()
    for (const h of late.keys()) if (h <= lastClosed) hours.add(h)
    for (let i = deps.lookbackHours - 1; i >= 0; i--) hours.add(lastClosed - i * HOUR_MS)
    let head = await readHead(store)
    const limit = pLimit(deps.concurrency ?? 16)
    for (const hourMs of [...hours].sort((a, b) => a - b)) {
      if (signal?.aborted === true) break
      const result = await digestHour(deps, hourMs, head, limit)
      hoursChecked++
      if (result === 'lost') {
        deps.log?.warn({ hour: hourName(hourMs) }, 'digest: another replica wrote this hour\'s digest; this run stops')
        break
      }
      if (result !== 'nothing') {
        head = result.link
        written.push(result.link.key)
      }
      const marker = late.get(hourMs)
      if (marker !== undefined) await deleteState(store, marker)
      const renewed = await renewLease(store, lease, ttlMs)
      if (renewed === undefined) {
        deps.log?.warn({}, 'digest: the lease was lost; this run stops')
        break
      }
      lease = renewed
    }
  } finally {
    await releaseLease(store, lease).catch((err: unknown) => deps.log?.warn({ err }, 'digest: could not release the lease; it expires'))
  }
  return { claimed: true, written, hoursChecked }
}

/**
 * Called for each object written: a webhook record of an hour older than the lookback (an old
 * alert posted today, a backfill) marks its hour, so the next run writes its supplement.
 * @throws S3ClientError
 */
export async function markLateObject (store: Store, key: string, lookbackHours: number, nowMs = Date.now()): Promise<boolean> {
  const parsed = parseWebhookKey(store.prefix, key)
  if (parsed === undefined) return false
  return await markLateHour(store, hourStart(parsed.minuteMs), lookbackHours, nowMs)
}

/** Marks `hourMs` for the next run when it is outside the job's lookback (a backfill of past hours). */
export async function markLateHour (store: Store, hourMs: number, lookbackHours: number, nowMs = Date.now()): Promise<boolean> {
  // The window's oldest hours are marked too: the window may move past them before the next run.
  if (hourMs > hourStart(nowMs) - (lookbackHours - 1) * HOUR_MS) return false
  await putState(store, lateHourKey(store.prefix, hourMs), '{}')
  return true
}
