// Request validation with TypeBox's own compiler. Bodies are checked, never coerced or
// stripped, so an alert is archived exactly as it was received; in query strings and
// params, a string of digits becomes the integer a schema asks for (a `limit` of "10"
// becomes 10), a parameter given once where a list is asked for becomes a list of one, and nothing else is converted ("1.5" and "true" stay strings, and fail).
import fp from 'fastify-plugin'
import { Kind, type TSchema } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import type { FastifySchemaCompiler } from 'fastify'

interface Issue { instancePath: string, message: string }

function issuesOf (schema: TSchema, value: unknown): Issue[] {
  const issues = new Map<string, Issue>()
  for (const e of TypeCompiler.Compile(schema).Errors(value)) {
    // One issue per path; a union says what it accepts instead of "Expected union value".
    if (issues.has(e.path)) continue
    const described = e.schema[Kind] === 'Union' && typeof e.schema.description === 'string'
    issues.set(e.path, { instancePath: e.path, message: described ? `must be ${e.schema.description as string}` : e.message })
  }
  return [...issues.values()]
}

/**
 * For a union, "expected union value" helps nobody: report the errors of the member the value
 * was most likely meant to be, the one whose required properties it has most of.
 */
function closestMember (schema: TSchema, value: unknown): TSchema | undefined {
  if (schema[Kind] !== 'Union' || typeof value !== 'object' || value === null) return undefined
  // A member that forbids a property the value has (a Never) is not what it was meant to be.
  const forbids = (m: TSchema): boolean => Object.entries((m.properties ?? {}) as Record<string, TSchema>).some(([k, p]) => p[Kind] === 'Never' && Object.hasOwn(value, k))
  const members = (schema.anyOf as TSchema[]).filter((m) => !forbids(m))
  if (members.length === 0) return undefined
  const present = (m: TSchema): number => ((m.required ?? []) as string[]).filter((k) => Object.hasOwn(value, k)).length
  return members.reduce((best, m) => present(m) > present(best) ? m : best)
}

const INTEGER = /^-?[0-9]{1,15}$/

function convertStrict (schema: TSchema, input: unknown): unknown {
  if (schema[Kind] !== 'Object' || typeof input !== 'object' || input === null) return input
  const properties = schema.properties as Record<string, TSchema>
  const output: Record<string, unknown> = { ...input }
  for (const [key, value] of Object.entries(output)) {
    if (typeof value === 'string' && properties[key]?.[Kind] === 'Integer' && INTEGER.test(value)) output[key] = Number(value)
    // A repeatable parameter (`severity=1&severity=2`) arrives as an array, or a string when given once.
    const items = properties[key]?.[Kind] === 'Array' ? properties[key]?.items as TSchema | undefined : undefined
    if (items !== undefined && (typeof value === 'string' || Array.isArray(value))) {
      output[key] = (Array.isArray(value) ? value as unknown[] : [value])
        .map((v) => items[Kind] === 'Integer' && typeof v === 'string' && INTEGER.test(v) ? Number(v) : v)
    }
  }
  return output
}

export const typeBoxValidatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  const check = TypeCompiler.Compile(schema)
  return (input: unknown) => {
    const value = httpPart === 'body' ? input : convertStrict(schema, input)
    if (check.Check(value)) return { value }
    const member = closestMember(schema, value)
    const issues = member !== undefined ? issuesOf(member, value) : issuesOf(schema, value)
    return { error: issues as unknown as Error }
  }
}

export default fp(async function validationPlugin (app) {
  app.setValidatorCompiler(typeBoxValidatorCompiler)
}, { name: 'validation', fastify: '5.x' })
