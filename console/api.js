// The page's only way to the service: same origin, the read token from sessionStorage in the
// Authorization header (never in a URL or a cookie), the error envelope turned into ApiError.
const TOKEN_KEY = 'threatstack-to-s3.read-token'

export function readToken () {
  return sessionStorage.getItem(TOKEN_KEY) ?? ''
}

export function saveToken (token) {
  if (token === '') sessionStorage.removeItem(TOKEN_KEY)
  else sessionStorage.setItem(TOKEN_KEY, token)
}

export class ApiError extends Error {
  constructor (status, type, message, requestId) {
    super(message)
    this.status = status
    this.type = type
    this.requestId = requestId
  }

  /** The token is missing, unknown or of the wrong scope: the person should paste another. */
  get tokenRefused () {
    return this.status === 401 || this.status === 403
  }
}

/** A same-origin URL of the API with its query; repeated parameters from arrays. */
export function apiUrl (path, params = {}) {
  const url = new URL(path, window.location.origin)
  for (const [name, value] of Object.entries(params)) {
    for (const v of Array.isArray(value) ? value : [value]) {
      if (v !== undefined && v !== null && v !== '') url.searchParams.append(name, String(v))
    }
  }
  return url
}

/** GET a JSON route; resolves with the success body, rejects with ApiError. */
export async function getJson (path, params) {
  const token = readToken()
  if (token === '') throw new ApiError(401, 'AuthenticationError', 'No read token yet: paste one above.')
  let res
  try {
    res = await fetch(apiUrl(path, params), {
      headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
      credentials: 'omit',
      cache: 'no-store',
      referrerPolicy: 'no-referrer'
    })
  } catch {
    throw new ApiError(0, 'NetworkError', 'The service could not be reached.')
  }
  let body
  try {
    body = await res.json()
  } catch {
    body = undefined
  }
  if (res.ok && body !== null && typeof body === 'object' && body.success === true) return body
  // Only the envelope's type and message are shown: never a raw body, which could hold anything.
  const error = body !== null && typeof body === 'object' && typeof body.error === 'object' && body.error !== null ? body.error : {}
  throw new ApiError(
    res.status,
    typeof error.type === 'string' ? error.type : 'HttpError',
    typeof error.message === 'string' ? error.message : `The service answered ${res.status} without an error envelope.`,
    typeof error.requestId === 'string' ? error.requestId : undefined
  )
}

/** The same call as a shell command; the token stays a variable so it never lands in a clipboard or screenshot. */
export function curlFor (path, params) {
  return `curl -sS -H "Authorization: Bearer $READ_TOKEN" '${apiUrl(path, params).href}'`
}
