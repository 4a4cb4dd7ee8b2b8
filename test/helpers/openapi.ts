// What the OpenAPI document must say about every route: found by path and method, a unique
// operationId, a summary, and a schema for its 200 and for each error it declares.
import type { RouteOptions } from 'fastify'

export interface RouteRef { method: string, url: string }

interface Operation {
  operationId?: string
  summary?: string
  responses?: Record<string, { description?: string, content?: Record<string, { schema?: unknown }> }>
}

export interface OpenapiDocument {
  openapi: string
  paths: Record<string, Record<string, Operation>>
  components?: { schemas?: Record<string, unknown> }
}

/** `/alert/:alert_id` as OpenAPI writes it: `/alert/{alert_id}`. */
export function openapiPath (url: string): string {
  return url.replace(/:([A-Za-z0-9_]+)/g, '{$1}')
}

/** The routes a document must describe: every one but HEAD twins and those hidden on purpose. */
export function documentedRoutes (routes: RouteOptions[]): RouteRef[] {
  return routes.flatMap((route) => {
    if ((route.schema as { hide?: boolean } | undefined)?.hide === true) return []
    const methods = Array.isArray(route.method) ? route.method : [route.method]
    return methods.filter((m) => m !== 'HEAD').map((method) => ({ method, url: route.url }))
  })
}

const ERROR_ENVELOPE = '#/components/schemas/ErrorEnvelope'

function refersToEnvelope (schema: unknown): boolean {
  if (typeof schema !== 'object' || schema === null) return false
  const s = schema as { $ref?: unknown, anyOf?: unknown[], oneOf?: unknown[] }
  return s.$ref === ERROR_ENVELOPE || [...(s.anyOf ?? []), ...(s.oneOf ?? [])].some(refersToEnvelope)
}

/**
 * Every problem of `doc` for `routes`, as readable lines; none when the document is complete.
 * A route must answer 200 with a schema, declare at least one 5xx, and give each error status
 * (4xx, 5xx) the error envelope as a JSON schema and a description.
 */
export function documentProblems (doc: OpenapiDocument, routes: RouteRef[]): string[] {
  const problems: string[] = []
  const ids = new Map<string, string>()
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      if (op.operationId === undefined) continue
      const previous = ids.get(op.operationId)
      if (previous !== undefined) problems.push(`operationId ${op.operationId} of ${method.toUpperCase()} ${path} is also ${previous}'s`)
      ids.set(op.operationId, `${method.toUpperCase()} ${path}`)
    }
  }
  if (doc.components?.schemas?.ErrorEnvelope === undefined) problems.push('no ErrorEnvelope component')
  for (const { method, url } of routes) {
    const name = `${method} ${url}`
    const op = doc.paths[openapiPath(url)]?.[method.toLowerCase()]
    if (op === undefined) {
      problems.push(`${name}: not in the document`)
      continue
    }
    if (typeof op.operationId !== 'string' || op.operationId === '') problems.push(`${name}: no operationId`)
    if (typeof op.summary !== 'string' || op.summary === '') problems.push(`${name}: no summary`)
    const responses = op.responses ?? {}
    const ok = responses['200']
    if (ok === undefined || ok.content === undefined || !Object.values(ok.content).some((media) => media.schema !== undefined)) {
      problems.push(`${name}: no response schema for 200`)
    }
    const errors = Object.keys(responses).filter((status) => /^[45]/.test(status))
    if (!errors.some((status) => status.startsWith('5'))) problems.push(`${name}: no 5xx response`)
    for (const status of errors) {
      const response = responses[status]
      if (response?.description === undefined || response.description === '' || response.description === 'Default Response') {
        problems.push(`${name}: ${status} has no description`)
      }
      if (!refersToEnvelope(response?.content?.['application/json']?.schema)) {
        problems.push(`${name}: ${status} is not the error envelope`)
      }
    }
  }
  return problems
}
