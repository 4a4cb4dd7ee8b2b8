// The OpenAPI 3 document, generated from the route schemas that validate requests and
// serialize replies (@fastify/swagger), at /documentation/json and /documentation/yaml, and
// its human view at /documentation (@fastify/swagger-ui). No token is needed to read either.
import fp from 'fastify-plugin'
import swagger, { type FastifyDynamicSwaggerOptions } from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import { readFileSync } from 'node:fs'
import { requiredScope } from './auth.js'

export const DOCUMENTATION_PREFIX = '/documentation'

export interface OpenapiOptions {
  /**
   * Where the archive routes are also registered for the Python service's URLs: there they are
   * documented as deprecated, with operation ids suffixed `Legacy`.
   */
  legacyPrefix?: string
}

export const LEGACY_OPERATION_SUFFIX = 'Legacy'
export const LEGACY_TAG = 'legacy prefix'

export const SECURITY_SCHEMES = {
  bearer: { type: 'http', scheme: 'bearer', description: 'An ingest or read token: `Authorization: Bearer <token>`' },
  ingestQueryToken: {
    type: 'apiKey',
    in: 'query',
    name: 'token',
    description: 'An ingest token as `?token=<token>`, for senders that can only be given a URL (Threat Stack webhooks). Ingest routes only.'
  }
} as const

const description = (legacyPrefix: string | undefined): string => 'Receives Threat Stack security-alert webhooks (directly or through AWS SNS), archives each alert ' +
  'and its full version fetched from the Threat Stack API to S3, and serves the archive back: one alert by id, or ' +
  'every alert in a time range.\n\n' +
  'Every error, from any layer, is the `ErrorEnvelope`; its `type` says which error it is, and each response below ' +
  'lists the types sent with its status.' +
  (legacyPrefix === undefined
    ? ''
    : ' Archive routes also answer under `' + legacyPrefix + "` (the Python service's prefix, kept so that " +
      'configured webhook URLs keep working): those operations are marked deprecated.')

/** The version in package.json, found from the source tree or from dist/. */
function packageVersion (): string {
  for (const candidate of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(candidate, import.meta.url), 'utf8')) as { name?: unknown, version?: unknown }
      if (pkg.name === 'threatstack-to-s3' && typeof pkg.version === 'string') return pkg.version
    } catch { /* not at this level */ }
  }
  return '0.0.0'
}

type Transform = NonNullable<FastifyDynamicSwaggerOptions['transform']>

/**
 * Per route: the security its token hook enforces, and for the legacy prefix, deprecation,
 * an operation id of its own and a tag.
 */
export const documentTransform = (legacyPrefix: string | undefined): Transform => ({ schema, url, route }) => {
  const scope = requiredScope(route.onRequest)
  const security: Array<Record<string, string[]>> = scope === 'ingest'
    ? [{ bearer: [] }, { ingestQueryToken: [] }]
    : scope === 'read' ? [{ bearer: [] }] : []
  const legacy = legacyPrefix !== undefined && url.startsWith(`${legacyPrefix}/`)
  const operationId = (schema as { operationId?: unknown } | undefined)?.operationId
  return {
    url,
    schema: {
      ...schema,
      security,
      tags: [legacy ? LEGACY_TAG : url.includes('/alert') ? 'archive' : 'operations'],
      ...(legacy && {
        deprecated: true,
        ...(typeof operationId === 'string' && { operationId: `${operationId}${LEGACY_OPERATION_SUFFIX}` })
      })
    }
  }
}

/**
 * OpenAPI 3.0 schemas have `example`, not JSON Schema's `examples` array, which TypeBox schemas
 * carry and @fastify/swagger only converts where it looks (properties of objects). The document
 * is walked whole; example values themselves are left alone.
 */
export function toOpenapi30Examples (node: unknown): void {
  if (Array.isArray(node)) {
    for (const item of node) toOpenapi30Examples(item)
    return
  }
  if (typeof node !== 'object' || node === null) return
  const object = node as Record<string, unknown>
  if (Array.isArray(object.examples)) {
    if (object.example === undefined && object.examples.length > 0) object.example = object.examples[0]
    delete object.examples
  }
  for (const [key, value] of Object.entries(object)) {
    // Values, not schemas: a literal example, a Media Type Object's named examples, an enum.
    if (key === 'example' || key === 'examples' || key === 'enum' || key === 'default') continue
    toOpenapi30Examples(value)
  }
}

/** swagger-ui's CSP, minus what a UI served over plain HTTP inside a network cannot have. */
export function documentationCsp (header: string): string {
  return header
    .split(';')
    .map((d) => d.trim())
    .filter((d) => d !== '' && d !== 'upgrade-insecure-requests')
    .map((d) => d.replace(/ validator\.swagger\.io/, '').replace(/ https:/g, ''))
    .join('; ')
}

export default fp<OpenapiOptions>(async function openapiPlugin (app, { legacyPrefix }) {
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'threatstack-to-s3', version: packageVersion(), description: description(legacyPrefix) },
      tags: [
        { name: 'archive', description: 'Webhooks in, archived alerts out' },
        { name: 'operations', description: 'Liveness, readiness, metrics' },
        ...(legacyPrefix === undefined
          ? []
          : [{ name: LEGACY_TAG, description: `The archive routes under ${legacyPrefix}, for URLs configured for the Python service` }])
      ],
      components: { securitySchemes: SECURITY_SCHEMES }
    },
    // Shared schemas keep their $id as their component name (`#/components/schemas/ErrorEnvelope`).
    refResolver: {
      buildLocalReference: (json, _baseUri, _fragment, i) => typeof json.$id === 'string' ? json.$id : `def-${i}`
    },
    transform: documentTransform(legacyPrefix),
    transformObject: (documentObject) => {
      const document = 'openapiObject' in documentObject ? documentObject.openapiObject : documentObject.swaggerObject
      toOpenapi30Examples(document)
      return document
    }
  })
  await app.register(swaggerUi, {
    routePrefix: DOCUMENTATION_PREFIX,
    // The UI never sends the document to an outside validator.
    uiConfig: { validatorUrl: null, deepLinking: true },
    staticCSP: true,
    transformStaticCSP: documentationCsp
  })
}, { name: 'openapi', fastify: '5.x', dependencies: ['errors'] })
