// Decorates app.store (ingest, the sweeper) and app.readStore (the read routes): one S3 client
// under both, built by services/s3-client.ts, destroyed on close.
import fp from 'fastify-plugin'
import type { Store } from '../services/storage.js'
import { markLateObject } from '../services/digest.js'
import { createS3Client, describeKey, readStoreOf, storeOf } from '../services/s3-client.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The archive: the client, the bucket, the key prefix and the write options. */
    store: Store
    /** The same archive for the read routes, with S3 slots of its own. */
    readStore: Store
  }
}

export default fp(async function s3Plugin (app) {
  const client = createS3Client(app.config.s3, app.metrics.observer('s3'))
  const { prefix } = app.config.s3
  const store: Store = storeOf(app.config.s3, client, {
    ...(app.config.integrity.lock !== undefined && { lock: app.config.integrity.lock }),
    onExisting (key, conflict) {
      const { object, id } = describeKey(prefix, key)
      app.metrics.duplicates.inc({ object })
      if (!conflict) return
      app.metrics.conflicts.inc({ object })
      app.log.warn({ object, id }, 'an archived object was offered again with a different body; the archived one is kept')
    },
    ...(app.config.integrity.intervalS > 0 && {
      onCreated (key: string) {
        // An object of an hour the digest job no longer looks at: mark the hour for a supplement digest.
        markLateObject(store, key, app.config.integrity.lookbackHours).catch((err: unknown) => {
          app.log.warn({ err, ...describeKey(prefix, key) }, 'digest: could not mark a late object\'s hour; verify will show it as added')
        })
      }
    })
  })
  app.decorate('store', store)
  app.decorate('readStore', readStoreOf(app.config.s3, client))
  app.addHook('onClose', async () => client.destroy())
}, { name: 's3', decorators: { fastify: ['config', 'metrics'] }, fastify: '5.x' })
