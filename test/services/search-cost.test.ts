// The S3 requests of a search follow its range, not the bucket, on both local S3 servers: the
// heaviest fill of the search tests, in a file of its own.
import t from 'tap'
import { alertKey, webhookKey } from '../../services/keys.js'
import { searchAlerts, type SearchDeps } from '../../services/search.js'
import { BACKENDS, startBackend, type CountingStore } from '../helpers/s3.js'

const T0 = Date.UTC(2017, 0, 15, 23, 10) // 2017-01-15T23:10:00.000Z

// Over 10,000 objects written to two servers: more than tap's default allows on a busy machine.
t.setTimeout(300_000)

/** Archives an alert as the Python service did: webhook record and full alert. */
async function seed (store: CountingStore, id: string, createdAt: number): Promise<void> {
  await store.putRaw(webhookKey(store.prefix, id, createdAt), JSON.stringify({ id, created_at: String(createdAt) }))
  await store.putRaw(alertKey(store.prefix, id), JSON.stringify({ id, created_at: createdAt, title: `alert ${id}` }))
}

for (const backend of BACKENDS) {
  t.test(`on ${backend}`, async (t) => {
    t.test('the S3 requests of a query follow its range, not the bucket', async (t) => {
      const store = await startBackend(t, backend)
      const deps: SearchDeps = { store, concurrency: 8 }
      for (let i = 0; i < 12; i++) await seed(store, `inrange-${String(i).padStart(2, '0')}`, T0 + i * 300_000)
      const range = { startMs: T0, endMs: T0 + 3_600_000 }
      const measure = async (): Promise<number> => {
        store.reset()
        const page = await searchAlerts(deps, range, { limit: 5 })
        t.equal(page.alerts.length, 5)
        return store.total()
      }
      // Objects outside the range: the days before and after, other hours of the same day, full alerts.
      const outside = (from: number, to: number): Array<[string, string]> => Array.from({ length: to - from }, (_, i) => {
        const n = from + i
        const at = n % 2 === 0 ? T0 - (n + 1) * 3_600_000 : T0 + 3_600_000 + n * 60_000
        const id = `outside-${n}`
        return [n % 3 === 0 ? alertKey('', id) : webhookKey('', id, at), '{}']
      })
      await store.putMany(outside(0, 200))
      const small = await measure()
      await store.putMany(outside(200, 5000))
      const large = await measure()
      t.equal(large, small, `same number of S3 requests with 200 and 5,000 objects outside the range (${small})`)
      t.ok(small <= 1 + 12 + 5, 'one listing, the records of the minutes read, and the page\'s full alerts')
    })
  })
}
