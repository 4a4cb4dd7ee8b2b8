// The Python service read the search's `start` and `end` from form data sent with the GET
// (`curl -X GET -d start=… -d end=…`). Routes with `config.formQuery` still take them there,
// when the query string lacks them; the query string wins when both are given.
import fp from 'fastify-plugin'
import type { IncomingMessage } from 'node:http'
import { PayloadTooLargeError } from '../errors/index.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Query parameters (of these names) may also come as a form-encoded body. */
    formQuery?: readonly string[]
  }
}

/** A form of two dates is tiny; anything bigger is not one. */
export const MAX_FORM_BYTES = 4096

async function readText (raw: IncomingMessage, max: number): Promise<string> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of raw) {
    size += (chunk as Buffer).length
    if (size > max) throw new PayloadTooLargeError(undefined)
    chunks.push(chunk as Buffer)
  }
  return Buffer.concat(chunks).toString('utf8')
}

export default fp(async function formQueryPlugin (app) {
  app.addHook('preValidation', async (request) => {
    const names = request.routeOptions.config.formQuery
    if (names === undefined) return
    if (typeof request.is(['application/x-www-form-urlencoded']) !== 'string') return
    const form = new URLSearchParams(await readText(request.raw, MAX_FORM_BYTES))
    const query = request.query as Record<string, unknown>
    for (const name of names) {
      const value = form.get(name)
      if (query[name] === undefined && value !== null) query[name] = value
    }
  })
}, { name: 'form-query', fastify: '5.x', dependencies: ['@fastify/sensible'] })
