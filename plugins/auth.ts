// Bearer tokens with a scope each (ingest, read); `?token=` accepted on ingest routes only.
import fp from 'fastify-plugin'
import { createHash, timingSafeEqual } from 'node:crypto'
import { BlockList, isIP } from 'node:net'
import type { FastifyRequest, onRequestAsyncHookHandler } from 'fastify'
import { AuthenticationError, AuthorizationError } from '../errors/index.js'

export type Scope = 'ingest' | 'read'

declare module 'fastify' {
  interface FastifyInstance {
    /** An onRequest hook that lets through only a token of `scope`. */
    requireToken: (scope: Scope) => onRequestAsyncHookHandler
  }
}

const digest = (token: string): Buffer => createHash('sha256').update(token).digest()

// The hooks made by requireToken, with the scope each lets through: the OpenAPI document
// declares a route's security from the hook it actually runs.
const hookScopes = new WeakMap<object, Scope>()

/** The scope a route's onRequest hooks require, undefined when none is checked. */
export function requiredScope (onRequest: unknown): Scope | undefined {
  const hooks: unknown[] = Array.isArray(onRequest) ? onRequest : [onRequest]
  for (const hook of hooks) {
    const scope = typeof hook === 'function' ? hookScopes.get(hook) : undefined
    if (scope !== undefined) return scope
  }
  return undefined
}

/**
 * Which scopes a presented token has. Every known token is compared, in constant time over
 * fixed-length digests, so neither timing nor length tells how close a guess was.
 */
export function scopesOf (token: string, known: Array<{ digest: Buffer, scope: Scope }>): Set<Scope> {
  const presented = digest(token)
  const scopes = new Set<Scope>()
  for (const entry of known) {
    if (timingSafeEqual(presented, entry.digest)) scopes.add(entry.scope)
  }
  return scopes
}

function presentedToken (request: FastifyRequest, allowQuery: boolean): string | undefined {
  const header = request.headers.authorization
  if (header !== undefined) {
    const match = /^Bearer[ ]+(\S+)\s*$/i.exec(header)
    return match?.[1] ?? ''
  }
  if (!allowQuery) return undefined
  const token = (request.query as { token?: unknown } | undefined)?.token
  return typeof token === 'string' ? token : undefined
}

/**
 * Whether a client address is in one of `networks` (addresses or CIDRs). An IPv4 client seen
 * on an IPv6 socket (`::ffff:192.0.2.7`) is judged as the IPv4 address it is.
 */
export function networkMatcher (networks: readonly string[]): (address: string) => boolean {
  const list = new BlockList()
  for (const network of networks) {
    const [address = '', bits] = network.split('/')
    const type = isIP(address) === 6 ? 'ipv6' : 'ipv4'
    if (bits === undefined) list.addAddress(address, type)
    else list.addSubnet(address, Number(bits), type)
  }
  return (address) => {
    const ip = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address)?.[1] ?? address
    const family = isIP(ip)
    return family !== 0 && list.check(ip, family === 6 ? 'ipv6' : 'ipv4')
  }
}

export default fp(async function authPlugin (app) {
  const { mode, ingestTokens, readTokens, ingestNetworks } = app.config.auth
  // Webhooks only from the sender's networks (INGEST_ALLOWED_CIDRS), judged before any token:
  // an address outside them learns nothing of which tokens exist.
  const allowed = ingestNetworks === undefined ? undefined : networkMatcher(ingestNetworks)
  const checkNetwork = (request: FastifyRequest, scope: Scope): void => {
    if (scope === 'ingest' && allowed !== undefined && !allowed(request.ip)) throw new AuthorizationError({ message: AuthorizationError.NETWORK_MESSAGE })
  }
  if (mode === 'none') {
    app.log.warn('AUTH_MODE=none: no token is checked; a gateway in front must authenticate callers')
    // No token asked, so none declared in the OpenAPI document (the hook is not in hookScopes).
    app.decorate('requireToken', (scope: Scope) => async (request) => { checkNetwork(request, scope) })
    return
  }
  const known = [
    ...ingestTokens.map((token) => ({ digest: digest(token), scope: 'ingest' as const })),
    ...readTokens.map((token) => ({ digest: digest(token), scope: 'read' as const }))
  ]
  app.decorate('requireToken', (scope: Scope) => {
    const hook: onRequestAsyncHookHandler = async (request) => {
      checkNetwork(request, scope)
      const token = presentedToken(request, scope === 'ingest')
      const scopes = token === undefined || token === '' ? new Set<Scope>() : scopesOf(token, known)
      if (scopes.size === 0) {
        // Missing and unknown tokens get the same answer: a 401 says nothing about which tokens exist.
        throw new AuthenticationError()
      }
      if (!scopes.has(scope)) throw new AuthorizationError()
    }
    hookScopes.set(hook, scope)
    return hook
  })
}, { name: 'auth', decorators: { fastify: ['config'] }, fastify: '5.x' })
