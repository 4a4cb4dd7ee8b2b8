// The dev entry (`npm run dev` runs it under dev/watch.ts): local stand-ins for whatever is not
// configured, the config built over them, then the app. A bad variable or a busy port is one
// line and exit 1, and tells the watcher to stop too: a restart would fail the same way.
import Fastify from 'fastify'
import closeWithGrace from 'close-with-grace'
import type { AddressInfo } from 'node:net'
import app, { loggerOptions, serverOptions } from '../app.js'
import { cannotListen, ConfigError, readEnv } from '../config.js'
import { startLocalDependencies, type LocalDependencies } from './local.js'

/** The message dev/watch.ts stops on. */
const FATAL = 'dev:fatal'

async function fatal (line: string): Promise<never> {
  process.stderr.write(`${line}\n`)
  if (process.send !== undefined) process.send(FATAL, () => process.exit(1))
  else process.exit(1)
  // Until the message is out and process.exit has ended the process.
  return await new Promise<never>(() => {})
}

const print = (text: string): void => { process.stdout.write(`${text}\n`) }

let local: LocalDependencies
try {
  local = await startLocalDependencies(print, readEnv())
} catch (err) {
  if (err instanceof ConfigError) await fatal(err.message)
  throw err
}

const { config } = local
const server = Fastify({
  ...serverOptions(config),
  logger: { ...loggerOptions(config.logLevel), transport: { target: 'pino-pretty', options: { translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' } } }
})
// The simulated sender stops first, so that its last batch is answered by a server still open.
server.addHook('preClose', async () => local.stopSender())
server.addHook('onClose', async () => local.close())

/** A variable found bad as the app starts (a key file that cannot be read), or a busy port: fatal. */
async function startFailed (err: unknown): Promise<never> {
  const line = err instanceof ConfigError ? err.message : cannotListen(err, config.server)
  if (line === undefined) throw err
  await server.close().catch(() => {})
  return await fatal(line)
}

try {
  await server.register(app, { config })
} catch (err) {
  await startFailed(err)
}

// The watcher gone (even killed), the server goes too.
process.on('disconnect', () => { server.close().finally(() => process.exit(0)) })

closeWithGrace({ delay: config.server.shutdownGraceMs }, async ({ err }) => {
  if (err !== undefined) server.log.error({ err }, 'closing after an uncaught error')
  await server.close()
})

await server.listen({ port: config.server.port, host: config.server.host }).catch(startFailed)
local.announce(server.addresses().filter((a): a is AddressInfo => typeof a !== 'string'))
