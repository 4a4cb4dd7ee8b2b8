// At start-up: compares the bucket's Object Lock configuration with the service's settings and
// says so in the log when they disagree. /status stays booleans only.
import fp from 'fastify-plugin'
import { checkObjectLock } from '../services/lock.js'

export default fp(async function integrityPlugin (app) {
  app.addHook('onReady', async () => {
    const finding = await checkObjectLock(app.store, app.config.integrity.lock, AbortSignal.timeout(app.config.s3.timeoutMs))
    if (finding === undefined) return
    app.log[finding.level]({ ...(finding.cause !== undefined && { err: finding.cause }) }, finding.message)
  })
}, { name: 'integrity', decorators: { fastify: ['config', 'store'] }, fastify: '5.x' })
