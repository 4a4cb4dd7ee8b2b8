// Production entry (`npm start`): config from the environment, Fastify, graceful close, listen.
import Fastify from 'fastify'
import closeWithGrace from 'close-with-grace'
import app, { serverOptions } from './app.js'
import { cannotListen, ConfigError, loadConfig, readEnv, type Config } from './config.js'

let config: Config
try {
  config = loadConfig(readEnv())
} catch (err) {
  if (!(err instanceof ConfigError)) throw err
  // One line naming the variable, never its value.
  process.stderr.write(`${err.message}\n`)
  process.exit(1)
}

const server = Fastify(serverOptions(config))

/**
 * A variable whose value proves bad only as the app starts (a key file that cannot be read), or
 * a port taken: one line naming it, exit 1, and nothing left open. Any other failure is a fault.
 */
async function startFailed (err: unknown): Promise<never> {
  const line = err instanceof ConfigError ? err.message : cannotListen(err, config.server)
  if (line === undefined) throw err
  await server.close().catch(() => {})
  process.stderr.write(`${line}\n`)
  process.exit(1)
}

try {
  await server.register(app, { config })
} catch (err) {
  await startFailed(err)
}

closeWithGrace({ delay: config.server.shutdownGraceMs }, async ({ signal, err }) => {
  if (err !== undefined) server.log.error({ err }, 'closing after an uncaught error')
  else server.log.info({ signal }, 'closing: no new connections, finishing requests in flight')
  await server.close()
})

await server.listen({ port: config.server.port, host: config.server.host }).catch(startFailed)
