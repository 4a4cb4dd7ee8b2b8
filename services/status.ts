// The dependency check behind GET /status: both upstreams at once, a short timeout, and a
// cached answer so that the route cannot be used to hammer them.
import { checkBucket, type Store } from './storage.js'
import { checkThreatStack, type ThreatStackClient } from './threatstack.js'

export interface DependencyStatus { s3: boolean, threatstack: boolean }

export interface StatusDeps {
  store: Store
  threatstack: ThreatStackClient
  timeoutMs: number
  cacheMs: number
  /** Told of every failed check, when it happens (not on cached answers). */
  onFailure: (dependency: keyof DependencyStatus, err: unknown) => void
  now?: () => number
}

export function createStatusChecker (deps: StatusDeps): () => Promise<DependencyStatus> {
  const now = deps.now ?? Date.now
  let cached: { at: number, result: Promise<DependencyStatus> } | undefined

  async function probe (name: keyof DependencyStatus, check: Promise<void>): Promise<boolean> {
    try {
      await check
      return true
    } catch (err) {
      deps.onFailure(name, err)
      return false
    }
  }

  async function run (): Promise<DependencyStatus> {
    const [s3, threatstack] = await Promise.all([
      probe('s3', checkBucket(deps.store, AbortSignal.timeout(deps.timeoutMs))),
      probe('threatstack', checkThreatStack(deps.threatstack, deps.timeoutMs))
    ])
    return { s3, threatstack }
  }

  // Concurrent callers share one check in flight, and its answer for cacheMs after.
  return async () => {
    if (cached === undefined || now() - cached.at >= deps.cacheMs) cached = { at: now(), result: run() }
    return await cached.result
  }
}
