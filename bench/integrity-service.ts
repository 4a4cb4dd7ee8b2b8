// The service for bench/integrity.ts's webhook rounds: app.ts with the config of its environment,
// in a process of its own as `npm start` runs it, with one bench-only middleware on its S3 client.
// Told `plain` on stdin, that middleware removes from every S3 request, on the wire, what makes S3
// do integrity work: the write-once condition (If-None-Match) and the checksum headers
// (x-amz-checksum-*, x-amz-sdk-checksum-algorithm); told `integrity`, it lets requests through
// as they are. Everything else (the SHA-256 the service computes, its calls, its pools) is the
// same process in both modes. Each command is answered with one JSON line: the mode and how many
// requests have had headers removed so far. Prints its address first; ends when stdin closes.
import Fastify from 'fastify'
import { createInterface } from 'node:readline'
import app, { loggerOptions, serverOptions } from '../app.js'
import { loadConfig, readEnv } from '../config.js'

/** The headers that ask S3 for integrity work: the condition of a write-once PUT, the checksums. */
function isIntegrityHeader (name: string): boolean {
  const lower = name.toLowerCase()
  return lower === 'if-none-match' || lower === 'x-amz-sdk-checksum-algorithm' || lower.startsWith('x-amz-checksum-')
}

const config = loadConfig(readEnv())
// The log goes to stderr: stdout is the parent's channel.
const service = Fastify({ ...serverOptions(config), logger: { ...loggerOptions(config.logLevel), stream: process.stderr } })
await service.register(app, { config })

let strip = false
let stripped = 0
// Last of the build step: after the serializer and the checksum middleware have set the headers,
// before the finalize step signs the request, so the signature covers what is sent.
service.store.s3.middlewareStack.add((next) => async (args) => {
  const request = args.request as { headers?: Record<string, string> }
  if (strip && request.headers !== undefined) {
    const names = Object.keys(request.headers).filter(isIntegrityHeader)
    for (const name of names) Reflect.deleteProperty(request.headers, name)
    if (names.length > 0) stripped++
  }
  return await next(args)
}, { step: 'build', priority: 'low', name: 'benchStripIntegrityHeaders' })

await service.listen({ port: 0, host: '127.0.0.1' })
const address = service.server.address()
if (address === null || typeof address === 'string') throw new Error('the service has no TCP address')
process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${address.port}`, pid: process.pid })}\n`)

const commands = createInterface({ input: process.stdin })
commands.on('line', (line) => {
  const mode = line.trim()
  if (mode !== 'plain' && mode !== 'integrity') {
    process.stderr.write(`unknown command ${JSON.stringify(mode)}\n`)
    return
  }
  strip = mode === 'plain'
  process.stdout.write(`${JSON.stringify({ mode, stripped })}\n`)
})
commands.once('close', () => {
  service.close().then(() => process.exit(0), () => process.exit(1))
})
