// Verifies the archive of a time range against its digests: re-lists and re-reads every object,
// recomputes the hashes, walks the chain and checks the signatures. Needs read access and the
// public key only.
import pLimit from 'p-limit'
import type { KeyObject } from 'node:crypto'
import { ArchiveIntegrityError } from '../errors/index.js'
import { sha256Hex } from './checksum.js'
import {
  HOUR_MS, chainHeadKey, digestListing, entryOf, hourCandidates, hourName, hourStart, parseDigest, parseDigestKey, signedBytes,
  type DigestDocument, type DigestEntry
} from './digest.js'
import { getState } from './leases.js'
import { publicKeyId, verifySignature } from './signer.js'
import { getBytes, listKeys, type Store } from './storage.js'

export type ProblemKind = 'modified' | 'deleted' | 'added' | 'chain broken' | 'signature bad' | 'digest invalid' | 'digest missing'

export interface Problem { kind: ProblemKind, key: string, detail: string }

export interface HourReport {
  hour: string
  ok: boolean
  /** Objects found or expected for the hour. */
  objects: number
  digests: number
  problems: Problem[]
}

export interface VerifyReport {
  ok: boolean
  hours: HourReport[]
  objectsChecked: number
  digestsChecked: number
  problems: number
}

export interface VerifyDeps {
  store: Store
  publicKey: KeyObject
  /** Objects read at once. */
  concurrency?: number
}

export interface VerifyProgress { hoursDone: number, hoursTotal: number, objectsChecked: number, problems: number }

type Read = { bytes: Uint8Array } | { absent: true } | { failsChecksum: true }

async function read (store: Store, key: string): Promise<Read> {
  try {
    const bytes = await getBytes(store, key)
    return bytes === undefined ? { absent: true } : { bytes }
  } catch (err) {
    if (err instanceof ArchiveIntegrityError) return { failsChecksum: true }
    throw err
  }
}

/** @throws S3ClientError */
export async function verifyArchive (deps: VerifyDeps, range: { startMs: number, endMs: number }, onProgress?: (p: VerifyProgress) => void): Promise<VerifyReport> {
  const { store } = deps
  const limit = pLimit(deps.concurrency ?? 16)
  const keyId = publicKeyId(deps.publicKey)
  const first = hourStart(range.startMs)
  const hoursTotal = Math.max(0, Math.ceil((range.endMs - first) / HOUR_MS))
  const hours: HourReport[] = []
  const digestHashes = new Map<string, string | undefined>()
  let objectsChecked = 0
  let digestsChecked = 0
  let problemCount = 0
  let chainStarts = 0

  // The SHA-256 of a digest named as `previous`, read once however many name it.
  const digestHash = async (key: string): Promise<string | undefined> => {
    if (!digestHashes.has(key)) {
      const r = await read(store, key)
      digestHashes.set(key, 'bytes' in r ? sha256Hex(r.bytes) : undefined)
    }
    return digestHashes.get(key)
  }

  for (let i = 0; i < hoursTotal; i++) {
    const hourMs = first + i * HOUR_MS
    const problems: Problem[] = []
    const expected = new Map<string, DigestEntry>()
    const docs: Array<{ key: string, doc: DigestDocument }> = []

    for await (const key of listKeys(store, digestListing(store.prefix, hourMs))) {
      const parsed = parseDigestKey(store.prefix, key)
      if (parsed === undefined) continue
      digestsChecked++
      const r = await read(store, key)
      if (!('bytes' in r)) {
        problems.push({ kind: 'digest invalid', key, detail: 'failsChecksum' in r ? 'its bytes do not match the checksum stored with them' : 'listed but unreadable' })
        continue
      }
      digestHashes.set(key, sha256Hex(r.bytes))
      const doc = parseDigest(r.bytes)
      if (doc === undefined) {
        problems.push({ kind: 'digest invalid', key, detail: 'not a digest document' })
        continue
      }
      if (doc.hour !== hourName(hourMs) || doc.sequence !== parsed.sequence) {
        problems.push({ kind: 'digest invalid', key, detail: `it is the digest of ${doc.hour} #${doc.sequence}, stored under another hour's key` })
      }
      if (doc.signature === null || doc.signer === null) {
        problems.push({ kind: 'signature bad', key, detail: 'unsigned' })
      } else if (doc.signer.keyId !== keyId) {
        problems.push({ kind: 'signature bad', key, detail: `signed by another key (${doc.signer.keyId})` })
      } else if (!verifySignature(deps.publicKey, doc.signer.algorithm, signedBytes(doc), Buffer.from(doc.signature, 'base64'))) {
        problems.push({ kind: 'signature bad', key, detail: 'the signature does not match the content' })
      }
      docs.push({ key, doc })
      for (const entry of doc.objects) expected.set(entry.key, entry)
    }

    for (const { key, doc } of docs) {
      if (doc.previous === null) {
        chainStarts++
        if (chainStarts > 1) problems.push({ kind: 'chain broken', key, detail: 'a second start of the chain (it names no previous digest)' })
        continue
      }
      const hash = await digestHash(doc.previous.key)
      if (hash === undefined) problems.push({ kind: 'chain broken', key, detail: `its previous digest ${doc.previous.key} is missing` })
      else if (hash !== doc.previous.sha256) problems.push({ kind: 'chain broken', key, detail: `its previous digest ${doc.previous.key} has changed` })
    }

    const { records, alerts } = await hourCandidates(store, hourMs)
    const found = new Set(records)
    const keys = [...new Set([...expected.keys(), ...records, ...alerts])].sort()
    const reads = await Promise.all(keys.map(async (key) => limit(async () => ({ key, r: await read(store, key) }))))
    let objects = 0
    for (const { key, r } of reads) {
      const want = expected.get(key)
      if ('absent' in r) {
        if (want !== undefined) problems.push({ kind: 'deleted', key, detail: 'covered by a digest, no longer in the bucket' })
        if (want !== undefined || found.has(key)) objects++
        continue
      }
      objects++
      objectsChecked++
      if ('failsChecksum' in r) {
        problems.push({ kind: want === undefined ? 'added' : 'modified', key, detail: 'its bytes do not match the checksum stored with them' })
        continue
      }
      const got = entryOf(key, r.bytes)
      if (want === undefined) problems.push({ kind: 'added', key, detail: 'covered by no digest' })
      else if (got.sha256 !== want.sha256 || got.size !== want.size) problems.push({ kind: 'modified', key, detail: `SHA-256 ${got.sha256} (${got.size} bytes), digest says ${want.sha256} (${want.size} bytes)` })
    }
    if (docs.length === 0 && objects > 0) problems.push({ kind: 'digest missing', key: '', detail: 'the hour has objects and no digest' })

    problemCount += problems.length
    hours.push({ hour: hourName(hourMs), ok: problems.length === 0, objects, digests: docs.length, problems })
    onProgress?.({ hoursDone: i + 1, hoursTotal, objectsChecked, problems: problemCount })
  }

  // The newest digest has no successor to vouch for it: the chain's head does.
  const headState = await getState(store, chainHeadKey(store.prefix))
  if (headState !== undefined) {
    try {
      const head = JSON.parse(headState.body) as { key?: unknown, sha256?: unknown }
      const parsed = typeof head.key === 'string' ? parseDigestKey(store.prefix, head.key) : undefined
      const report = parsed === undefined ? undefined : hours.find((h) => h.hour === hourName(parsed.hourMs))
      if (report !== undefined && typeof head.key === 'string') {
        const hash = await digestHash(head.key)
        if (hash !== head.sha256) {
          report.problems.push({ kind: 'chain broken', key: head.key, detail: hash === undefined ? 'the newest digest of the chain is missing' : 'the newest digest of the chain has changed' })
          report.ok = false
          problemCount++
        }
      }
    } catch { /* a damaged head is derived state: the digests themselves are what is verified */ }
  }

  return { ok: problemCount === 0, hours, objectsChecked, digestsChecked, problems: problemCount }
}
