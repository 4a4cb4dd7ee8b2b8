// A typed client of the service, from its OpenAPI document (client/openapi.json, through the
// types in client/schema.d.ts): paths, parameters, bodies and replies are checked at compile time.
import createClient, { type Client, type ClientOptions } from 'openapi-fetch'
import type { components, paths } from './schema.js'

export type { components, paths }
export type ErrorEnvelope = components['schemas']['ErrorEnvelope']
export type ArchiveClient = Client<paths>

export interface ArchiveClientOptions extends Omit<ClientOptions, 'baseUrl'> {
  /** Where the service is, e.g. `https://archive.example.com`. */
  baseUrl: string
  /** An ingest or read token, sent as `Authorization: Bearer <token>`. */
  token?: string
}

export function createArchiveClient ({ baseUrl, token, headers, ...options }: ArchiveClientOptions): ArchiveClient {
  return createClient<paths>({
    ...options,
    baseUrl,
    headers: { ...headers, ...(token !== undefined && { authorization: `Bearer ${token}` }) }
  })
}
