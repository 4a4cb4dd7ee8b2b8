// Reading the archive back.
import { AlertNotFoundError } from '../errors/index.js'
import { alertKey } from './keys.js'
import { getJson, type Store } from './storage.js'

/** The stored full alert. @throws AlertNotFoundError | S3ClientError */
export async function getAlert (deps: { store: Store }, id: string): Promise<Record<string, unknown>> {
  const alert = await getJson(deps.store, alertKey(deps.store.prefix, id))
  if (alert === undefined) throw new AlertNotFoundError()
  return alert as Record<string, unknown>
}
