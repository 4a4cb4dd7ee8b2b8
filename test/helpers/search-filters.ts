// What the filtered-search tests share: alerts archived as the service archives them, and a
// bounded walk over every page of a search with each page's GETs counted.
import { alertKey, indexKey, webhookKey } from '../../services/keys.js'
import {
  decodeCursor, searchAlerts,
  type Position, type SearchDeps, type SearchFilters, type SearchPage, type TimeRange
} from '../../services/search.js'
import type { CountingStore } from './s3.js'

export const T0 = Date.UTC(2017, 0, 15, 23, 10) // 2017-01-15T23:10:00.000Z

export interface Seeded { id: string, at: number, full?: Record<string, unknown> | undefined, record?: Record<string, unknown> }

/** Archives alerts as the service does now (record, full alert unless absent, index entry), 32 at a time. */
export async function seedIndexed (store: CountingStore, alerts: Seeded[]): Promise<void> {
  await store.putMany(alerts.flatMap(({ id, at, full, record }) => [
    [webhookKey('', id, at), JSON.stringify({ ...record, id, created_at: String(at) })],
    ...(full !== undefined ? [[alertKey('', id), JSON.stringify({ id, created_at: at, ...full })]] : []),
    [indexKey('', id, at), '{}']
  ] as Array<[string, string]>))
}

export const ids = (page: { alerts: Array<Record<string, unknown>> }): unknown[] => page.alerts.map((a) => a.id)
export const gets = (store: CountingStore): number => store.requests.get('GetObjectCommand') ?? 0

/** Every page of a filtered search, bounded; each page's GETs counted. */
export async function allPages (store: CountingStore, deps: SearchDeps, range: TimeRange, limit: number, filters: SearchFilters, maxPages = 100):
Promise<{ ids: unknown[], missing: string[], pages: SearchPage[], reads: number[] }> {
  const pages: SearchPage[] = []
  const reads: number[] = []
  let after: Position | undefined
  for (let i = 0; i < maxPages; i++) {
    store.reset()
    const page = await searchAlerts(deps, range, { limit, filters, ...(after !== undefined && { after }) })
    reads.push(gets(store))
    pages.push(page)
    if (page.nextCursor === null) break
    after = decodeCursor(range, page.nextCursor, filters)
  }
  return { ids: pages.flatMap(ids), missing: pages.flatMap((p) => p.missing), pages, reads }
}
