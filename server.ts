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
await server.register(app, { config })

closeWithGrace({ delay: config.server.shutdownGraceMs }, async ({ signal, err }) => {
  if (err !== undefined) server.log.error({ err }, 'closing after an uncaught error')
  else server.log.info({ signal }, 'closing: no new connections, finishing requests in flight')
  await server.close()
})

try {
  await server.listen({ port: config.server.port, host: config.server.host })
} catch (err) {
  const line = cannotListen(err, config.server)
  if (line === undefined) throw err
  // Like a bad variable: one line naming the port, exit 1, and nothing left open.
  await server.close().catch(() => {})
  process.stderr.write(`${line}\n`)
  process.exit(1)
}
