// GET /console: a page for looking at the archive (coverage, search, one alert). The page and its
// assets need no token; every data call the page makes carries the read token the person pastes.
import type { FastifyPluginAsync } from 'fastify'
import fastifyStatic from '@fastify/static'
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * Only this page's own origin: no inline script or style, no framing, no form posts. The API's
 * JSON routes keep their own headers; these are set for the console's responses only.
 */
export const CONSOLE_CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
  "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// From the sources (routes/console.ts) the page is the repository's console/ folder; from a build
// (dist/routes/console.js), dist/console/, which `npm run build` copies there.
function consoleDirectory (): string | undefined {
  const candidates = ['../console/', '../../console/'].map((p) => fileURLToPath(new URL(p, import.meta.url)))
  return candidates.find((dir) => existsSync(join(dir, 'index.html')))
}

export interface ConsoleOptions {
  /** The folder of index.html and its assets; default: found beside this file. */
  root?: string
}

const consoleRoutes: FastifyPluginAsync<ConsoleOptions> = async (app, opts) => {
  const root = opts.root ?? consoleDirectory()
  // A deployment without the page still archives and serves the API: the console is an extra.
  if (root === undefined || !existsSync(join(root, 'index.html'))) {
    app.log.warn('console: its page is not installed beside the service (console/ or dist/console/); GET /console is not served')
    return
  }
  const page = await readFile(join(root, 'index.html'), 'utf8')

  app.addHook('onSend', async (_request, reply, payload) => {
    reply.header('content-security-policy', CONSOLE_CSP)
    reply.header('x-frame-options', 'DENY')
    reply.header('x-content-type-options', 'nosniff')
    reply.header('referrer-policy', 'no-referrer')
    return payload
  })

  app.get('/console', { schema: { hide: true } }, async (_request, reply) =>
    reply.type('text/html; charset=utf-8').header('cache-control', 'no-cache').send(page))

  await app.register(fastifyStatic, {
    root,
    prefix: '/console/',
    decorateReply: false,
    // The page is served by the route above, from memory.
    index: false,
    allowedPath: (pathName) => /^\/[a-z-]+\.(js|css|svg)$/.test(pathName),
    cacheControl: true,
    maxAge: 0,
    schemaHide: true
  })
}

export default consoleRoutes
